"""Task timeouts on a cluster: a task past its timeout has its executor process SIGKILLed
and replaced, fails with TaskTimeoutError and is retried per its policy; its batch-mates
are handed back; the worker keeps serving. Code that never yields (``while True``, a C
call holding the GIL) is stopped all the same."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from clusters import WORKER_OPTIONS

from graflow_dist import Client, parallel, task, workflow
from graflow_dist.embedded import free_port
from graflow_dist.errors import TaskTimeoutError
from graflow_dist.wire.messages import Batch
from reliability.harness import Ledger, metric, record, wait_for, wait_run

TIMEOUT_S = 1.0
# A fresh executor process takes about half a second to start; on this shared 2-core
# machine allow several.
REPLACE_BOUND_S = 6.0


def spin_workflow(ledger_dir: str):  # noqa: ANN201
    with workflow("spin") as wf:

        @task(inject_context=True, timeout=TIMEOUT_S, max_retries=1)
        def spin(ctx: Any) -> None:
            record(ledger_dir, ctx, "start")
            while True:
                pass

    return wf


def one_step_workflow(name: str, ledger_dir: str):  # noqa: ANN201
    with workflow(name) as wf:

        @task(inject_context=True)
        def step(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            return os.getppid()

    return wf


def test_a_while_true_task_times_out_is_retried_and_the_worker_keeps_serving(
        make_cluster: Any, ledger: Ledger) -> None:
    port = free_port()
    cluster = make_cluster(workers=0)
    service = cluster.add_worker(["--metrics-port", str(port)])
    cluster.wait_ready()
    client = Client(cluster.url)
    run = client.submit(spin_workflow(ledger.path))
    with pytest.raises(TaskTimeoutError) as caught:
        wait_run(run, timeout_s=60)
    error = caught.value
    assert error.task_id == "spin" and error.attempts == 2 and error.timeout_s == TIMEOUT_S
    assert f"timed out after {TIMEOUT_S:g} s" in str(error)

    starts = ledger.entries("start", "spin")
    assert len(starts) == 2
    assert len({e.pid for e in starts}) == 2, "each attempt ran in a fresh executor"
    assert {e.worker_pid for e in starts} == {service.pid}
    retry_s = starts[1].ts - starts[0].ts - TIMEOUT_S
    print(f"timeout to the retry running in a fresh executor: {retry_s:.2f} s")
    assert retry_s < REPLACE_BOUND_S
    progress = run.progress()
    assert progress.running == 0 and progress.failed == 2
    assert cluster.client.zcard(cluster.keyspace.leases) == 0

    # The same worker service, with its third executor, runs the next run.
    assert service.alive()
    assert wait_run(client.submit(one_step_workflow("after", ledger.path))) == service.pid
    assert metric(port, "graflow_task_timeouts_total") == 2
    assert metric(port, "graflow_executor_restarts_total") == 2
    assert metric(port, "graflow_tasks_total") == 1  # the after run's step
    # The killed executors' registrations are gone: one executor, one worker.
    assert len(cluster.broker.workers.names()) == 1


def test_a_gil_holding_c_call_is_stopped_and_the_retry_completes(
        make_cluster: Any, ledger: Ledger) -> None:
    cluster = make_cluster(workers=1)
    ledger_dir = ledger.path

    with workflow("c-call") as wf:

        @task(inject_context=True, timeout=TIMEOUT_S, max_retries=1)
        def crunch(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            if ctx.spec.attempt == 1:
                return sum(range(10**12))  # hours inside one C call, GIL held
            return 42

    run = Client(cluster.url).submit(wf)
    assert wait_run(run, timeout_s=60) == 42
    first, second = ledger.entries("start", "crunch")
    assert first.pid != second.pid and first.worker_pid == second.worker_pid
    retry_s = second.ts - first.ts - TIMEOUT_S
    print(f"GIL-holding task: timeout to the retry running: {retry_s:.2f} s")
    assert retry_s < REPLACE_BOUND_S
    assert run.context().frontier.crash_workers == {}  # a timeout, not a crash


def test_a_timeout_hands_back_its_batch_mates(make_cluster: Any, ledger: Ledger) -> None:
    cluster = make_cluster(workers=1)  # one worker: the group comes in jobs of several
    width = 12
    ledger_dir = ledger.path

    def mate(i: int) -> Any:
        @task(f"mate_{i}", inject_context=True)
        def run(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            return i

        return run

    with workflow("batch-mates") as wf:

        @task(inject_context=True, timeout=TIMEOUT_S)
        def hang(ctx: Any) -> None:
            record(ledger_dir, ctx, "start")
            while True:
                pass

        @task(inject_context=True)
        def total(ctx: Any) -> int:
            return sum(ctx.get_result(f"mate_{i}") for i in range(1, width))

        # hang first: its job's other tasks wait behind it when it is killed.
        group = parallel(hang, *[mate(i) for i in range(1, width)])
        group.with_execution(policy="best_effort") >> total

    run = Client(cluster.url).submit(wf)
    wait_for(lambda: ledger.entries("start", "hang"), "hang to start")
    batch = next(b for b in jobs_held(cluster) if "hang" in [s.task_id for s in b.specs])
    mates = {s.task_id: s.token for s in batch.specs if s.task_id != "hang"}
    assert mates, "hang shares its job with other tasks"

    assert wait_run(run, timeout_s=60) == sum(range(1, width))
    killed_at = ledger.entries("start", "hang")[0]
    for task_id, original_token in mates.items():
        [start] = ledger.entries("start", task_id)
        assert start.token != original_token, f"{task_id} ran with its first dispatch"
        assert start.pid != killed_at.pid and start.ts > killed_at.ts
    assert run.context().frontier.crash_workers == {}  # handed back, not crashed
    assert "hang" not in run.context().completed_tasks


def jobs_held(cluster: Any) -> list[Batch]:
    """The batches of the jobs workers hold now (read from Redis as RQ keeps them)."""
    ks = cluster.keyspace
    out = []
    for job_id in cluster.client.zrange(ks.leases, 0, -1):
        data = cluster.client.hget(ks.rq_job(job_id.decode()), "data")
        if data:
            out.append(Batch.from_job_data(data, job_id.decode()))
    return out


def test_the_worker_default_applies_to_tasks_without_their_own(make_cluster: Any,
                                                               ledger: Ledger) -> None:
    cluster = make_cluster(workers=1,
                           worker_options=[*WORKER_OPTIONS, "--task-timeout-s", "1"])
    ledger_dir = ledger.path

    with workflow("defaults") as wf:

        @task(inject_context=True, timeout=10)
        def patient(ctx: Any) -> str:  # its own, longer timeout wins over the default
            record(ledger_dir, ctx, "start")
            time.sleep(2)
            return "patient"

        @task(inject_context=True)
        def stuck(ctx: Any, patient: str) -> None:
            record(ledger_dir, ctx, "start")
            time.sleep(60)

        patient >> stuck

    run = Client(cluster.url).submit(wf)
    with pytest.raises(TaskTimeoutError) as caught:
        wait_run(run, timeout_s=60)
    assert caught.value.task_id == "stuck" and caught.value.timeout_s == 1.0
    assert run.get_result("patient") == "patient"


def test_an_executor_that_dies_is_reported_at_once_not_after_its_lease(
        make_cluster: Any, ledger: Ledger) -> None:
    lease = ["--lease-s", "20", "--heartbeat-s", "1"]
    cluster = make_cluster(workers=1, worker_options=lease)
    ledger_dir = ledger.path

    with workflow("suicide") as wf:

        @task(inject_context=True)
        def fragile(ctx: Any) -> str:
            record(ledger_dir, ctx, "start")
            if ctx.spec.crashes == 0:
                os.kill(os.getpid(), signal.SIGKILL)
            return "survived"

    run = Client(cluster.url).submit(wf)
    assert wait_run(run, timeout_s=30) == "survived"
    first, second = ledger.entries("start", "fragile")
    print(f"executor crash to the task running again: {second.ts - first.ts:.2f} s "
          "(lease 20 s)")
    assert second.ts - first.ts < REPLACE_BOUND_S  # far within the 20 s lease
    workers = run.context().frontier.crash_workers["fragile"]
    assert len(workers) == 1 and f"-{first.worker_pid}-" in workers[0]


def test_sigterm_while_a_task_holds_the_gil_hands_it_back_after_the_grace_period(
        make_cluster: Any, ledger: Ledger, tmp_path: Path) -> None:
    """The executor cannot run its own shutdown (its task holds the GIL): its supervisor
    kills it after the grace period and hands the task back itself."""
    grace = ["--lease-s", "20", "--heartbeat-s", "1", "--grace-period-s", "0.5"]
    cluster = make_cluster(workers=1, worker_options=grace)
    ledger_dir, marker_path = ledger.path, str(tmp_path / "first-attempt")

    with workflow("gil-sigterm") as wf:

        @task(inject_context=True)
        def crunch(ctx: Any) -> str:
            record(ledger_dir, ctx, "start")
            if not os.path.exists(marker_path):
                open(marker_path, "w").close()
                return str(sum(range(10**12)))
            return "second attempt"

    run = Client(cluster.url).submit(wf)
    first = wait_for(lambda: ledger.entries("start", "crunch"), "crunch to start")[0]
    cluster.add_worker()
    cluster.wait_ready()
    victim = cluster.worker_by_pid(first.worker_pid)
    terminated_at = time.time()
    victim.signal_group(signal.SIGTERM)
    assert victim.proc.wait(timeout=REPLACE_BOUND_S + 5) == 0
    assert time.time() - terminated_at < 0.5 + REPLACE_BOUND_S
    assert wait_run(run, timeout_s=30) == "second attempt"
    second = ledger.entries("start", "crunch")[1]
    assert second.worker_pid != first.worker_pid
    print(f"SIGTERM during a GIL-holding task to its restart elsewhere: "
          f"{second.ts - terminated_at:.2f} s (grace 0.5 s, lease 20 s)")
    assert second.ts - terminated_at < REPLACE_BOUND_S  # handed back, not left to its lease
    assert run.context().frontier.crash_workers == {}

