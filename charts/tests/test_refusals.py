"""Values that cannot work are refused at render (so at `helm install`), with a
message that says what to change: by values.schema.json for a wrong value, by the
chart's own checks for values that contradict each other."""

import helm_python as helm
import pytest

import chart


def refused(values, error=helm.HelmError):
    with pytest.raises(error) as caught:
        chart.render(values)
    return str(caught.value)


REDIS = {"backplane": {"type": "redis", "url": "redis://redis:6379"}}


def test_memory_backplane_with_two_replicas_is_refused():
    message = refused({"replicaCount": 2}, helm.HelmRenderError)
    assert "backplane.type is memory" in message and "2 replicas" in message
    # The same replicas over Redis render.
    assert chart.render({"replicaCount": 2, **REDIS}).get("Deployment")["spec"]["replicas"] == 2


def test_memory_backplane_with_autoscaling_is_refused():
    message = refused({"autoscaling": {"enabled": True, "maxReplicas": 5}}, helm.HelmRenderError)
    assert "backplane.type is memory" in message and "5 replicas" in message


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"replicaCount": -1}, "/replicaCount"),
        ({"backplane": {"type": "kafka"}}, "/backplane/type"),
        ({"backplane": {"type": "redis", "url": "http://redis:6379"}}, "/backplane/url"),
        ({"replicas": 3}, "'replicas'"),
        ({"config": {"logFormat": "xml"}}, "/config/logFormat"),
        ({"config": {"historyMaxAge": "one day"}}, "/config/historyMaxAge"),
        ({"drain": {"graceSeconds": -5}}, "/drain/graceSeconds"),
        ({"drain": {"graceSeconds": "25s"}}, "/drain/graceSeconds"),
        ({"ingress": {"controller": "haproxy"}}, "/ingress/controller"),
        ({"ingress": {"timeoutSeconds": 30}}, "/ingress/timeoutSeconds"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"securityContext": {"allowPrivilegeEscalation": True}}, "/securityContext/allowPrivilegeEscalation"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
        ({"secrets": {"data": {"toolSigningKey": "too-short"}}}, "/secrets/data/toolSigningKey"),
        ({"autoscaling": {"targetCPUUtilizationPercentage": 150}}, "/autoscaling/targetCPUUtilizationPercentage"),
    ],
)
def test_schema_rejects_a_bad_value(values, where):
    message = refused(values, helm.HelmValuesError)
    assert "schema" in message and where in message, message
    # The same check runs on its own, as `helm lint` and `helm install` do.
    with pytest.raises(helm.HelmValuesError):
        chart.chart().validate_schema(values)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (
            {"backplane": {"type": "redis", "url": "redis://:hunter2-password@redis:6379"}},
            "backplane.url holds credentials",
        ),
        (
            {"backplane": {"type": "nats", "url": "nats://user:pw@nats:4222"}},
            "backplane.url holds credentials",
        ),
        ({"backplane": {"type": "redis"}}, "set backplane.url"),
        ({"backplane": {"type": "redis", "url": "nats://nats:4222"}}, "must start with redis:// or rediss://"),
        ({"backplane": {"type": "nats", "url": "redis://redis:6379"}}, "must start with nats:// or tls://"),
        ({"backplane": {"url": "redis://redis:6379"}}, "backplane.type is memory but a backplane URL is set"),
        (
            {**REDIS, "secrets": {"data": {"backplaneUrl": "redis://redis:6379"}}},
            "the backplane URL is set twice",
        ),
        (
            {"backplane": {"type": "redis", "url": "redis://r:6379", "password": {"existingSecret": "redis"}}},
            "set backplane.password.key too",
        ),
        ({"terminationGracePeriodSeconds": 30}, "must be at least drain.preStopSleepSeconds + drain.graceSeconds + 10 (40)"),
        (
            {"drain": {"graceSeconds": 60}, "terminationGracePeriodSeconds": 60},
            "terminationGracePeriodSeconds (60)",
        ),
        (
            {"extraEnv": [{"name": "SWITCHBOARD_ADMIN_KEYS", "value": "ops:admin-secret-0123456789"}]},
            "extraEnv sets SWITCHBOARD_ADMIN_KEYS to a literal value",
        ),
        (
            {"extraEnv": [{"name": "SWITCHBOARD_BACKPLANE", "value": "redis://:pw@redis:6379"}]},
            "extraEnv sets SWITCHBOARD_BACKPLANE to a literal value",
        ),
        ({"secrets": {"data": {"adminKeys": "ops:short"}}}, "at least 16 characters"),
        (
            {"secrets": {"data": {"publisherKeys": "a:publisher-secret-0123456789,b:short"}}},
            "secrets.data.publisherKeys",
        ),
        (
            {"secrets": {"existingSecret": "mine", "data": {"adminKeys": "ops:admin-secret-0123456789"}}},
            "secrets.data.adminKeys is set too",
        ),
        ({"secrets": {"existingSecret": "mine"}}, "names no key"),
        ({"secrets": {"existingSecretKeys": {"adminKeys": "admin"}}}, "secrets.existingSecret is empty"),
        (
            {"secrets": {"data": {"jwtHs256Secret": "a-long-enough-hs256-secret-0123456789", "jwks": "{}"}}},
            "one JWT key source",
        ),
        (
            {"secrets": {"data": {"jwtPublicKey": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}}},
            "set auth.jwtAlgorithm",
        ),
        ({"auth": {"jwtAlgorithm": "RS256"}}, "auth.jwtAlgorithm only applies to a public key"),
        (
            {**REDIS, "autoscaling": {"enabled": True, "minReplicas": 6, "maxReplicas": 3}},
            "minReplicas is greater than autoscaling.maxReplicas",
        ),
    ],
)
def test_contradictory_values_are_refused_with_a_reason(values, says):
    message = refused(values, helm.HelmRenderError)
    assert says in message, message


def test_a_refused_password_is_not_echoed():
    message = refused({"backplane": {"type": "redis", "url": "redis://:hunter2-password@redis:6379"}})
    assert "hunter2" not in message
