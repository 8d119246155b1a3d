"""The dev overlay's workloads (Redis, two coordinators, a worker, with checkpoints in
Redis) rendered by kustomize and run by `podman play kube`, with the stand-ins that
tests/containers/kube.py lists for what a cluster gives and podman does not. A run
submitted from the host completes and its checkpoints are in Redis."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest
import yaml
from deploy.rendering import render

from containers.kube import playable, secret_payloads
from containers.podman import REDIS_IMAGE, WORKER_IMAGE, build_images, podman
from graflow_dist import Client
from graflow_dist.demo import build_demo_workflow
from graflow_dist.embedded import free_port

pytestmark = [pytest.mark.containers, pytest.mark.slow]
READY_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[dict], int]]:
    build_images()
    # The Secret no overlay ships, made as the dev overlay's comment says
    # (`kubectl create secret generic graflow-secrets --from-literal=...`), fresh keys.
    docs = [*render("overlays/dev"), {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "graflow-secrets", "namespace": "graflow-dev"},
        "stringData": {"redis-password": secrets.token_hex(32),
                       "hmac-secret": secrets.token_hex(32)}}]
    port = free_port()
    workloads = playable(docs, images={"graflow-dist": WORKER_IMAGE, "redis": REDIS_IMAGE},
                         redis_port=port)
    directory = tmp_path_factory.mktemp("kube")
    manifest = directory / "dev.yaml"
    manifest.write_text(yaml.safe_dump_all(workloads))
    payloads = secret_payloads(docs)
    for name, payload in payloads.items():
        podman("secret", "create", name, "-", input_text=payload)
    try:
        podman("play", "kube", "--network", "slirp4netns:allow_host_loopback=true",
               str(manifest), timeout_s=300)
        yield docs, port
    finally:
        podman("play", "kube", "--down", str(manifest), check=False, timeout_s=120)
        for name in payloads:
            podman("secret", "rm", name, check=False)
        for doc in workloads:
            for volume in doc.get("spec", {}).get("template", {}).get("spec", {}).get(
                    "volumes", []):
                if "persistentVolumeClaim" in volume or "configMap" in volume or \
                        "emptyDir" in volume:
                    name = (volume.get("persistentVolumeClaim", {}).get("claimName")
                            or volume.get("configMap", {}).get("name") or volume["name"])
                    podman("volume", "rm", "--force", name, check=False)


def container_names() -> list[str]:
    listed = podman("ps", "--all", "--format", "json").stdout
    return sorted(c["Names"][0] for c in json.loads(listed or "[]")
                  if c["Names"][0].startswith("graflow-") and "-pod-" in c["Names"][0])


def test_the_dev_overlay_runs_under_podman_play_kube(
        played: tuple[list[dict], int], monkeypatch: pytest.MonkeyPatch) -> None:
    docs, port = played
    secret = next(d for d in docs if d["kind"] == "Secret")["stringData"]
    names = container_names()
    assert names == ["graflow-coordinator-pod-0-coordinator",
                     "graflow-coordinator-pod-1-coordinator",
                     "graflow-redis-pod-0-redis", "graflow-worker-pod-0-worker"], names

    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        ready = {n: podman("exec", n, "graflow-dist", "health", "--ready", check=False)
                 for n in names if "redis" not in n}
        if sorted(p.stdout.strip() for p in ready.values() if p.returncode == 0) == \
                ["ready: leader", "ready: working"]:
            break
        if time.monotonic() > deadline:
            logs = {n: podman("logs", "--tail", "20", n, check=False).stderr for n in names}
            raise AssertionError(f"not ready: {ready}\n{logs}")
        time.sleep(1)

    # The cluster's secrets, as a client of that cluster would use them.
    monkeypatch.setenv("GRAFLOW_DIST_SECRET", secret["hmac-secret"])
    with Client(f"redis://:{secret['redis-password']}@127.0.0.1:{port}/0") as client:
        run = client.submit(build_demo_workflow(shards=6, task_seconds=0.05))
        assert run.wait(timeout=120).startswith("sum of squares = 55")
    # The dev overlay keeps checkpoints in Redis: any pod lists them.
    settings = next(d for d in docs if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"].startswith("graflow-settings"))["data"]
    checkpoint_dir = settings["GRAFLOW_DIST_CHECKPOINT_DIR"].replace(":6379/", f":{port}/")
    listed = podman("exec", "graflow-worker-pod-0-worker", "graflow-dist", "checkpoints",
                    "list", "--dir", checkpoint_dir)
    assert run.session_id in listed.stdout and ".pkl" in listed.stdout, listed
