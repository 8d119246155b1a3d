"""The Kustomize base and overlays render offline, pass the Kubernetes 1.30 schemas
strictly (unknown fields are errors), and keep the properties the product relies on."""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from deploy.rendering import (
    KUBERNETES_VERSION,
    SECRET_KEYS,
    SECRET_NAME,
    Rendered,
    product_env_names,
    render,
    require_module,
)
from graflow_dist.broker.keys import Keyspace

KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
SHORT_TOLERATION_S = 60
NODE_FAILURE_TAINTS = {"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"}


def strict_errors(doc: dict[str, Any]) -> str | None:
    """kubernetes-validate's check (the code behind ``--strict -k 1.30.0``)."""
    kv = require_module("kubernetes_validate", "kubernetes-validate")
    try:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
    except kv.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}"
    return None


def keda_round_trip_diff(doc: dict[str, Any]) -> str | None:
    """Pydantic ignores unknown keys: compare the input with what the model kept."""
    keda = require_module("cloudcoil.models.keda.v1alpha1", "cloudcoil-models-keda")
    model = getattr(keda, doc["kind"])
    kept = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True)
    return None if kept == doc else f"{doc['kind']}: {_first_difference(doc, kept)}"


def _first_difference(given: Any, kept: Any, path: str = "") -> str:
    if isinstance(given, dict) and isinstance(kept, dict):
        for key in given:
            if key not in kept:
                return f"{path}.{key} is not a field of the KEDA model (typo?)"
            if given[key] != kept[key]:
                return _first_difference(given[key], kept[key], f"{path}.{key}")
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        for i, (a, b) in enumerate(zip(given, kept, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{i}]")
    return f"{path}: {given!r} became {kept!r}"


# Metadata the KEDA redis (list) scaler reads; any other key is a typo it ignores.
REDIS_SCALER_METADATA = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
    "listName", "listLength", "activationListLength", "databaseIndex", "enableTLS",
    "unsafeSsl", "usernameFromEnv", "passwordFromEnv",
}


# --- schemas ---------------------------------------------------------------------------


def test_every_object_passes_the_strict_kubernetes_schema(rendered: Rendered) -> None:
    kv = require_module("kubernetes_validate", "kubernetes-validate")
    errors, unknown = [], []
    for doc in rendered.docs:
        try:
            error = strict_errors(doc)
        except kv.SchemaNotFoundError:
            unknown.append(doc["kind"])
            continue
        if error:
            errors.append(error)
    assert not errors, "\n".join(errors)
    # Only KEDA's custom resources lack a built-in schema; they are checked below.
    assert set(unknown) == KEDA_KINDS


def test_keda_objects_match_the_keda_models(rendered: Rendered) -> None:
    diffs = [keda_round_trip_diff(d) for d in rendered.docs if d["kind"] in KEDA_KINDS]
    assert not [d for d in diffs if d], "\n".join(d for d in diffs if d)
    for scaled in rendered.of_kind("ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            metadata = trigger["metadata"]
            assert set(metadata) <= REDIS_SCALER_METADATA, set(metadata) - REDIS_SCALER_METADATA
            assert all(isinstance(v, str) for v in metadata.values()), \
                f"KEDA trigger metadata values must be strings: {metadata}"


def test_the_validators_catch_typos() -> None:
    """Guards the two checks above against passing vacuously."""
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
    }
    assert strict_errors(deployment) is None
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 45
    assert strict_errors(broken) is not None
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
              "metadata": {"name": "x"},
              "spec": {"scaleTargetRef": {"name": "w"},
                       "triggers": [{"type": "redis", "metadata": {"listName": "q"}}]}}
    assert keda_round_trip_diff(scaled) is None
    scaled["spec"]["maxReplicas"] = 3
    assert "maxReplicas" in (keda_round_trip_diff(scaled) or "")


# --- KEDA ------------------------------------------------------------------------------


def test_keda_scales_the_worker_on_the_queue_and_the_leases(rendered: Rendered) -> None:
    [scaled] = rendered.of_kind("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert rendered.has("Deployment", target["name"])
    assert target["name"] == "graflow-worker"

    keys = Keyspace(rendered.settings()["GRAFLOW_DIST_PREFIX"])
    triggers = {t["metadata"]["listName"]: t for t in scaled["spec"]["triggers"]}
    queue, leases = keys.rq_queue(keys.queue_name), keys.leases
    assert set(triggers) == {queue, leases}
    assert all(t["type"] == "redis" for t in triggers.values())
    assert int(triggers[queue]["metadata"]["listLength"]) >= 1
    # One replica per job being run: scale-down never strands work in flight.
    assert triggers[leases]["metadata"]["listLength"] == "1"
    assert scaled["spec"]["maxReplicaCount"] >= max(1, scaled["spec"]["minReplicaCount"])


def test_keda_reaches_redis_from_its_own_namespace(rendered: Rendered) -> None:
    """KEDA's operator runs elsewhere: the address must be the fully qualified Service."""
    [scaled] = rendered.of_kind("ScaledObject")
    namespace = scaled["metadata"]["namespace"]
    redis_service = rendered.get("Service", "graflow-redis")
    port = redis_service["spec"]["ports"][0]["port"]
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["metadata"]["address"] == \
            f"graflow-redis.{namespace}.svc.cluster.local:{port}"
        # The same database as GRAFLOW_DIST_REDIS_URL (".../0").
        assert trigger["metadata"].get("databaseIndex", "0") == \
            _redis_url_template().rsplit("/", 1)[1]


def test_keda_authenticates_with_the_redis_password(rendered: Rendered) -> None:
    [scaled] = rendered.of_kind("ScaledObject")
    for trigger in scaled["spec"]["triggers"]:
        auth = rendered.get("TriggerAuthentication", trigger["authenticationRef"]["name"])
        refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
        assert refs["password"]["name"] == SECRET_NAME
        assert refs["password"]["key"] == "redis-password"


# --- pods ------------------------------------------------------------------------------


def test_every_pod_runs_non_root_and_hardened(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] > 0 and security["runAsGroup"] > 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        assert rendered.has("ServiceAccount", pod["serviceAccountName"]), name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            assert "memory" in container["resources"]["limits"], name


@pytest.mark.parametrize("name", ["graflow-worker", "graflow-coordinator"])
def test_health_probes_use_livez_and_readyz(rendered: Rendered, name: str) -> None:
    container = rendered.container("Deployment", name)
    port = int(rendered.settings()["GRAFLOW_DIST_METRICS_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # /livez never touches Redis: liveness (and startup) must use it, not /readyz.
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    if name == "graflow-coordinator":
        # A standby's /readyz is 503: as a readiness probe it would stall every rollout.
        assert "readinessProbe" not in container
    else:
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe not in container:
            continue
        probe_port = container[probe]["httpGet"]["port"]
        assert ports.get(probe_port, probe_port) == port, f"{name} {probe} port"


def test_workers_get_more_time_to_stop_than_their_grace_period(rendered: Rendered) -> None:
    worker = rendered.get("Deployment", "graflow-worker")
    grace_s = float(rendered.settings()["GRAFLOW_DIST_GRACE_PERIOD_S"])
    termination_s = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert termination_s >= grace_s + 10
    # The cluster autoscaler caps graceful termination at 600 s by default.
    assert termination_s <= 600


def test_the_worker_is_scaled_by_keda_one_process_per_pod(rendered: Rendered) -> None:
    worker = rendered.get("Deployment", "graflow-worker")
    assert "replicas" not in worker["spec"], "KEDA owns the worker replica count"
    args = rendered.container("Deployment", "graflow-worker")["args"]
    assert args[:2] == ["graflow-dist", "worker"]
    assert "--concurrency" not in args


@pytest.mark.parametrize("name", ["graflow-worker", "graflow-coordinator"])
def test_pods_leave_a_lost_node_quickly(rendered: Rendered, name: str) -> None:
    pod = rendered.get("Deployment", name)["spec"]["template"]["spec"]
    short = {t["key"] for t in pod["tolerations"]
             if t["effect"] == "NoExecute" and t["operator"] == "Exists"
             and t["tolerationSeconds"] <= SHORT_TOLERATION_S}
    assert short >= NODE_FAILURE_TAINTS


@pytest.mark.parametrize("name", ["graflow-worker", "graflow-coordinator"])
def test_disruption_budgets_cover_the_pods_and_allow_unhealthy_eviction(
        rendered: Rendered, name: str) -> None:
    labels = rendered.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
    budgets = [b for b in rendered.of_kind("PodDisruptionBudget")
               if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
    assert len(budgets) == 1, f"expected one PodDisruptionBudget selecting {name}"
    assert budgets[0]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_coordinators_run_as_a_pair_with_a_shared_checkpoint_store(rendered: Rendered) -> None:
    coordinator = rendered.get("Deployment", "graflow-coordinator")
    assert coordinator["spec"]["replicas"] == 2
    assert rendered.container("Deployment", "graflow-coordinator")["args"] == \
        ["graflow-dist", "coordinator"]
    settings = rendered.settings()
    directory = settings["GRAFLOW_DIST_CHECKPOINT_DIR"]
    if directory.startswith(("redis://", "rediss://")):
        # The store takes the password from GRAFLOW_DIST_REDIS_URL for the same host.
        parts = urlsplit(directory)
        assert parts.scheme == settings["REDIS_SCHEME"]
        assert f"{parts.hostname}:{parts.port}" == settings["REDIS_ADDRESS"]
        assert parts.password is None, "no password in the checkpoint URL"
        assert not rendered.of_kind("PersistentVolumeClaim")
        return
    mounts = rendered.container("Deployment", "graflow-coordinator")["volumeMounts"]
    [mount] = [m for m in mounts if m["mountPath"] == directory]
    volumes = {v["name"]: v for v in coordinator["spec"]["template"]["spec"]["volumes"]}
    claim = rendered.get("PersistentVolumeClaim",
                         volumes[mount["name"]]["persistentVolumeClaim"]["claimName"])
    # Leader and standby may sit on different nodes.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


# --- Redis -----------------------------------------------------------------------------


def test_redis_is_the_official_image_with_aof_on_a_volume(rendered: Rendered) -> None:
    redis = rendered.get("StatefulSet", "graflow-redis")
    container = rendered.container("StatefulSet", "graflow-redis")
    assert re.fullmatch(r"redis:\d+(\.\d+)*(-[a-z0-9]+)?", container["image"])
    [claim] = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"

    volumes = {v["name"]: v for v in redis["spec"]["template"]["spec"]["volumes"]}
    [config_mount] = [n for n, p in mounts.items() if p == "/etc/redis"]
    config_map = rendered.get("ConfigMap", volumes[config_mount]["configMap"]["name"])
    conf = {line.split()[0]: line.split()[1:] for line in config_map["data"]["redis.conf"]
            .splitlines() if line.strip() and not line.startswith("#")}
    assert conf["appendonly"] == ["yes"]
    assert conf["appendfsync"] == ["everysec"]
    assert conf["dir"] == ["/data"]
    assert conf["maxmemory-policy"] == ["noeviction"]
    assert "requirepass" not in conf
    assert "/etc/redis/redis.conf" in " ".join(container["args"])

    governing = rendered.get("Service", redis["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"


def test_redis_takes_its_password_from_the_secret_on_stdin(rendered: Rendered) -> None:
    container = rendered.container("StatefulSet", "graflow-redis")
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == \
        {"name": SECRET_NAME, "key": "redis-password"}
    script = "\n".join(container["args"])
    assert "redis-server /etc/redis/redis.conf - <<" in script
    assert "requirepass $REDIS_PASSWORD" in script


def test_the_redis_service_matches_the_address_clients_use(rendered: Rendered) -> None:
    host, port = rendered.settings()["REDIS_ADDRESS"].split(":")
    service = rendered.get("Service", host)
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    redis_labels = rendered.get("StatefulSet", "graflow-redis")["spec"]["template"][
        "metadata"]["labels"]
    assert service["spec"]["selector"].items() <= redis_labels.items()


# --- settings and secrets --------------------------------------------------------------


def _redis_url_template() -> str:
    return "$(REDIS_SCHEME)://:$(REDIS_PASSWORD)@$(REDIS_ADDRESS)/0"


def test_settings_name_only_variables_graflow_dist_reads(rendered: Rendered) -> None:
    known = product_env_names()
    names = set(rendered.settings())
    for workload in rendered.workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            names.update(e["name"] for e in container.get("env", []))
    unknown = {n for n in names if n.startswith("GRAFLOW_DIST_")} - known
    assert not unknown, f"graflow-dist reads no such variables: {sorted(unknown)}"


@pytest.mark.parametrize("name", ["graflow-worker", "graflow-coordinator"])
def test_processes_get_the_redis_url_and_the_hmac_secret(rendered: Rendered, name: str) -> None:
    container = rendered.container("Deployment", name)
    [source] = container["envFrom"]
    settings_name = source["configMapRef"]["name"]
    assert settings_name.startswith("graflow-settings")
    defined = set(rendered.get("ConfigMap", settings_name)["data"])
    env = container["env"]
    for i, var in enumerate(env):
        # $(VAR) only expands variables defined before this one.
        for ref in re.findall(r"\$\((\w+)\)", var.get("value", "")):
            assert ref in defined | {e["name"] for e in env[:i]}, f"{name}: $({ref})"
    by_name = {e["name"]: e for e in env}
    assert by_name["GRAFLOW_DIST_REDIS_URL"]["value"] == _redis_url_template()
    assert by_name["GRAFLOW_DIST_SECRET"]["valueFrom"]["secretKeyRef"] == \
        {"name": SECRET_NAME, "key": "hmac-secret"}


def _secret_references(rendered: Rendered) -> set[tuple[str, str]]:
    refs = set()
    for workload in rendered.workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    for auth in rendered.of_kind("TriggerAuthentication"):
        refs.update((r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"])
    return refs


def test_secrets_are_read_from_one_secret(rendered: Rendered) -> None:
    assert _secret_references(rendered) == {(SECRET_NAME, key) for key in SECRET_KEYS}


def test_no_overlay_ships_a_secret() -> None:
    """Every cluster makes its own keys (a fixed key in a repository is no key)."""
    for target in ("base", "overlays/dev", "overlays/production"):
        assert not Rendered(render(target)).of_kind("Secret"), target


def test_pods_serve_health_and_metrics_on_every_interface(rendered: Rendered) -> None:
    """The services listen on 127.0.0.1 unless told otherwise; pods must be reachable
    by the kubelet's probes and by Prometheus."""
    assert rendered.settings()["GRAFLOW_DIST_METRICS_HOST"] == "0.0.0.0"


def test_config_maps_and_claims_referenced_by_pods_exist(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert rendered.has("ConfigMap", volume["configMap"]["name"])
            if "persistentVolumeClaim" in volume:
                assert rendered.has("PersistentVolumeClaim",
                                    volume["persistentVolumeClaim"]["claimName"])
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert rendered.has("ConfigMap", source["configMapRef"]["name"])


def test_overlays_live_in_their_own_namespace(overlay: Rendered) -> None:
    [namespace] = overlay.of_kind("Namespace")
    name = namespace["metadata"]["name"]
    assert all(d["metadata"].get("namespace") == name
               for d in overlay.docs if d["kind"] != "Namespace")

