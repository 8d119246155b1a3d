"""Runs outlive their workers and their client, and stop when cancelled."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graflow_dist import Client, TaskExecutionContext, chain, task, workflow
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import WorkflowCancelledError

RUN_TIMEOUT_S = 60
GATE_WAIT_S = 30.0


def test_run_completes_when_every_worker_is_replaced_mid_run(
    cluster: LocalCluster, wait_until: Callable[..., Any]
) -> None:
    """A gate task loops (next_iteration) until the test has gracefully stopped both
    original workers and started two new ones; the rest of the chain can then only
    run on the new workers."""
    before_gate, after_gate = 5, 10

    def step(i: int) -> Any:
        @task(f"step_{i:02d}", inject_context=True)
        def run(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().append("trace", [i, os.getppid()])  # its worker
            return i

        return run

    with workflow("replace-workers") as wf:

        @task(inject_context=True, max_cycles=100_000)
        def gate(ctx: TaskExecutionContext) -> str:
            channel = ctx.get_channel()
            channel.append("gate_pids", os.getppid())
            if not channel.get("workers_replaced"):
                time.sleep(0.02)  # pace the loop; each iteration is a fresh dispatch
                ctx.next_iteration()
            return "open"

        chain(*[step(i) for i in range(before_gate)], gate,
              *[step(i) for i in range(before_gate, before_gate + after_gate)])

    client = Client(cluster.url)
    run = client.submit(wf)
    channel = run.channel()
    wait_until(lambda: channel.get("gate_pids"), "the run to reach the gate")

    originals = list(cluster.workers)
    for worker in originals:
        assert worker.stop() == 0, "a worker stopped with SIGTERM exits cleanly"
        cluster.add_worker()
        cluster.wait_ready()
    replacements = {w.pid for w in cluster.workers[len(originals):]}
    gate_iterations = len(channel.get("gate_pids"))
    assert run.status() == "running"
    channel.set("workers_replaced", True)

    assert run.wait(timeout=RUN_TIMEOUT_S) == before_gate + after_gate - 1
    trace = channel.get("trace")
    indexes = [i for i, _pid in trace]
    assert indexes == list(range(before_gate + after_gate)), "every step once, in order"
    assert {pid for i, pid in trace if i >= before_gate} <= replacements
    assert set(channel.get("gate_pids")[gate_iterations:]) <= replacements
    assert run.progress().failed == 0
    assert run.context().cycle_counts["gate"] >= gate_iterations


CLIENT_SCRIPT = textwrap.dedent("""
    import os
    import sys
    import time

    from graflow_dist import Client, task, workflow

    with workflow("orphaned") as wf:

        @task
        def produce():
            return [1, 2, 3]

        @task(inject_context=True)
        def consume(ctx, produce):
            channel = ctx.get_channel()
            deadline = time.monotonic() + 30
            while not channel.get("client_gone") and time.monotonic() < deadline:
                time.sleep(0.01)
            return {"sum": sum(produce) * 10, "client_gone": channel.get("client_gone")}

        produce >> consume

    run = Client(sys.argv[1]).submit(wf)
    print(run.session_id, flush=True)
    os._exit(0)
""")


def test_run_finishes_after_the_submitting_process_exited(
    shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    script = tmp_path / "submit_and_die.py"
    script.write_text(CLIENT_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), shared_cluster.url], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    session_id = proc.stdout.strip()

    run = Client(shared_cluster.url).attach(session_id)
    assert run.status() in ("submitted", "running"), "the run must outlive its client"
    # `consume` finishes only once told that the client process is gone.
    run.channel().set("client_gone", True)
    assert run.wait(timeout=RUN_TIMEOUT_S) == {"sum": 60, "client_gone": True}
    assert run.context().completed_tasks == ["produce", "consume"]


def test_cancel_stops_a_long_run(
    client: Client, wait_until: Callable[..., Any]
) -> None:
    with workflow("long-run") as wf:

        @task
        def first() -> str:
            return "first"

        @task(inject_context=True)
        def long(ctx: TaskExecutionContext) -> str:
            channel = ctx.get_channel()
            channel.set("long_started", True)
            deadline = time.monotonic() + GATE_WAIT_S
            while not channel.get("release") and time.monotonic() < deadline:
                time.sleep(0.01)
            channel.set("long_finished", True)
            return "long"

        @task(inject_context=True)
        def after(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("after_ran", True)

        first >> long >> after

    run = client.submit(wf)
    channel = run.channel()
    wait_until(lambda: channel.get("long_started"), "the long task to start")
    run.cancel("the test cancels it")
    with pytest.raises(WorkflowCancelledError, match="the test cancels it"):
        run.wait(timeout=RUN_TIMEOUT_S)
    assert run.status() == "cancelled"

    # Let the running task return; its late report must not revive the run.
    channel.set("release", True)
    wait_until(lambda: channel.get("long_finished"), "the long task to return")
    redis_ = client.redis
    job_prefix = f"gf.{run.session_id}.".encode()
    wait_until(lambda: not any(j.startswith(job_prefix)
                               for j in redis_.zrange(client.keyspace.leases, 0, -1)),
               "the worker to report the long task")
    last_event = redis_.xrevrange(client.keyspace.events, count=1)[0][0]
    wait_until(lambda: _stream_id(redis_.get(client.keyspace.cursor)) >= _stream_id(last_event),
               "the coordinator to apply the late report")
    assert run.status() == "cancelled"
    assert run.get_result("long") is None
    assert channel.get("after_ran") is None
    assert "long" not in run.context().completed_tasks


def _stream_id(raw: bytes | None) -> tuple[int, int]:
    ms, _, seq = (raw or b"0-0").decode().partition("-")
    return int(ms), int(seq or 0)
