"""The rendered dev overlay made playable by `podman play kube` (podman 4.3) on a
machine with loopback networking only. Each change stands for something a cluster
provides and podman does not:

- Services and cluster DNS: every pod maps ``graflow-redis`` to the host's loopback
  (``hostAliases``: 10.0.2.2 under slirp4netns), and Redis publishes 127.0.0.1:PORT.
- StatefulSet (unsupported): Redis becomes a Deployment with a PersistentVolumeClaim.
- Secrets: podman reads a Secret from its own secret store, as JSON of base64 values.
- Container ports: podman publishes every containerPort on the host's 0.0.0.0, so they
  are dropped (probes use numbers) except Redis's, published on loopback.
- Dependent variables (``$(REDIS_PASSWORD)`` in an env value) are not expanded by
  podman: they are expanded here, as the kubelet would.
- ConfigMap volumes: podman writes their files for root only; made world-readable
  (``defaultMode``), as Kubernetes' default 0644 is.
- Images: the local builds. KEDA, Services and PodDisruptionBudgets are left out.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

PLAYED_KINDS = ("ConfigMap", "Deployment", "StatefulSet")
HOST_LOOPBACK = "10.0.2.2"  # the host's 127.0.0.1 seen from a slirp4netns namespace
REDIS_PORT = 6379  # in the manifests; Redis is published on a free port instead


def secret_payloads(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Secret name -> the JSON podman expects (key -> base64 value)."""
    payloads = {}
    for doc in docs:
        if doc["kind"] != "Secret":
            continue
        values = {k: base64.b64encode(v.encode()).decode()
                  for k, v in doc.get("stringData", {}).items()}
        values.update(doc.get("data", {}))
        payloads[doc["metadata"]["name"]] = json.dumps(values)
    return payloads


def _values(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, str]]:
    found = {}
    for doc in docs:
        if doc["kind"] == kind:
            data = dict(doc.get("data") or {})
            if kind == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                data.update(doc.get("stringData") or {})
            found[doc["metadata"]["name"]] = data
    return found


def playable(docs: list[dict[str, Any]], *, images: dict[str, str],
             redis_port: int) -> list[dict[str, Any]]:
    out = []
    config_maps = _values(docs, "ConfigMap")
    secrets = _values(docs, "Secret")
    for original in docs:
        if original["kind"] not in PLAYED_KINDS:
            continue
        doc = copy.deepcopy(original)
        doc["metadata"].pop("namespace", None)
        if doc["kind"] == "ConfigMap":  # REDIS_ADDRESS, a redis:// checkpoint store
            doc["data"] = {k: v.replace(f"graflow-redis:{REDIS_PORT}",
                                        f"graflow-redis:{redis_port}")
                           for k, v in doc.get("data", {}).items()}
        if doc["kind"] == "StatefulSet":
            doc, claims = _as_deployment(doc)
            out.extend(claims)
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            _adapt_pod(pod, images, redis_port)
            for container in pod["containers"]:
                _expand_env(container, config_maps, secrets, redis_port)
        out.append(doc)
    return out


def _as_deployment(statefulset: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = statefulset["spec"]
    name = statefulset["metadata"]["name"]
    claims = []
    for template in spec.pop("volumeClaimTemplates", []):
        claim_name = f"{template['metadata']['name']}-{name}-0"
        claims.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": claim_name}, "spec": template["spec"]})
        spec["template"]["spec"].setdefault("volumes", []).append(
            {"name": template["metadata"]["name"],
             "persistentVolumeClaim": {"claimName": claim_name}})
    spec.pop("serviceName", None)
    spec.pop("podManagementPolicy", None)
    spec.pop("updateStrategy", None)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": statefulset["metadata"], "spec": spec}
    return deployment, claims


def _adapt_pod(pod: dict[str, Any], images: dict[str, str], redis_port: int) -> None:
    pod["hostAliases"] = [{"ip": HOST_LOOPBACK, "hostnames": ["graflow-redis"]}]
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            volume["configMap"]["defaultMode"] = 0o444
    for container in pod["containers"]:
        repository = container["image"].rpartition(":")[0]
        container["image"] = images[repository]
        numbers = {p["name"]: p["containerPort"] for p in container.get("ports", [])
                   if "name" in p}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            for handler in ("httpGet", "tcpSocket"):
                target = container.get(probe, {}).get(handler)
                if target and isinstance(target.get("port"), str):
                    target["port"] = numbers[target["port"]]
        if repository == "redis":
            container["ports"] = [{"containerPort": 6379, "hostPort": redis_port,
                                   "hostIP": "127.0.0.1"}]
        else:
            container.pop("ports", None)


def _expand_env(container: dict[str, Any], config_maps: dict[str, dict[str, str]],
                secrets: dict[str, dict[str, str]], redis_port: int) -> None:
    known: dict[str, str] = {}
    for source in container.get("envFrom", []):
        known.update(config_maps[source["configMapRef"]["name"]])
    known = {k: v.replace(f"graflow-redis:{REDIS_PORT}", f"graflow-redis:{redis_port}")
             for k, v in known.items()}
    for variable in container.get("env", []):
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            known[variable["name"]] = secrets[ref["name"]][ref["key"]]
        elif "value" in variable:
            variable["value"] = re.sub(r"\$\((\w+)\)",
                                       lambda m: known.get(m.group(1), m.group(0)),
                                       variable["value"])
            known[variable["name"]] = variable["value"]
