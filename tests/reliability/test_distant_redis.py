"""A distant Redis: every reply 300 ms late (a loopback proxy the test owns holds it),
services on their default settings. They start in seconds, keep their leases and the
lead, and a run completes with every task run once. A leader lease too short for it is
said."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import structlog

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
from graflow_dist.coordinator.service import Coordinator
from graflow_dist.embedded.redis_server import RedisServer
from reliability.harness import FaultCluster, Ledger, recorded_step

pytestmark = pytest.mark.slow

LATENCY_S = 0.3


def test_services_on_their_defaults_work_with_a_redis_300_ms_away(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    cluster = FaultCluster(tmp_path / "cluster", worker_options=[],
                           coordinator_options=["--checkpoint-dir", str(tmp_path / "ck")],
                           proxied=True, latency_s=LATENCY_S)
    started = time.monotonic()
    try:
        # Each service checks its permissions before it writes: that took a round trip
        # per command (about 60), 18 s here, past the cluster's 20 s to be ready.
        cluster.start(2, coordinators=2)
        assert time.monotonic() - started < 20
        with workflow("distant") as wf:
            steps = [recorded_step(ledger.path, f"s{i}", 0.05, i) for i in range(6)]

            @task(inject_context=True)
            def total(ctx: TaskExecutionContext) -> int:
                return sum(ctx.get_result(f"s{i}") for i in range(6))

            steps[0] >> parallel(*steps[1:5]) >> steps[5] >> total

        assert Client(cluster.url).submit(wf).wait(timeout=120) == sum(range(6))
        starts = Counter(e.task for e in ledger.entries("start"))
        assert set(starts) == {f"s{i}" for i in range(6)}
        assert max(starts.values()) == 1, starts
        text = cluster.log_text()
        for flapping in ("no longer leader", "lease lost", "re-dispatched", "Traceback"):
            assert flapping not in text, flapping
    finally:
        cluster.stop()


def test_leader_lease_renewals_late_for_the_lease_are_said_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps so slow that the lease is renewed after most of it (a distant Redis): the
    operator hears why the lead keeps moving, and what to change; once, not per step."""
    lease_s = 0.6
    original = Coordinator.step

    def slow_step(self: Coordinator) -> None:
        time.sleep(lease_s * 0.75)  # as a step of many round trips to a distant Redis
        original(self)

    monkeypatch.setattr(Coordinator, "step", slow_step)
    with RedisServer(dir=tmp_path / "redis") as server:
        coordinator = Coordinator(redis.Redis.from_url(server.url),
                                  checkpoint_dir=str(tmp_path / "ck"), leader_lease_s=lease_s)
        stop = threading.Event()
        thread = threading.Thread(target=coordinator.run, args=(stop,), daemon=True)
        with structlog.testing.capture_logs() as logs:
            thread.start()
            time.sleep(3.0)  # several slow steps
            stop.set()
            thread.join(timeout=10)
    said = [e for e in logs if e["event"].startswith("the leader lease was renewed late")]
    assert len(said) == 1, said
    assert said[0]["renewed_after_s"] >= lease_s * 0.75
    assert "--leader-lease-s" in said[0]["fix"]
