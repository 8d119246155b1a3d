"""The worker image for real (built by deploy/local-image.sh): a worker container on the
host network runs a workflow's tasks, and compose.yaml's stack (Redis with AOF, two
coordinators, three workers) survives a worker container killed mid-run with every
result present. Run by .ci/run (`pytest --containers`)."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from containers.podman import (
    REDIS_IMAGE,
    REPO,
    WORKER_IMAGE,
    ComposeStack,
    build_images,
    podman,
)
from graflow_dist import Client
from graflow_dist.core.context import TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.task import ParallelGroup
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.embedded import RedisServer, free_port
from graflow_dist.embedded.processes import ServiceProcess

pytestmark = [pytest.mark.containers, pytest.mark.slow]

SHARDS = 12
TASK_SECONDS = 1.5
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def images() -> None:
    build_images()


def fan_out(shards: int, task_seconds: float) -> WorkflowContext:
    """``shards`` tasks that say which host and user ran them, then a join."""
    with workflow("containers") as wf:

        def shard(i: int):  # noqa: ANN202 - returns a task
            @task(f"square_{i:02d}", inject_context=True)
            def square(ctx: TaskExecutionContext) -> dict:
                host = socket.gethostname()
                ctx.get_channel().set(f"started.{i}", host)
                time.sleep(task_seconds)
                return {"value": i * i, "host": host, "uid": os.getuid()}

            return square

        @task(inject_context=True)
        def total(ctx: TaskExecutionContext) -> int:
            return sum(ctx.get_result(f"square_{i:02d}")["value"] for i in range(shards))

        ParallelGroup([shard(i) for i in range(shards)]) >> total
    return wf


def check_every_result(run: object, shards: int) -> set[str]:
    """Every task's result is there; returns the hosts that ran them."""
    assert run.wait(timeout=RUN_TIMEOUT_S) == sum(i * i for i in range(shards))  # type: ignore[attr-defined]
    results = [run.get_result(f"square_{i:02d}") for i in range(shards)]  # type: ignore[attr-defined]
    assert [r["value"] for r in results] == [i * i for i in range(shards)]
    assert {r["uid"] for r in results} == {10001}, "tasks ran as the image's non-root user"
    return {r["host"] for r in results}


def test_a_worker_container_on_the_host_network_runs_tasks(
        images: None, tmp_path: Path) -> None:
    secret = os.environ["GRAFLOW_DIST_SECRET"]
    metrics_port = free_port()
    name = f"graflow-test-worker-{secrets.token_hex(3)}"
    with RedisServer(dir=tmp_path / "redis") as redis_server:
        coordinator = ServiceProcess("coordinator", redis_server.url, [],
                                     log_path=tmp_path / "coordinator.log").start()
        try:
            podman("run", "--detach", "--name", name, "--network", "host", "--read-only",
                   "--cap-drop", "ALL", "--health-interval", "disable",
                   "--env", f"GRAFLOW_DIST_REDIS_URL={redis_server.url}",
                   "--env", f"GRAFLOW_DIST_SECRET={secret}",
                   "--env", f"GRAFLOW_DIST_METRICS_PORT={metrics_port}",
                   WORKER_IMAGE)
            deadline = time.monotonic() + 60
            while podman("healthcheck", "run", name, check=False).returncode != 0:
                assert time.monotonic() < deadline, podman("logs", name).stderr
                time.sleep(0.5)
            with Client(redis_server.url) as client:
                run = client.submit(fan_out(4, 0.1))
                hosts = check_every_result(run, 4)
            assert hosts == {socket.gethostname()}, "host network: the host's name"
            ready = podman("exec", name, "graflow-dist", "health", "--ready")
            assert ready.stdout.strip() == "ready: working"
            # tini is PID 1 and forwards SIGTERM: the worker stops cleanly, at once.
            started = time.monotonic()
            podman("stop", "--time", "30", name)
            assert time.monotonic() - started < 15
            state = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
            assert state == "0", podman("logs", name).stderr
        finally:
            podman("rm", "--force", "--time", "0", name, check=False)
            coordinator.stop(10)


def readiness(container: str) -> str:
    """What ``graflow-dist health --ready`` inside ``container`` reports."""
    proc = podman("exec", container, "graflow-dist", "health", "--ready", check=False)
    return proc.stdout.strip() or proc.stderr.strip().rpartition("answered 503: ")[2]


@pytest.fixture
def stack(images: None) -> Iterator[tuple[ComposeStack, str]]:
    """compose.yaml's stack with 3 workers, and the Redis URL to submit to from here."""
    password = secrets.token_hex(16)
    port = free_port()
    env = {
        "REDIS_PASSWORD": password,
        "GRAFLOW_DIST_SECRET": os.environ["GRAFLOW_DIST_SECRET"],
        "REDIS_PORT": str(port),
        "REDIS_IMAGE": REDIS_IMAGE,
        "GRAFLOW_DIST_IMAGE": WORKER_IMAGE,
        "GRAFLOW_DIST_LEASE_S": "4",
        "GRAFLOW_DIST_HEARTBEAT_S": "1",
    }
    files = [REPO / "compose.yaml", Path(__file__).with_name("compose.podman.yaml")]
    running = ComposeStack(files, env, project=f"gftest{secrets.token_hex(3)}",
                           scale={"worker": 3})
    try:
        running.up()
        yield running, f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        running.down()


def test_the_compose_stack_survives_a_killed_worker_container(
        stack: tuple[ComposeStack, str]) -> None:
    stack, url = stack
    assert [len(stack.containers[s]) for s in ("redis", "coordinator", "worker")] == [1, 2, 3]
    for names in stack.containers.values():
        for name in names:
            stack.wait_healthy(name)
    redis_container = stack.containers["redis"][0]
    aof = podman("exec", redis_container, "redis-cli", "CONFIG", "GET", "appendonly")
    assert aof.stdout.split() == ["appendonly", "yes"]
    roles = sorted(readiness(c) for c in stack.containers["coordinator"])
    assert roles == ["not ready: standby", "ready: leader"], stack.all_logs()
    assert {readiness(c) for c in stack.containers["worker"]} == {"ready: working"}

    with Client(url) as client:
        run = client.submit(fan_out(SHARDS, TASK_SECONDS))
        channel = run.channel()
        deadline = time.monotonic() + 60
        victim_host = None
        while victim_host is None:
            assert time.monotonic() < deadline, stack.all_logs()
            for i in range(SHARDS):
                host = channel.get(f"started.{i}")
                if host and run.get_result(f"square_{i:02d}") is None:
                    victim_host = host
                    break
            time.sleep(0.05)
        victim = stack.container_of_host(victim_host)
        assert victim in stack.containers["worker"]
        podman("kill", victim)
        hosts = check_every_result(run, SHARDS)
        assert run.status() == "completed"
    survivors = {podman("inspect", "--format", "{{.Config.Hostname}}", c).stdout.strip()
                 for c in stack.containers["worker"] if c != victim}
    assert hosts - {victim_host} <= survivors
    assert hosts & survivors, "the surviving workers ran tasks"
    # The AOF on the volume has the run.
    listing = podman("exec", redis_container, "sh", "-c", "ls /data /data/appendonlydir")
    assert "appendonly" in listing.stdout
