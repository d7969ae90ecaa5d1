"""The properties of the rendered release that matter to an operator: probes, drain
timing, secrets, the conversation store, security, spreading, and that the objects
point at each other."""

import base64
import re

import pytest

import chart


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"not a whole number of seconds: {duration!r}"
    return int(match.group(1))


def all_value_sets():
    return pytest.mark.parametrize("value_set", chart.VALUE_SETS)


@all_value_sets()
def test_probes_point_at_health_and_ready_on_the_gateway_port(value_set):
    rendered = chart.render_set(value_set)
    container = rendered.container
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    # The port the probes reach is the one the gateway binds.
    bind = rendered.env()["SWITCHBOARD_BIND"]["value"]
    assert bind == f"0.0.0.0:{ports['http']}"


@all_value_sets()
def test_grace_period_outlasts_prestop_sleep_plus_drain(value_set):
    rendered = chart.render_set(value_set)
    pod = rendered.pod["spec"]
    drain = seconds(rendered.env()["SWITCHBOARD_DRAIN_GRACE"]["value"])
    pre_stop = rendered.container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "/bin/sleep"
    sleep = int(pre_stop[1])
    grace = pod["terminationGracePeriodSeconds"]
    # Kubernetes counts the preStop hook inside the grace period; the gateway then
    # needs the drain grace and a few seconds to close sockets and exit.
    assert grace >= sleep + drain + 10, (grace, sleep, drain)
    assert drain == chart.chart().merge_values(rendered.values)["drain"]["graceSeconds"]


def test_grace_period_follows_the_drain_values():
    rendered = chart.render({"drain": {"graceSeconds": 50, "preStopSleepSeconds": 8}})
    assert rendered.env()["SWITCHBOARD_DRAIN_GRACE"]["value"] == "50s"
    assert rendered.pod["spec"]["terminationGracePeriodSeconds"] == 8 + 50 + 15
    no_hook = chart.render({"drain": {"graceSeconds": 25, "preStopSleepSeconds": 0}})
    assert "lifecycle" not in no_hook.container
    assert no_hook.pod["spec"]["terminationGracePeriodSeconds"] == 40


def secret_strings(values):
    """Every secret text a value set holds (to look for it in the pod spec)."""
    data = values.get("secrets", {}).get("data", {})
    found = [v for v in data.values() if v]
    found += [url for url in [values.get("store", {}).get("postgres", {}).get("url")] if url]
    # The parts of each key list and URL too, so a partial leak is caught.
    for text in list(found):
        found += [part.split(":", 1)[-1] for part in text.split(",")]
        found += re.findall(r"://[^:/@]*:([^@]+)@", text)
    return [s for s in found if len(s) >= 8]


@all_value_sets()
def test_secrets_are_referenced_never_inlined(value_set):
    rendered = chart.render_set(value_set)
    env = rendered.env()
    for name in chart.SECRET_ENV & env.keys():
        assert set(env[name]) == {"name", "valueFrom"}, f"{name} is a literal"
        assert "secretKeyRef" in env[name]["valueFrom"], name
    # The store is named (sqlite) or its URL comes from a Secret, never written here.
    store = env["SWITCHBOARD_STORE"]
    assert store == {"name": "SWITCHBOARD_STORE", "value": "sqlite"} or set(store["valueFrom"]) == {"secretKeyRef"}
    backplane = env.get("SWITCHBOARD_BACKPLANE")
    if backplane is not None and "value" in backplane:
        userinfo = re.match(r"^[a-z]+://([^/]*)@", backplane["value"])
        # Only a reference to the password variable may stand where credentials go.
        assert userinfo is None or re.fullmatch(r"[^:]*:\$\(BACKPLANE_PASSWORD\)", userinfo.group(1))
    for name in chart.SECRET_FILE_ENV & env.keys():
        assert env[name]["value"].startswith("/etc/switchboard/secrets/")
    # No secret text appears in anything but the Secret itself (base64 there).
    pod_side = [d for d in rendered.docs if d["kind"] != "Secret"]
    text = repr(pod_side) + rendered.notes
    for secret in secret_strings(rendered.values):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text


@all_value_sets()
def test_every_secret_reference_resolves(value_set):
    """Each key the pod reads exists in the Secret the chart made, or belongs to a
    Secret the operator named; files are mounted where the variables point."""
    rendered = chart.render_set(value_set)
    values = chart.chart().merge_values(rendered.values)
    made = rendered.maybe("Secret")
    made_keys = set(made["data"]) if made else set()
    external = {values["secrets"]["existingSecret"], values["backplane"]["password"]["existingSecret"]}
    external.add(values["store"]["postgres"]["existingSecret"])
    external |= {e["valueFrom"]["secretKeyRef"]["name"] for e in values["extraEnv"] if "valueFrom" in e}
    for item in rendered.container["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        if made and ref["name"] == made["metadata"]["name"]:
            assert ref["key"] in made_keys, ref
        else:
            assert ref["name"] in external - {""}, ref
    volumes = {v["name"]: v for v in rendered.pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in rendered.container["volumeMounts"]}
    for name in chart.SECRET_FILE_ENV & rendered.env().keys():
        path = rendered.env()[name]["value"]
        directory, file_name = path.rsplit("/", 1)
        volume = volumes[mounts[directory]]["secret"]
        item = next(i for i in volume["items"] if i["path"] == file_name)
        if made and volume["secretName"] == made["metadata"]["name"]:
            assert item["key"] in made_keys
        else:
            assert volume["secretName"] == values["secrets"]["existingSecret"]


def test_chart_secret_holds_the_values_given():
    rendered = chart.render_set("redis")
    data = {k: base64.b64decode(v).decode() for k, v in rendered.get("Secret")["data"].items()}
    given = chart.load_values("redis")["secrets"]["data"]
    assert data == {
        "jwt-hs256-secret": given["jwtHs256Secret"],
        "publisher-keys": given["publisherKeys"],
        "admin-keys": given["adminKeys"],
    }
    # A change of secret rolls the pods: the pod template carries the Secret's hash.
    changed = chart.load_values("redis")
    changed["secrets"]["data"]["adminKeys"] = "ops:another-admin-secret-0123456789"
    annotation = "checksum/secret"
    assert (
        chart.render(changed).pod["metadata"]["annotations"][annotation]
        != rendered.pod["metadata"]["annotations"][annotation]
    )


def test_existing_secret_is_used_and_none_is_created():
    rendered = chart.render_set("existing-secret")
    assert rendered.maybe("Secret") is None
    env = rendered.env()
    refs = {
        name: item["valueFrom"]["secretKeyRef"]
        for name, item in env.items()
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert refs == {
        "SWITCHBOARD_PUBLISHER_KEYS": {"name": "switchboard-secrets", "key": "publisher-keys"},
        "SWITCHBOARD_ADMIN_KEYS": {"name": "switchboard-secrets", "key": "admin-keys"},
        "SWITCHBOARD_MODEL_API_KEY": {"name": "switchboard-secrets", "key": "openai-key"},
        "SWITCHBOARD_BACKPLANE": {"name": "switchboard-secrets", "key": "redis-url"},
        "SWITCHBOARD_STORE": {"name": "switchboard-secrets", "key": "store-url"},
    }
    assert env["SWITCHBOARD_JWT_PUBLIC_KEY_FILE"]["value"] == "/etc/switchboard/secrets/jwt-public-key.pem"
    assert env["SWITCHBOARD_JWT_ALGORITHM"]["value"] == "RS256"
    volume = next(v for v in rendered.pod["spec"]["volumes"] if v["name"] == "secret-files")
    assert volume["secret"]["secretName"] == "switchboard-secrets"
    assert volume["secret"]["items"] == [{"key": "jwt.pem", "path": "jwt-public-key.pem"}]
    # The operator's Secret is not the chart's to hash.
    assert "checksum/secret" not in rendered.pod["metadata"].get("annotations", {})


def test_backplane_selection():
    memory = chart.render_set("defaults").env()
    assert memory["SWITCHBOARD_BACKPLANE"]["value"] == "memory"
    redis = chart.render_set("redis").env()
    names = [e["name"] for e in chart.render_set("redis").container["env"]]
    # Kubernetes only substitutes variables defined earlier in the list.
    assert names.index("BACKPLANE_PASSWORD") < names.index("SWITCHBOARD_BACKPLANE")
    assert redis["BACKPLANE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "sb-redis", "key": "redis-password"}
    assert redis["SWITCHBOARD_BACKPLANE"]["value"] == (
        "redis://:$(BACKPLANE_PASSWORD)@sb-redis-master.chat.svc.cluster.local:6379"
    )
    nats = chart.render_set("nats").env()
    assert nats["SWITCHBOARD_BACKPLANE"]["valueFrom"]["secretKeyRef"] == {
        "name": "sb-switchboard",
        "key": "backplane-url",
    }
    assert nats["SWITCHBOARD_BACKPLANE_PREFIX"]["value"] == "chat"
    plain = chart.render_set("ingress-traefik").env()
    assert plain["SWITCHBOARD_BACKPLANE"]["value"] == "nats://nats.chat.svc:4222"
    hpa = chart.render_set("hpa").env()
    assert hpa["SWITCHBOARD_BACKPLANE"]["value"] == "tls://switchboard:$(BACKPLANE_PASSWORD)@nats.chat.svc:4222"


@all_value_sets()
def test_pod_runs_non_root_read_only_without_capabilities(value_set):
    rendered = chart.render_set(value_set)
    pod = rendered.pod["spec"]
    security = rendered.container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert pod["automountServiceAccountToken"] is False
    # Service links would put SWITCHBOARD_PORT and friends into the environment.
    assert pod["enableServiceLinks"] is False
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {"mountPath": "/tmp", "name": "tmp"} in rendered.container["volumeMounts"]
    resources = rendered.container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


@all_value_sets()
def test_objects_select_the_pods_and_ports_that_exist(value_set):
    rendered = chart.render_set(value_set)
    pod_labels = rendered.pod["metadata"]["labels"]
    deployment = rendered.get("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = rendered.get("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in rendered.container["ports"]}
    pdb = rendered.get("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert rendered.pod["spec"]["serviceAccountName"] == rendered.get("ServiceAccount")["metadata"]["name"]
    ingress = rendered.maybe("Ingress")
    if ingress:
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == service["metadata"]["name"]
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    monitor = rendered.maybe("ServiceMonitor")
    if monitor:
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    policy = rendered.maybe("NetworkPolicy")
    if policy:
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


@all_value_sets()
def test_replicas_spread_over_nodes_and_zones(value_set):
    rendered = chart.render_set(value_set)
    pod = rendered.pod["spec"]
    selector = rendered.get("Deployment")["spec"]["selector"]["matchLabels"]
    anti = pod["affinity"]["podAntiAffinity"]
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [
        t["podAffinityTerm"] for t in anti["preferredDuringSchedulingIgnoredDuringExecution"]
    ]
    assert terms[0]["topologyKey"] == "kubernetes.io/hostname"
    assert terms[0]["labelSelector"]["matchLabels"] == selector
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"] == selector


def test_rollout_adds_a_pod_before_removing_one():
    strategy = chart.render_set("redis").get("Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


@pytest.mark.parametrize("value_set", ["defaults", "sqlite"])
def test_sqlite_rollout_stops_the_old_pod_first(value_set):
    """Two pods never hold the ReadWriteOnce volume and the SQLite file at once."""
    assert chart.render_set(value_set).get("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    disabled = chart.render({"store": {"sqlite": {"persistence": {"enabled": False}}}})
    assert disabled.get("Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def data_volume(rendered: chart.Rendered) -> dict:
    """The volume mounted where SWITCHBOARD_DATA_DIR points."""
    data_dir = rendered.env()["SWITCHBOARD_DATA_DIR"]["value"]
    mount = next(m for m in rendered.container["volumeMounts"] if m["mountPath"] == data_dir)
    assert not mount.get("readOnly", False)
    return next(v for v in rendered.pod["spec"]["volumes"] if v["name"] == mount["name"])


def test_sqlite_keeps_the_database_on_a_claim():
    rendered = chart.render_set("defaults")
    env = rendered.env()
    assert env["SWITCHBOARD_STORE"]["value"] == "sqlite"
    assert env["SWITCHBOARD_DATA_DIR"]["value"] == "/data"
    # SQLite's temporary files go to the volume, not to the 64Mi /tmp.
    assert env["SQLITE_TMPDIR"]["value"] == "/data"
    assert env["SWITCHBOARD_RETENTION_DAYS"]["value"] == "90"
    assert "SWITCHBOARD_STORE_MAX_CONNECTIONS" not in env
    claim = rendered.get("PersistentVolumeClaim")
    assert data_volume(rendered) == {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    assert claim["metadata"]["name"] == "sb-switchboard-data"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    # `helm uninstall` does not take the conversations with it.
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    # The pod (uid 10001, read-only root) can write the volume: it is group-owned by fsGroup.
    assert rendered.pod["spec"]["securityContext"]["fsGroup"] == 10001

    custom = chart.render_set("sqlite")
    claim = custom.get("PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "annotations" not in claim["metadata"]
    assert custom.env()["SWITCHBOARD_RETENTION_DAYS"]["value"] == "30"

    no_class = chart.render({"store": {"sqlite": {"persistence": {"storageClass": "-"}}}})
    assert no_class.get("PersistentVolumeClaim")["spec"]["storageClassName"] == ""


def test_sqlite_on_an_existing_claim_or_without_persistence():
    existing = chart.render({"store": {"sqlite": {"persistence": {"existingClaim": "chat-data"}}}})
    assert existing.maybe("PersistentVolumeClaim") is None
    assert data_volume(existing)["persistentVolumeClaim"] == {"claimName": "chat-data"}
    ephemeral = chart.render({"store": {"sqlite": {"persistence": {"enabled": False}}}})
    assert ephemeral.maybe("PersistentVolumeClaim") is None
    assert data_volume(ephemeral)["emptyDir"] == {}
    assert "on an emptyDir: conversations are lost" in ephemeral.notes


@pytest.mark.parametrize("value_set", [s for s in chart.VALUE_SETS if s not in ("defaults", "sqlite")])
def test_postgres_store_url_comes_from_a_secret(value_set):
    rendered = chart.render_set(value_set)
    env = rendered.env()
    values = chart.chart().merge_values(rendered.values)["store"]
    assert values["type"] == "postgres"
    ref = env["SWITCHBOARD_STORE"]["valueFrom"]["secretKeyRef"]
    if values["postgres"]["existingSecret"]:
        assert ref == {"name": values["postgres"]["existingSecret"], "key": values["postgres"]["existingSecretKey"]}
    else:
        made = rendered.get("Secret")
        assert ref == {"name": made["metadata"]["name"], "key": "store-url"}
        assert base64.b64decode(made["data"]["store-url"]).decode() == values["postgres"]["url"]
    assert env["SWITCHBOARD_STORE_MAX_CONNECTIONS"]["value"] == str(values["postgres"]["maxConnections"])
    assert env["SWITCHBOARD_RETENTION_DAYS"]["value"] == str(values["retentionDays"])
    # No data volume: every replica shares the database.
    assert "SWITCHBOARD_DATA_DIR" not in env and "SQLITE_TMPDIR" not in env
    assert rendered.maybe("PersistentVolumeClaim") is None
    assert "data" not in {v["name"] for v in rendered.pod["spec"]["volumes"]}


def test_a_changed_store_url_rolls_the_pods():
    rendered = chart.render_set("nats")
    changed = chart.load_values("nats")
    changed["store"]["postgres"]["url"] = "postgres://switchboard:another-password-0123@pg:5432/switchboard"
    annotation = "checksum/secret"
    assert (
        chart.render(changed).pod["metadata"]["annotations"][annotation]
        != rendered.pod["metadata"]["annotations"][annotation]
    )
    # A Secret that holds only the store URL is still the chart's to create and hash.
    only_store = chart.render(
        {
            "replicaCount": 2,
            "backplane": {"type": "redis", "url": "redis://redis:6379"},
            "store": {"type": "postgres", "postgres": {"url": "postgres://u:pg-password-0123@pg/chat"}},
        }
    )
    assert list(only_store.get("Secret")["data"]) == ["store-url"]
    assert "checksum/secret" in only_store.pod["metadata"]["annotations"]
    assert "store.postgres.existingSecret" in only_store.notes


def test_autoscaler_owns_the_replica_count():
    rendered = chart.render_set("hpa")
    assert "replicas" not in rendered.get("Deployment")["spec"]
    hpa = rendered.get("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": rendered.get("Deployment")["metadata"]["name"],
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 12)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["metrics"]}
    assert targets == {"cpu": 60, "memory": 80}
    # Scale down one pod at a time: each removal moves its sockets.
    assert hpa["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    assert chart.render_set("redis").get("Deployment")["spec"]["replicas"] == 3


def test_ingress_annotations_per_controller():
    nginx = chart.render_set("ingress-nginx").get("Ingress")
    annotations = nginx["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert nginx["spec"]["ingressClassName"] == "nginx"
    assert nginx["spec"]["tls"] == [{"secretName": "chat-example-com-tls", "hosts": ["chat.example.com"]}]

    traefik = chart.render_set("ingress-traefik")
    assert traefik.get("Ingress")["metadata"]["annotations"] == {"traefik.ingress.kubernetes.io/router.tls": "true"}
    assert "respondingTimeouts.readTimeout" in traefik.notes

    alb = chart.render_set("ingress-alb")
    annotations = alb.get("Ingress")["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/load-balancer-attributes"] == "idle_timeout.timeout_seconds=4000"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/ready"
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    grace = alb.pod["spec"]["terminationGracePeriodSeconds"]
    assert annotations["alb.ingress.kubernetes.io/target-group-attributes"] == (
        f"deregistration_delay.timeout_seconds={grace}"
    )

    # An operator's annotation wins over the preset.
    override = chart.load_values("ingress-nginx")
    override["ingress"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] = "7200"
    annotations = chart.render(override).get("Ingress")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"


def test_settings_reach_the_gateway_environment():
    env = chart.render_set("everything").env()
    literal = {name: item["value"] for name, item in env.items() if "value" in item}
    assert literal | {
        "SWITCHBOARD_LOG_FORMAT": "text",
        "RUST_LOG": "info,switchboard=debug",
        "SWITCHBOARD_ALLOW_ANONYMOUS": "false",
        "SWITCHBOARD_DEFAULT_ORG": "acme",
        "SWITCHBOARD_DEMO_SEED": "true",
        "SWITCHBOARD_HISTORY_MAX_EVENTS": "5000",
        "SWITCHBOARD_HISTORY_MAX_AGE": "7d",
        "SWITCHBOARD_MAX_CONNECTIONS": "20000",
        "SWITCHBOARD_HEARTBEAT": "20s",
        "SWITCHBOARD_HEARTBEAT_TIMEOUT": "50s",
        "SWITCHBOARD_TURN_DEADLINE": "90s",
        "SWITCHBOARD_KNOWLEDGE_FILE": "/etc/switchboard/knowledge/knowledge.json",
        "SWITCHBOARD_MAX_QUEUED_TURNS": "4",
        "SWITCHBOARD_BACKPLANE_PREFIX": "tenant-a",
        "SWITCHBOARD_RETENTION_DAYS": "30",
        "SWITCHBOARD_STORE_MAX_CONNECTIONS": "25",
    } == literal
    assert env["SWITCHBOARD_SERVER_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    origins = chart.render_set("redis").env()
    assert origins["SWITCHBOARD_WS_ALLOWED_ORIGINS"]["value"] == "https://www.example.com"
    model = chart.render_set("nats").env()
    assert model["SWITCHBOARD_MODEL_PROVIDER"]["value"] == "openai"
    assert model["SWITCHBOARD_MODEL_BASE_URL"]["value"] == "https://llm.internal.example.com/v1"
    # Defaults leave the gateway's own defaults alone.
    defaults = chart.render_set("defaults").env()
    assert "SWITCHBOARD_HISTORY_MAX_EVENTS" not in defaults
    assert "SWITCHBOARD_ALLOW_ANONYMOUS" not in defaults
    assert defaults["SWITCHBOARD_LOG_FORMAT"]["value"] == "json"


def test_image_reference():
    assert chart.render_set("defaults").container["image"] == "switchboard:0.1.0"
    assert chart.render({"image": {"tag": "1.2.3"}}).container["image"] == "switchboard:1.2.3"
    pinned = chart.render_set("everything").container["image"]
    assert pinned == "registry.example.com/switchboard@sha256:" + "0123456789abcdef" * 4


def test_notes_tell_how_to_reach_the_gateway():
    assert "wss://chat.example.com/ws" in chart.render_set("ingress-nginx").notes
    notes = chart.render_set("defaults").notes
    assert "port-forward service/sb-switchboard 8080:80" in notes
    assert "backplane.type to redis or nats" in notes
    assert "on the claim sb-switchboard-data" in notes and "store.type to postgres" in notes
    assert "existingSecret" in chart.render_set("redis").notes
