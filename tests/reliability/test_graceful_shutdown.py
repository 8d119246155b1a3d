"""SIGTERM during a task: finish it within the grace period, or hand it back at once."""

from __future__ import annotations

import signal
import time

from graflow_dist import Client, task, workflow
from reliability.harness import Ledger, record, wait_for, wait_run

TASK_S = 1.5
# Long enough to still run once a second worker (a supervisor and its executor) started.
LONGER_TASK_S = 6.0


def long_task_workflow(ledger_dir: str, seconds: float = TASK_S):  # noqa: ANN201
    with workflow("sigterm") as wf:

        @task(inject_context=True)
        def long_task(ctx) -> str:  # noqa: ANN001
            record(ledger_dir, ctx, "start")
            time.sleep(seconds)
            record(ledger_dir, ctx, "end")
            return ctx.spec.token

        @task
        def after(long_task: str) -> str:
            return f"after {long_task}"

        long_task >> after
    return wf


def test_sigterm_lets_the_running_task_finish_within_the_grace_period(
        make_cluster, ledger: Ledger) -> None:
    cluster = make_cluster(workers=1)
    run = Client(cluster.url).submit(long_task_workflow(ledger.path))
    started = wait_for(lambda: ledger.entries("start", "long_task"), "the task to start")[0]
    worker = cluster.worker_by_pid(started.worker_pid)
    worker.signal_group(signal.SIGTERM)
    assert worker.proc.wait(timeout=TASK_S + 5) == 0
    ended = ledger.entries("end", "long_task")
    assert [e.pid for e in ended] == [started.pid]
    cluster.add_worker()  # someone has to run `after`
    assert wait_run(run, timeout_s=30) == f"after {started.token}"
    assert len(ledger.entries("start", "long_task")) == 1


def test_sigterm_with_a_short_grace_period_hands_the_task_back_at_once(
        make_cluster, ledger: Ledger) -> None:
    # Long leases: a re-dispatch well within them can only come from the hand-back.
    lease = ["--lease-s", "20", "--heartbeat-s", "1"]
    cluster = make_cluster(workers=1, worker_options=[*lease, "--grace-period-s", "0.3"])
    run = Client(cluster.url).submit(long_task_workflow(ledger.path, LONGER_TASK_S))
    first = wait_for(lambda: ledger.entries("start", "long_task"), "the task to start")[0]
    cluster.add_worker(["--grace-period-s", "30"])
    cluster.wait_ready()
    terminated_at = time.time()
    victim = cluster.worker_by_pid(first.worker_pid)
    victim.signal_group(signal.SIGTERM)
    assert victim.proc.wait(timeout=5) == 0

    again = wait_for(lambda: [e for e in ledger.entries("start", "long_task")
                              if e.worker_pid != first.worker_pid],
                     "the handed-back task to restart")[0]
    redispatch_s = again.ts - terminated_at
    print(f"hand-back re-dispatch after SIGTERM: {redispatch_s:.2f} s (grace 0.3 s, lease 20 s)")
    assert redispatch_s < 2.0
    assert wait_run(run, timeout_s=30 + LONGER_TASK_S) == f"after {again.token}"
    # The handed-back attempt never finished, and did not count as a crash.
    assert [e.pid for e in ledger.entries("end", "long_task")] == [again.pid]
    assert run.context().frontier.crash_workers == {}
