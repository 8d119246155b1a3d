"""RQ's own tools see our queue, its jobs and our workers (what KEDA and dashboards use)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded.cluster import LocalCluster

RQ = Path(sys.executable).parent / "rq"
GATE_WAIT_S = 30.0


def rq_info(url: str, *options: str) -> str:
    proc = subprocess.run([str(RQ), "info", "-u", url, *options], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def parent_of(pid: int) -> int:
    """The parent pid of a live process (Linux /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def test_rq_info_lists_our_queue_jobs_and_workers(
    shared_cluster: LocalCluster, client: Client, keyspace: Keyspace,
    wait_until: Callable[..., Any],
) -> None:
    width = 12

    def blocked(i: int) -> Any:
        @task(f"blocked_{i}", inject_context=True)
        def run(ctx: TaskExecutionContext) -> int:
            channel = ctx.get_channel()
            channel.atomic_add("running", 1)
            deadline = time.monotonic() + GATE_WAIT_S
            while not channel.get("release") and time.monotonic() < deadline:
                time.sleep(0.01)
            return i

        return run

    with workflow("rq-visible") as wf:
        parallel(*[blocked(i) for i in range(width)])

    run = client.submit(wf)
    channel = run.channel()
    try:
        # Both workers hold a job, the other jobs wait in the queue.
        wait_until(lambda: channel.get("running") == 2, "both workers to be busy")
        queued = client.redis.llen(keyspace.rq_queue(keyspace.queue_name))
        assert queued > 0
        output = rq_info(shared_cluster.url)
    finally:
        channel.set("release", True)
    assert run.wait(timeout=60) is not None

    queue_line = next((line for line in output.splitlines()
                       if line.startswith(keyspace.queue_name)), None)
    assert queue_line is not None, f"no line for queue {keyspace.queue_name!r}:\n{output}"
    counts = re.search(r"(\d+), (\d+) executing", queue_line)
    assert counts is not None and int(counts.group(1)) == queued, queue_line
    assert int(counts.group(2)) == 2, f"both claimed jobs should show as executing: {queue_line}"
    names = [n.decode() for n in client.redis.zrange(keyspace.workers, 0, -1)]
    assert len(names) == len(shared_cluster.workers)
    for name in names:
        worker_line = next((line for line in output.splitlines() if line.startswith(name)), "")
        assert "busy" in worker_line and keyspace.queue_name in worker_line, output
    assert f"{len(names)} workers, " in output

    after = rq_info(shared_cluster.url)
    assert re.search(rf"^{keyspace.queue_name}\s.*\b0 executing", after, re.M), after

    # Only-workers mode lists each worker (named after its service's pid) with the pid
    # of its executor process, a child of that service.
    workers_output = rq_info(shared_cluster.url, "--only-workers")
    for worker in shared_cluster.workers:
        line = next((line for line in workers_output.splitlines()
                     if line.startswith("gf-") and f"-{worker.pid}-" in line), "")
        shown = re.search(r"(\d+)\)", line)
        assert shown is not None, workers_output
        assert parent_of(int(shown.group(1))) == worker.pid, workers_output
