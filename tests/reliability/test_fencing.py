"""Fencing: a worker paused past its lease comes back; its late completion is dropped."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from graflow_dist import Client, task, workflow
from graflow_dist.embedded import free_port
from reliability.harness import Ledger, metric, record, wait_for, wait_run

TASK_S = 1.0


def paused_workflow(ledger_dir: str, gate: str):  # noqa: ANN201
    with workflow("fencing") as wf:

        @task(inject_context=True)
        def slow(ctx) -> str:  # noqa: ANN001
            record(ledger_dir, ctx, "start")
            time.sleep(TASK_S)
            record(ledger_dir, ctx, "end")
            return f"attempt {ctx.spec.token} on pid {os.getpid()}"

        @task(inject_context=True)
        def gate_keeper(ctx, slow: str) -> str:  # noqa: ANN001
            # Keeps the run active until the test has seen the late report fenced.
            deadline = time.monotonic() + 30
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.02)
            return f"after {slow}"

        slow >> gate_keeper
    return wf


def test_a_paused_worker_s_late_completion_is_fenced(make_cluster, ledger: Ledger,
                                                     tmp_path: Path) -> None:
    coordinator_port = free_port()
    cluster = make_cluster(workers=0,
                           coordinator_options=["--metrics-port", str(coordinator_port)])
    worker_ports = {cluster.add_worker(["--metrics-port", str(port)]).pid: port
                    for port in (free_port(), free_port())}
    cluster.wait_ready()
    gate = tmp_path / "gate"
    run = Client(cluster.url).submit(paused_workflow(ledger.path, str(gate)))

    first = wait_for(lambda: ledger.entries("start", "slow"), "slow to start")[0]
    paused = cluster.worker_by_pid(first.worker_pid)
    paused.signal_group(signal.SIGSTOP)
    try:
        # Past the lease the task is re-dispatched and completes on the other worker.
        second = wait_for(lambda: [e for e in ledger.entries("end", "slow")
                                   if e.pid != first.pid], "slow to complete elsewhere")[0]
        wait_for(lambda: run.get_result("slow"), "the new attempt's result")
    finally:
        paused.signal_group(signal.SIGCONT)

    # The paused worker finishes its attempt and reports it: its lease is gone (it learns
    # so from its own report or its heartbeat, whichever comes first) and the
    # coordinator drops the report by its fenced token.
    wait_for(lambda: metric(coordinator_port, "graflow_stale_reports_total") >= 1,
             "the coordinator to drop the late report")
    wait_for(lambda: metric(worker_ports[first.worker_pid], "graflow_leases_lost_total") >= 1,
             "the paused worker to notice its lease is lost")
    gate.touch()
    expected = f"attempt {second.token} on pid {second.pid}"
    assert wait_run(run) == f"after {expected}"

    assert run.get_result("slow") == expected  # not overwritten by the late attempt
    ends = ledger.entries("end", "slow")
    assert {e.pid for e in ends} == {first.pid, second.pid}  # both attempts did run to the end
    ctx = run.context()
    assert ctx.completed_tasks.count("slow") == 1
    assert ctx.steps == 2  # slow once, gate_keeper once: the late report changed nothing
    # Results travel in reports, so a fenced attempt leaves nothing behind in Redis.
    leftovers = [k for k in cluster.client.scan_iter(match=f"*{first.token}*")
                 if not k.startswith(b"rq:")]
    assert leftovers == []
    assert metric(worker_ports[second.worker_pid], "graflow_leases_lost_total") == 0
