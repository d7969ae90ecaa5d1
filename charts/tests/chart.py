"""Rendering the chart offline and checking manifests, shared by the chart tests.

Helm runs in-process (helm-python-sdk binds Helm v4's Go SDK), exactly as
`helm template` / `helm install` would render: values are merged with the chart's
defaults and checked against values.schema.json, then the templates run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

TESTS = Path(__file__).resolve().parent
CHART = TESTS.parent / "switchboard"
VALUES = TESTS / "values"
REPO = TESTS.parent.parent

RELEASE = "sb"
NAMESPACE = "chat"

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest
# one kubernetes-validate knows: every manifest must be valid for both.
KUBE_VERSIONS = ("1.27.0", "1.37.0")

# Kinds Kubernetes has no schema for: validated against a schema kept here.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): TESTS / "schemas" / "servicemonitor-monitoring-v1.json",
}

# Every environment variable that carries a secret, so must never be a literal value.
SECRET_ENV = {
    "SWITCHBOARD_JWT_HS256_SECRET",
    "SWITCHBOARD_PUBLISHER_KEYS",
    "SWITCHBOARD_ADMIN_KEYS",
    "SWITCHBOARD_MODEL_API_KEY",
    "SWITCHBOARD_TOOL_SIGNING_KEY",
    "BACKPLANE_PASSWORD",
}
# Variables that name a secret file: their value is a path under a secret mount.
SECRET_FILE_ENV = {"SWITCHBOARD_JWT_PUBLIC_KEY_FILE", "SWITCHBOARD_JWKS_FILE"}

VALUE_SETS = sorted(p.stem for p in VALUES.glob("*.yaml"))

_chart: helm.Chart | None = None


def chart() -> helm.Chart:
    global _chart
    if _chart is None:
        _chart = helm.Chart.load(CHART)
    return _chart


def load_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((VALUES / f"{name}.yaml").read_text()) or {}


@dataclass
class Rendered:
    """One rendering: the manifests by kind and name, and NOTES.txt."""

    values: dict[str, Any]
    docs: list[dict[str, Any]]
    notes: str
    by_file: dict[str, str] = field(repr=False)

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def get(self, kind: str) -> dict[str, Any]:
        matches = [d for d in self.docs if d["kind"] == kind]
        assert len(matches) == 1, f"expected one {kind}, rendered {len(matches)}"
        return matches[0]

    def maybe(self, kind: str) -> dict[str, Any] | None:
        matches = [d for d in self.docs if d["kind"] == kind]
        assert len(matches) <= 1, f"expected at most one {kind}, rendered {len(matches)}"
        return matches[0] if matches else None

    @property
    def pod(self) -> dict[str, Any]:
        return self.get("Deployment")["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]

    def env(self) -> dict[str, dict[str, Any]]:
        """The container's environment by name; a name set twice is a bug."""
        items = self.container.get("env", [])
        names = [e["name"] for e in items]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        assert not duplicated, f"environment variables set twice: {duplicated}"
        return {e["name"]: e for e in items}


def render(values: dict[str, Any] | None = None) -> Rendered:
    """Render the chart as `helm install` would; raises Helm's error on refusal."""
    by_file = chart().render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(by_file.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return Rendered(values=values or {}, docs=docs, notes=notes, by_file=by_file)


def render_set(name: str) -> Rendered:
    return render(load_values(name))


def validate_manifest(doc: dict[str, Any]) -> list[str]:
    """Check one manifest against the Kubernetes schemas (strict: unknown fields are
    errors) of every supported version; returns the problems found."""
    problems = []
    crd_schema = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
    if crd_schema is not None:
        schema = json.loads(crd_schema.read_text())
        validator = jsonschema.Draft202012Validator(schema)
        for error in validator.iter_errors(doc):
            path = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"{doc['kind']}: {path}: {error.message}")
        return problems
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            problems.append(f"{doc['kind']} (Kubernetes {version}): {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{doc['kind']}: no schema: {error.message}")
    return problems
