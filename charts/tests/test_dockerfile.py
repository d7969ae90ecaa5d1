"""The Dockerfile, read statically (no Docker engine here): it builds the gateway from
the whole workspace, and its final image is small, non-root, and agrees with the
chart (port, user, command, the preStop hook's /bin/sleep)."""

import fnmatch
import json
import re
import subprocess
import tomllib
from pathlib import Path

import chart

DOCKERFILE = chart.REPO / "Dockerfile"
DOCKERIGNORE = chart.REPO / ".dockerignore"


def stages():
    """The Dockerfile as stages: [(base image, [(instruction, arguments)])]."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            result.append((arguments.split()[0], []))
        else:
            assert result, f"{instruction} before FROM"
            result[-1][1].append((instruction, arguments.strip()))
    return result


def instructions(stage, name):
    return [arguments for instruction, arguments in stage[1] if instruction == name]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` (relative, with /) out of the context."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatch(candidate.split("/")[-1], pattern[3:]):
                return True
    return False


def dockerignore_patterns():
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_build_stage_compiles_the_gateway_from_the_locked_workspace():
    build = stages()[0]
    assert re.fullmatch(r"rust:[\w.-]*bookworm", build[0]), build[0]
    assert "COPY . ." in [f"COPY {a}" for a in instructions(build, "COPY")]
    runs = " ".join(instructions(build, "RUN"))
    assert "cargo build --release --locked -p switchboard --bin switchboard" in runs


def test_final_image_is_small_and_non_root():
    all_stages = stages()
    assert len(all_stages) >= 2, "a multi-stage build"
    final = all_stages[-1]
    assert final[0] in ("debian:bookworm-slim",) or final[0].startswith("gcr.io/distroless/cc"), final[0]
    users = instructions(final, "USER")
    assert users, "the final stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root user (runAsNonRoot checks it)"
    # The chart runs the pod as the same user.
    assert int(uid) == chart.chart().values["podSecurityContext"]["runAsUser"]
    # Only the binary comes from the build stage: no toolchain, no sources.
    copies = instructions(final, "COPY")
    assert copies == ["--from=build /out/switchboard /usr/local/bin/switchboard"]


def test_final_image_agrees_with_the_chart():
    final = stages()[-1]
    values = chart.chart().values
    assert instructions(final, "EXPOSE") == [str(values["containerPort"])]
    entrypoint = json.loads(instructions(final, "ENTRYPOINT")[-1])
    assert entrypoint == ["/usr/local/bin/switchboard"]
    assert json.loads(instructions(final, "CMD")[-1]) == chart.render_set("defaults").container["args"]
    # The chart's preStop hook runs /bin/sleep, which distroless images do not have.
    pre_stop = chart.render_set("defaults").container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "/bin/sleep"
    assert final[0].startswith("debian:"), "the preStop hook needs coreutils in the image"


def test_final_image_has_a_data_directory_its_user_can_write():
    """The default SQLite store lives in SWITCHBOARD_DATA_DIR: the image points it at a
    directory it creates for its own user, the path where the chart mounts its volume."""
    final = stages()[-1]
    env = dict(re.fullmatch(r"(\w+)=(\S+)", e).groups() for e in instructions(final, "ENV"))
    data_dir = env["SWITCHBOARD_DATA_DIR"]
    assert data_dir == chart.render_set("defaults").env()["SWITCHBOARD_DATA_DIR"]["value"]
    user = instructions(final, "USER")[-1]
    runs = " ".join(instructions(final, "RUN"))
    owner, group = user.split(":")
    assert f"install -d -o {owner} -g {group} -m 0750 {data_dir}" in runs


def test_the_image_built_here_is_the_dockerfiles_final_stage():
    """scripts/test-image builds the final stage on a locally made Debian root; what it
    builds is this stage with the binary taken from the build context, nothing else."""
    derived = subprocess.run(
        [str(chart.REPO / "scripts" / "test-image"), "--containerfile"],
        check=True, capture_output=True, text=True,
    ).stdout
    final = DOCKERFILE.read_text().split("\nFROM ")[-1]
    expected = ("FROM " + final).replace(
        "COPY --from=build /out/switchboard /usr/local/bin/switchboard",
        "COPY switchboard /usr/local/bin/switchboard",
    )
    assert derived.rstrip("\n") == expected.rstrip("\n")
    # The packages it installs and the user it runs as are the Dockerfile's own.
    assert [r for r in derived.splitlines() if "apt-get install" in r] == [
        r for r in final.splitlines() if "apt-get install" in r
    ]
    assert "USER 10001:10001" in derived


def test_build_context_keeps_what_cargo_needs_and_drops_target():
    patterns = dockerignore_patterns()
    assert ignored("target", patterns) and ignored(".git", patterns)
    workspace = tomllib.loads((chart.REPO / "Cargo.toml").read_text())["workspace"]
    needed = ["Cargo.toml", "Cargo.lock"] + [f"{m}/Cargo.toml" for m in workspace["members"]]
    # Files compiled into the binary from outside their crate's src/ (widget bundle…).
    for member in workspace["members"]:
        for source in (chart.REPO / member / "src").rglob("*.rs"):
            for included in re.findall(r'include_(?:str|bytes)!\("([^"]+)"\)', source.read_text()):
                if "fixtures" in included:
                    continue  # test data, compiled into tests only
                path = (source.parent / included).resolve()
                needed.append(str(path.relative_to(chart.REPO)))
    assert any(n.startswith("widget/") for n in needed) or not (chart.REPO / "server/src/widget.rs").exists()
    for path in needed:
        assert (chart.REPO / path).exists(), f"{path} is needed by the build but missing"
        assert not ignored(path, patterns), f".dockerignore leaves out {path}"


def test_dockerignore_matcher_works():
    assert ignored("widget/node_modules/x/y.js", ["**/node_modules/"])
    assert ignored("target/debug/switchboard", ["target/"])
    assert not ignored("server/src/main.rs", ["target/", "**/node_modules/"])
    assert Path(DOCKERFILE).is_file()
