"""Every value set renders, passes `helm lint --strict`, and yields manifests that the
Kubernetes schemas (strict: no unknown fields) accept, for the oldest and newest
Kubernetes the chart supports."""

import copy
import re

import helm_python as helm
import pytest
import yaml

import chart


@pytest.mark.parametrize("value_set", chart.VALUE_SETS)
def test_value_set_renders_valid_kubernetes_manifests(value_set):
    rendered = chart.render_set(value_set)
    assert rendered.docs, "nothing rendered"
    problems = [problem for doc in rendered.docs for problem in chart.validate_manifest(doc)]
    assert problems == []
    for doc in rendered.docs:
        assert doc["metadata"]["namespace"] == chart.NAMESPACE, doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == chart.RELEASE


@pytest.mark.parametrize("value_set", chart.VALUE_SETS)
def test_value_set_passes_helm_lint_strict(value_set):
    report = helm.lint(chart.CHART, chart.load_values(value_set), strict=True, namespace=chart.NAMESPACE)
    # Severity 1 is "info" (for instance "icon is recommended"); warnings and errors fail.
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert findings == [] and report["errors"] == []


def test_expected_objects_for_each_value_set():
    """Each optional part appears exactly when its value set asks for it."""
    always = ["Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"]
    expected = {
        "defaults": always + ["PersistentVolumeClaim"],
        "sqlite": always + ["PersistentVolumeClaim"],
        "redis": always + ["Secret"],
        "nats": always + ["Secret"],
        "ingress-nginx": always + ["Ingress"],
        "ingress-traefik": always + ["Ingress"],
        "ingress-alb": always + ["Ingress"],
        "existing-secret": always,
        "hpa": always + ["HorizontalPodAutoscaler"],
        "everything": always + ["NetworkPolicy", "Secret", "ServiceMonitor"],
    }
    assert sorted(expected) == chart.VALUE_SETS
    for value_set, kinds in expected.items():
        assert chart.render_set(value_set).kinds() == sorted(kinds), value_set


def test_the_schema_validator_catches_broken_manifests():
    """The validation above can fail: a wrong type, an unknown field and a missing
    required field are each reported."""
    deployment = chart.render_set("defaults").get("Deployment")

    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    assert any("replicas" in p for p in chart.validate_manifest(wrong_type))

    unknown_field = copy.deepcopy(deployment)
    unknown_field["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert chart.validate_manifest(unknown_field) != []

    missing_field = copy.deepcopy(deployment)
    del missing_field["spec"]["selector"]
    assert chart.validate_manifest(missing_field) != []

    monitor = chart.render_set("everything").get("ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "half a minute"
    assert chart.validate_manifest(monitor) != []

    unknown_kind = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert chart.validate_manifest(unknown_kind) != []


def leaf_paths(values, prefix=""):
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, path)
        else:
            yield path


def test_chart_readme_documents_every_value():
    readme = (chart.CHART / "README.md").read_text()
    readme = readme.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, re.MULTILINE))
    values = yaml.safe_load((chart.CHART / "values.yaml").read_text())
    missing = sorted(set(leaf_paths(values)) - documented)
    assert missing == []
    # And documents nothing that is not a value.
    schema_top = set(chart.chart().schema["properties"]) - {"global"}
    assert {p.split(".")[0] for p in documented} <= schema_top


def test_schema_describes_every_top_level_value():
    values = yaml.safe_load((chart.CHART / "values.yaml").read_text())
    assert set(values) <= set(chart.chart().schema["properties"])
