"""A distant Redis: every reply 300 ms late (a loopback proxy the test owns holds it),
services on their default settings. They start in seconds, keep their leases and the
lead, and a run completes with every task run once."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
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
