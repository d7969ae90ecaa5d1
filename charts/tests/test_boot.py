"""The environment the chart gives a pod boots the real gateway.

A small stand-in for the kubelet turns the rendered container into a process: it
resolves secretKeyRefs (from the chart's Secret, or the operator's Secrets the test
plays), the pod name, `$(VAR)` references as Kubernetes substitutes them, secret
files mounted where the variables point, and a directory for each other volume (the
SQLite data volume). Then the gateway must start, answer /health and /ready over a
real Redis or NATS with credentials, keep conversations where the chart said (the
SQLite file on the data volume, or a real PostgreSQL whose URL came from a Secret),
accept the API keys it was given, and on SIGTERM drain and exit 0 well inside the
pod's grace period. Only the listen address changes (port 0 on 127.0.0.1), so tests
can run side by side.
"""

from __future__ import annotations

import base64
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

import chart

POD_NAME = "sb-switchboard-7d9f8c6b5-x2k4q"
BINARY = Path(os.environ.get("SWITCHBOARD_BIN", chart.REPO / "target/debug/switchboard"))
ADMIN_SECRET = "admin-secret-0123456789abcdef"
PUBLISHER_SECRET = "publisher-secret-0123456789abcdef"
RSA_PUBLIC = (chart.REPO / "server/tests/fixtures/jwt/rsa_public.pem").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@contextmanager
def server(argv: list[str], port: int, user: pwd.struct_passwd | None = None):
    as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_user)
    try:
        wait_for(lambda: accepts(port), argv[0])
        yield
    finally:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def redis_with_password(password: str):
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with server(argv + ["--requirepass", password], port):
        yield port


@contextmanager
def nats_with_user(user: str, password: str):
    port = free_port()
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    with tempfile.TemporaryDirectory() as store:
        argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store]
        with server(argv + ["--user", user, "--pass", password], port):
            yield port


def postgres_tool(name: str) -> str:
    """A PostgreSQL server program: on PATH, or where Debian's packages put it."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    assert found, f"{name} is missing: install Debian's postgresql package"
    return found


@contextmanager
def postgres_with_user(user: str, password: str):
    """A throwaway PostgreSQL cluster on a free port; `user` (with `password`) owns it,
    so may create the gateway's schema on first start, as the deploy guide asks."""
    port = free_port()
    # PostgreSQL refuses to run as root: then the cluster belongs to an unprivileged user.
    owner = None
    if os.getuid() == 0:
        names = {entry.pw_name: entry for entry in pwd.getpwall()}
        owner = names.get("postgres") or names["nobody"]
    with tempfile.TemporaryDirectory() as root:
        if owner:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        password_file = Path(root) / "password"
        password_file.write_text(password + "\n")
        if owner:
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
        initdb = [postgres_tool("initdb"), "-D", f"{root}/data", "-U", user, f"--pwfile={password_file}"]
        initdb += ["--auth=scram-sha-256", "--no-sync", "--no-instructions"]
        subprocess.run(initdb, check=True, capture_output=True, **as_owner)
        argv = [postgres_tool("postgres"), "-D", f"{root}/data", "-p", str(port), "-k", root]
        argv += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        with server(argv, port, owner):
            yield port


def postgres_tables(port: int, user: str, password: str) -> list[str]:
    """The tables in the `postgres` database's public schema."""
    query = "select table_name from information_schema.tables where table_schema = 'public' order by 1"
    result = subprocess.run(
        [postgres_tool("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "postgres", "-Atc", query],
        env={**os.environ, "PGPASSWORD": password},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def pod_process_inputs(rendered: chart.Rendered, external_secrets: dict, root: Path):
    """(argv, env) for the rendered container, as the kubelet would start it."""
    secrets = {name: dict(data) for name, data in external_secrets.items()}
    made = rendered.maybe("Secret")
    if made:
        secrets[made["metadata"]["name"]] = {k: base64.b64decode(v).decode() for k, v in made["data"].items()}

    # Volumes: a temporary directory per mount; secret items become files in it.
    volumes = {v["name"]: v for v in rendered.pod["spec"]["volumes"]}
    mounts = {}
    for mount in rendered.container["volumeMounts"]:
        directory = root / mount["name"]
        directory.mkdir()
        volume = volumes[mount["name"]]
        if "secret" in volume:
            source = secrets[volume["secret"]["secretName"]]
            for item in volume["secret"]["items"]:
                (directory / item["path"]).write_text(source[item["key"]])
        mounts[mount["mountPath"]] = str(directory)

    env: dict[str, str] = {}
    for item in rendered.container["env"]:
        if "value" in item:
            # $(NAME) is replaced when NAME was defined earlier; $$ escapes a dollar.
            value = re.sub(
                r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                item["value"],
            )
            for mount_path, directory in mounts.items():
                if value == mount_path or value.startswith(mount_path + "/"):
                    value = directory + value[len(mount_path) :]
        elif "fieldRef" in item["valueFrom"]:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            value = POD_NAME
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secrets[ref["name"]][ref["key"]]
        env[item["name"]] = value
    assert env["SWITCHBOARD_BIND"] == "0.0.0.0:8080"
    env["SWITCHBOARD_BIND"] = "127.0.0.1:0"
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return [str(BINARY), *rendered.container["args"]], env


def http(base: str, path: str, key: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(base + path)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def boot_and_drain(rendered: chart.Rendered, external_secrets: dict, check=None):
    """Start the pod's process; check health, readiness and metrics; SIGTERM it and
    return the seconds it took to exit (asserting exit code 0). With SQLite, the
    database file must be on the data volume by then."""
    assert BINARY.is_file(), f"{BINARY} is missing: build it with cargo build -p switchboard"
    with tempfile.TemporaryDirectory() as tmp:
        argv, env = pod_process_inputs(rendered, external_secrets, Path(tmp))
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = process.stdout.readline()
            if not line.startswith("listening on "):
                process.kill()
                raise AssertionError(f"the gateway did not start: {line!r} {process.stderr.read()}")
            base = line.split()[-1].rstrip("/")
            assert http(base, "/health")[0] == 200
            wait_for(lambda: http(base, "/ready")[0] == 200, "/ready")
            status, metrics = http(base, "/metrics")
            assert status == 200 and "switchboard_connections" in metrics
            if check:
                check(base)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            grace = rendered.pod["spec"]["terminationGracePeriodSeconds"]
            code = process.wait(timeout=grace)
            took = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            stderr = process.stderr.read()
            process.stdout.close()
            process.stderr.close()
        assert code == 0, stderr
        if env["SWITCHBOARD_STORE"] == "sqlite":
            data_dir = env["SWITCHBOARD_DATA_DIR"]
            assert data_dir.startswith(tmp), "the data directory is not on a volume"
            assert (Path(data_dir) / "switchboard.db").is_file(), f"no switchboard.db in the data volume: {stderr}"
        else:
            password = re.match(r"^postgres(?:ql)?://[^:/@]*:([^@]+)@", env["SWITCHBOARD_STORE"]).group(1)
            assert password not in stderr, "the PostgreSQL password leaked into the logs"
        # Nothing the gateway logs may contain the secrets the pod was given.
        for name in chart.SECRET_ENV & env.keys():
            for part in env[name].replace(",", ":").split(":"):
                if len(part) >= 16:
                    assert part not in stderr, f"{name} leaked into the logs"
        return took


def api_keys_work(base: str):
    # The admin key from the Secret is the one the gateway checks against.
    assert http(base, "/v1/admin/documents?org_id=default", ADMIN_SECRET)[0] == 200
    assert http(base, "/v1/admin/documents?org_id=default", "not-the-admin-key-0123456789")[0] == 401


def api_keys_and_publisher_key_work(base: str):
    api_keys_work(base)
    # The publisher key is known (so not 401) but may not manage documents.
    assert http(base, "/v1/admin/documents?org_id=default", PUBLISHER_SECRET)[0] == 403


def test_memory_release_boots_and_drains():
    values = {
        "secrets": {
            "data": {
                "jwtHs256Secret": "hs256-secret-that-is-long-enough-0123456789",
                "adminKeys": f"ops:{ADMIN_SECRET}",
                "publisherKeys": f"orders:{PUBLISHER_SECRET}",
            }
        },
        "config": {
            "historyMaxEvents": 500,
            "historyMaxAge": "2h",
            "heartbeat": "20s",
            "heartbeatTimeout": "45s",
            "turnDeadline": "60s",
            "maxConnections": 1000,
            "allowAnonymous": True,
            "defaultOrg": "default",
            "demoSeed": True,
            "wsAllowedOrigins": ["https://www.example.com"],
            "corsOrigins": ["https://www.example.com"],
        },
    }
    took = boot_and_drain(chart.render(values), {}, api_keys_and_publisher_key_work)
    # No turn was running: the drain does not wait for its grace.
    assert took < 10


def test_redis_release_with_password_from_a_secret_boots_and_drains():
    password = "redis-password-0123456789"
    pg_password = "pg-password-0123456789"
    with redis_with_password(password) as port, postgres_with_user("switchboard", pg_password) as pg_port:
        values = {
            "replicaCount": 3,
            "backplane": {
                "type": "redis",
                "url": f"redis://127.0.0.1:{port}",
                "password": {"existingSecret": "sb-redis", "key": "redis-password"},
            },
            "store": {"type": "postgres", "postgres": {"existingSecret": "sb-postgres-app", "existingSecretKey": "uri"}},
            "secrets": {"data": {"adminKeys": f"ops:{ADMIN_SECRET}"}},
            "drain": {"graceSeconds": 5, "preStopSleepSeconds": 1},
        }
        rendered = chart.render(values)
        assert password not in repr(rendered.docs)
        store_url = f"postgresql://switchboard:{pg_password}@127.0.0.1:{pg_port}/postgres"
        external = {"sb-redis": {"redis-password": password}, "sb-postgres-app": {"uri": store_url}}
        assert postgres_tables(pg_port, "switchboard", pg_password) == []
        boot_and_drain(rendered, external, api_keys_work)
        # The migrations ran at start, in the database the Secret named.
        assert postgres_tables(pg_port, "switchboard", pg_password) != []


def test_nats_release_with_urls_from_an_existing_secret_and_a_mounted_public_key_boots():
    pg_password = "pg-password-abcdef0123456789"
    with (
        nats_with_user("switchboard", "nats-password-0123456789") as port,
        postgres_with_user("sb", pg_password) as pg_port,
    ):
        values = chart.load_values("existing-secret")
        values["backplane"]["type"] = "nats"
        values["model"] = {"provider": "offline"}
        rendered = chart.render(values)
        operator_secret = {
            "jwt.pem": RSA_PUBLIC,
            "publisher-keys": f"orders:{PUBLISHER_SECRET}",
            "admin-keys": f"ops:{ADMIN_SECRET}",
            "openai-key": "sk-unused-0123456789abcdef",
            "redis-url": f"nats://switchboard:nats-password-0123456789@127.0.0.1:{port}",
            "store-url": f"postgres://sb:{pg_password}@127.0.0.1:{pg_port}/postgres",
        }
        boot_and_drain(rendered, {"switchboard-secrets": operator_secret}, api_keys_and_publisher_key_work)
        assert postgres_tables(pg_port, "sb", pg_password) != []


def test_a_wrong_backplane_password_keeps_the_pod_from_starting():
    """The stand-in is not too kind: the same release with a wrong password fails."""
    with redis_with_password("the-real-password-0123456789") as port:
        rendered = chart.render(
            {
                "backplane": {
                    "type": "redis",
                    "url": f"redis://127.0.0.1:{port}",
                    "password": {"existingSecret": "sb-redis", "key": "redis-password"},
                }
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            argv, env = pod_process_inputs(rendered, {"sb-redis": {"redis-password": "wrong-password-0123"}}, Path(tmp))
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert "SWITCHBOARD_BACKPLANE" in result.stderr
        assert "wrong-password-0123" not in result.stderr


@pytest.mark.parametrize("value_set", chart.VALUE_SETS)
def test_every_value_set_env_is_accepted_by_the_gateway_flags(value_set):
    """`switchboard serve --help` names every SWITCHBOARD_* variable the chart sets,
    so none is a typo the gateway would silently ignore."""
    assert BINARY.is_file(), f"{BINARY} is missing: build it with cargo build -p switchboard"
    help_text = subprocess.run([str(BINARY), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"\bSWITCHBOARD_[A-Z0-9_]+", help_text))
    env = chart.render_set(value_set).env()
    unknown = sorted(n for n in env if n.startswith("SWITCHBOARD_") and n not in known)
    assert unknown == []
