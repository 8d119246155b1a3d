"""Crashes vs retries: lost attempts do not use the retry budget; a task whose workers
keep dying is dead-lettered, shown by `graflow-dist status`, and resumable after a fix.
A task kills the executor process running it; its worker reports the crash at once and
starts another executor (the worker services themselves never exit)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from graflow_dist import Client, task, workflow
from graflow_dist.errors import DeadLetterError
from reliability.harness import Ledger, record, wait_for, wait_run


def crashing_workflow(ledger_dir: str, counter: str, marker: str):  # noqa: ANN201
    with workflow("dead-letter") as wf:

        @task
        def prepare() -> int:
            return 1

        @task(inject_context=True, max_retries=0)
        def flaky(ctx, prepare: int) -> int:  # noqa: ANN001
            """Kills its worker on its first two attempts."""
            record(ledger_dir, ctx, "start")
            crashes = int(Path(counter).read_text()) if os.path.exists(counter) else 0
            if crashes < 2:
                Path(counter).write_text(str(crashes + 1))
                os.kill(os.getpid(), signal.SIGKILL)
            return prepare + 1

        @task(inject_context=True)
        def poison(ctx, prepare: int) -> int:  # noqa: ANN001
            """Kills its worker while the marker exists (the bug the user will fix), once
            flaky has completed (crashes are reported at once: without the wait, poison
            could be dead-lettered, ending the run, before flaky's last attempt)."""
            record(ledger_dir, ctx, "start")
            if os.path.exists(marker):
                deadline = time.monotonic() + 30
                while ctx.get_result("flaky") is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                os.kill(os.getpid(), signal.SIGKILL)
            return prepare + 2

        @task(inject_context=True)
        def finish(ctx) -> int:  # noqa: ANN001
            record(ledger_dir, ctx, "start")
            return ctx.get_result("flaky") + ctx.get_result("poison")

        prepare >> flaky >> finish
        prepare >> poison >> finish
    return wf


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graflow_dist.cli.main", "--redis-url", url,
                           *args], capture_output=True, text=True, timeout=60)


def test_crashes_spare_the_retry_budget_then_dead_letter_then_resume(
        make_cluster, ledger: Ledger, tmp_path: Path) -> None:
    marker = tmp_path / "poison-is-broken"
    marker.touch()
    cluster = make_cluster(workers=3)
    services = {w.pid for w in cluster.workers}
    run = Client(cluster.url).submit(
        crashing_workflow(ledger.path, str(tmp_path / "flaky-crashes"), str(marker)))
    try:
        wait_run(run, timeout_s=60)
        raise AssertionError("the run should have failed")
    except DeadLetterError as exc:
        error = exc
    # Every crash took an executor process; the worker services replaced them.
    assert {w.pid for w in cluster.live_workers()} == services

    # flaky lost two workers and still completed although it has no retries.
    flaky_pids = {e.pid for e in ledger.entries("start", "flaky")}
    assert len(ledger.entries("start", "flaky")) == 3 and len(flaky_pids) == 3
    assert "flaky" in run.context().completed_tasks
    assert run.get_result("flaky") == 2

    # poison killed three executors: dead-lettered, named with its attempts and workers.
    poison = ledger.entries("start", "poison")
    assert len({e.pid for e in poison}) == 3
    assert "'poison'" in str(error) and "3 lost attempts" in str(error)
    for entry in poison:
        assert f"-{entry.worker_pid}-" in str(error), \
            f"worker pid {entry.worker_pid} not named in: {error}"
    assert run.status() == "failed"

    keys = cluster.keyspace.run(run.session_id)
    wait_for(lambda: cluster.client.hget(keys.meta, "last_checkpoint"),
             "the dead-letter checkpoint")
    shown = cli(cluster.url, "status", run.session_id)
    assert shown.returncode == 0, shown.stderr
    assert "status:   failed" in shown.stdout
    assert "DeadLetterError" in shown.stdout and "'poison'" in shown.stdout
    checkpoint = re.search(r"^checkpoint: (\S+)$", shown.stdout, re.M)
    assert checkpoint, shown.stdout

    marker.unlink()  # the fix
    resumed = cli(cluster.url, "resume", checkpoint.group(1), "--wait", "--timeout", "30",
                  "--no-progress")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "result: 5" in resumed.stdout
    # Only poison and what follows it ran again; flaky's completion was kept.
    assert len(ledger.entries("start", "flaky")) == 3
    assert len(ledger.entries("start", "poison")) == 4
    assert len(ledger.entries("start", "finish")) == 1
    assert run.status() == "completed"
