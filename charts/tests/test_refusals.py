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
POSTGRES = {"store": {"type": "postgres", "postgres": {"existingSecret": "pg-app", "existingSecretKey": "uri"}}}
PG_URL = "postgres://switchboard:pg-password-0123456789@pg:5432/chat"


def test_memory_backplane_with_two_replicas_is_refused():
    message = refused({"replicaCount": 2, **POSTGRES}, helm.HelmRenderError)
    assert "backplane.type is memory" in message and "2 replicas" in message
    # The same replicas over Redis render.
    assert chart.render({"replicaCount": 2, **REDIS, **POSTGRES}).get("Deployment")["spec"]["replicas"] == 2


def test_memory_backplane_with_autoscaling_is_refused():
    message = refused({"autoscaling": {"enabled": True, "maxReplicas": 5}, **POSTGRES}, helm.HelmRenderError)
    assert "backplane.type is memory" in message and "5 replicas" in message


def test_sqlite_store_with_two_replicas_is_refused():
    message = refused({"replicaCount": 2, **REDIS}, helm.HelmRenderError)
    assert "store.type is sqlite" in message and "2 replicas" in message
    assert "use store.type=postgres" in message
    # The same replicas with PostgreSQL render.
    assert chart.render({"replicaCount": 2, **REDIS, **POSTGRES}).get("Deployment")["spec"]["replicas"] == 2


def test_sqlite_store_with_autoscaling_is_refused():
    message = refused({"autoscaling": {"enabled": True, "maxReplicas": 5}, **REDIS}, helm.HelmRenderError)
    assert "store.type is sqlite" in message and "5 replicas" in message
    assert chart.render({"autoscaling": {"enabled": True}, **REDIS, **POSTGRES}).maybe("HorizontalPodAutoscaler")


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
        ({"store": {"type": "mysql"}}, "/store/type"),
        ({"store": {"type": "postgres", "postgres": {"url": "mysql://u:p@db/chat"}}}, "/store/postgres/url"),
        ({"store": {"retentionDays": 0}}, "/store/retentionDays"),
        ({"store": {"retentionDays": "90d"}}, "/store/retentionDays"),
        ({"store": {"postgres": {"maxConnections": 0}}}, "/store/postgres/maxConnections"),
        ({"store": {"sqlite": {"persistence": {"size": "lots"}}}}, "/store/sqlite/persistence/size"),
        ({"store": {"sqlite": {"persistence": {"accessMode": "ReadWriteMany"}}}}, "'accessMode'"),
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
            {**REDIS, **POSTGRES, "autoscaling": {"enabled": True, "minReplicas": 6, "maxReplicas": 3}},
            "minReplicas is greater than autoscaling.maxReplicas",
        ),
        ({"store": {"type": "postgres"}}, "store.type is postgres: set store.postgres.existingSecret"),
        (
            {"store": {"type": "postgres", "postgres": {"url": PG_URL, "existingSecret": "pg", "existingSecretKey": "uri"}}},
            "the PostgreSQL URL is set twice",
        ),
        (
            {"store": {"type": "postgres", "postgres": {"existingSecret": "pg-app"}}},
            "set store.postgres.existingSecretKey too",
        ),
        (
            {"store": {"type": "postgres", "postgres": {"url": PG_URL, "existingSecretKey": "uri"}}},
            "store.postgres.existingSecret is empty",
        ),
        ({"store": {"postgres": {"url": PG_URL}}}, "store.postgres is set but store.type is sqlite"),
        (
            {"store": {"postgres": {"existingSecret": "pg-app", "existingSecretKey": "uri"}}},
            "store.postgres is set but store.type is sqlite",
        ),
        (
            {
                "store": {"type": "postgres", "postgres": {"url": PG_URL}},
                "secrets": {"existingSecret": "mine", "existingSecretKeys": {"adminKeys": "admin"}},
            },
            "the chart creates no Secret to hold it",
        ),
        (
            {"extraEnv": [{"name": "SWITCHBOARD_STORE", "value": PG_URL}]},
            "extraEnv sets SWITCHBOARD_STORE to a literal value",
        ),
    ],
)
def test_contradictory_values_are_refused_with_a_reason(values, says):
    message = refused(values, helm.HelmRenderError)
    assert says in message, message


def test_a_refused_password_is_not_echoed():
    message = refused({"backplane": {"type": "redis", "url": "redis://:hunter2-password@redis:6379"}})
    assert "hunter2" not in message
    message = refused({"store": {"postgres": {"url": PG_URL}}})
    assert "pg-password" not in message
    message = refused({"store": {"type": "postgres", "postgres": {"url": PG_URL, "existingSecret": "pg"}}})
    assert "pg-password" not in message
