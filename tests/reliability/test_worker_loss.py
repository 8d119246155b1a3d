"""Node loss: a worker's whole process group is SIGKILLed while it runs a task."""

from __future__ import annotations

import signal
import time

from clusters import LEASE_S

from graflow_dist import Client, parallel, task, workflow
from reliability.harness import Ledger, record, wait_for, wait_run

TASK_S = 1.0


def fan_out_workflow(ledger_dir: str, width: int):  # noqa: ANN201
    with workflow("worker-loss") as wf:

        @task
        def prepare() -> int:
            return 10

        def work(i: int):  # noqa: ANN202
            @task(f"work_{i}", inject_context=True)
            def run(ctx, prepare: int) -> int:  # noqa: ANN001
                record(ledger_dir, ctx, "start")
                time.sleep(TASK_S)
                record(ledger_dir, ctx, "end")
                return prepare + i

            return run

        @task(inject_context=True)
        def total(ctx) -> int:  # noqa: ANN001
            return sum(ctx.get_result(f"work_{i}") for i in range(width))

        prepare >> parallel(*[work(i) for i in range(width)]) >> total
    return wf


def test_sigkill_of_a_node_mid_task_redispatches_within_the_lease(make_cluster, ledger: Ledger
                                                                   ) -> None:
    cluster = make_cluster(workers=3)
    run = Client(cluster.url).submit(fan_out_workflow(ledger.path, 4))

    first = wait_for(lambda: ledger.entries("start"), "a task to start")[0]
    victim = cluster.worker_by_pid(first.worker_pid)
    killed_at = time.time()
    victim.signal_group(signal.SIGKILL)
    victim.proc.wait(timeout=5)

    assert wait_run(run, timeout_s=30) == sum(10 + i for i in range(4))
    again = [e for e in ledger.entries("start", first.task) if e.ts > killed_at]
    assert len(again) == 1 and again[0].worker_pid != first.worker_pid
    assert again[0].token != first.token
    recovery = again[0].ts - killed_at
    print(f"recovery after SIGKILL: {recovery:.2f} s (lease {LEASE_S} s)")
    assert recovery <= LEASE_S + 1.5, f"re-dispatched {recovery:.2f} s after the kill"
    ctx = run.context()
    assert set(ctx.completed_tasks) >= {"prepare", "total", *(f"work_{i}" for i in range(4))}
    assert ctx.frontier.pending_tasks == []
    # Every task but the killed one ran exactly once.
    starts = [e.task for e in ledger.entries("start")]
    assert sorted(starts) == sorted([f"work_{i}" for i in range(4)] + [first.task])
