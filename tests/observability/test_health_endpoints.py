"""/readyz tells the truth (Redis down: not ready; a standby coordinator: not ready),
/livez never depends on Redis, each process exports its own metric families plus
process_* metrics, and `graflow-dist health` probes them for container health checks."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from graflow_dist.embedded import RedisServer, free_port
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.observability.metrics import COORDINATOR, POOL, WORKER, Metrics

GRAFLOW_DIST = Path(sys.executable).parent / "graflow-dist"
TIMEOUT_S = 20.0


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def eventually(port: int, path: str, expected: tuple[int, str]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    last: tuple[int, str] | str = "nothing"
    while time.monotonic() < deadline:
        try:
            last = get(port, path)
            if (last[0], last[1].strip()) == expected:
                return
        # Not listening yet (polling a loopback port of the ephemeral range can even
        # connect the socket to itself: an HTTPException).
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise AssertionError(f"{path} on {port}: wanted {expected}, last saw {last}")


def family_names(port: int) -> set[str]:
    _, text = get(port, "/metrics")
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own: it is stopped in the middle."""
    with RedisServer(dir=tmp_path / "redis") as server:
        yield server


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop(10)


def start(services: list[ServiceProcess], kind: str, url: str, tmp_path: Path,
          *options: str) -> int:
    port = free_port()
    service = ServiceProcess(kind, url, ["--metrics-port", str(port), *options],
                             log_path=tmp_path / f"{kind}-{port}.log").start()
    services.append(service)
    return port


def test_a_worker_is_ready_only_while_redis_answers(
        own_redis: RedisServer, services: list[ServiceProcess], tmp_path: Path) -> None:
    port = start(services, "worker", own_redis.url, tmp_path)
    eventually(port, "/readyz", (200, "ready: working"))
    own_redis.stop()
    eventually(port, "/readyz", (503, "not ready: redis unreachable"))
    assert get(port, "/livez") == (200, "ok\n")
    own_redis.start()
    eventually(port, "/readyz", (200, "ready: working"))


def test_a_standby_coordinator_is_alive_but_not_ready(
        own_redis: RedisServer, services: list[ServiceProcess], tmp_path: Path) -> None:
    first = start(services, "coordinator", own_redis.url, tmp_path, "--leader-lease-s", "2")
    eventually(first, "/readyz", (200, "ready: leader"))
    second = start(services, "coordinator", own_redis.url, tmp_path, "--leader-lease-s", "2")
    eventually(second, "/readyz", (503, "not ready: standby"))
    assert get(second, "/livez")[0] == 200
    assert "graflow_coordinator_leader 1.0" in get(first, "/metrics")[1]
    assert "graflow_coordinator_leader 0.0" in get(second, "/metrics")[1]
    services[0].kill()  # the leader dies: the standby takes over and becomes ready
    eventually(second, "/readyz", (200, "ready: leader"))
    own_redis.stop()
    eventually(second, "/readyz", (503, "not ready: redis unreachable"))


def test_each_process_exports_its_own_families_and_process_metrics(
        own_redis: RedisServer, services: list[ServiceProcess], tmp_path: Path) -> None:
    worker = start(services, "worker", own_redis.url, tmp_path)
    coordinator = start(services, "coordinator", own_redis.url, tmp_path)
    eventually(worker, "/livez", (200, "ok"))
    eventually(coordinator, "/livez", (200, "ok"))
    on_worker, on_coordinator = family_names(worker), family_names(coordinator)
    for names in (on_worker, on_coordinator):
        assert {"process_cpu_seconds_total", "process_resident_memory_bytes",
                "python_info"} <= names
    assert {"graflow_tasks_total", "graflow_task_duration_seconds"} <= on_worker
    assert not {n for n in on_worker if n.startswith("graflow_coordinator")}
    assert {"graflow_coordinator_commits_total", "graflow_redispatched_total",
            "graflow_coordinator_leader"} <= on_coordinator
    assert "graflow_tasks_total" not in on_coordinator
    assert not {n for n in Metrics(POOL).family_names() if n.startswith("graflow_")}
    assert Metrics(WORKER).family_names() | Metrics(COORDINATOR).family_names() <= \
        Metrics().family_names()


def test_the_health_command_probes_livez_and_readyz(
        own_redis: RedisServer, services: list[ServiceProcess], tmp_path: Path) -> None:
    port = start(services, "worker", own_redis.url, tmp_path)
    eventually(port, "/readyz", (200, "ready: working"))

    def health(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(GRAFLOW_DIST), "health", *args], capture_output=True,
                              text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin", "GRAFLOW_DIST_METRICS_PORT":
                                   str(port)})

    assert health().returncode == 0
    assert health("--ready").stdout.strip() == "ready: working"
    own_redis.stop()
    eventually(port, "/readyz", (503, "not ready: redis unreachable"))
    assert health().returncode == 0, "liveness must not depend on Redis"
    failed = health("--ready")
    assert failed.returncode == 1
    assert failed.stderr.strip() == (f"error: http://127.0.0.1:{port}/readyz answered 503: "
                                     "not ready: redis unreachable")
    nobody = health("--port", str(free_port()))
    assert nobody.returncode == 1 and nobody.stderr.startswith("error: nothing answers at")
