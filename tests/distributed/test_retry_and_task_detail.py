"""Client.retry on a cluster (a failed task runs again, the rest stays done) and the
per-task detail the coordinator records from workers' reports."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from graflow_dist import Client, TaskExecutionContext, task, workflow
from graflow_dist.errors import RunActiveError, TaskExecutionError, TaskStateError
from graflow_dist.scheduler.events import RunStatus

RUN_TIMEOUT_S = 60


def flaky_workflow(name: str, flag: Path):  # noqa: ANN201 - a WorkflowContext
    """``prepare >> flaky >> report``; flaky fails until ``flag`` exists; each task
    appends its name to the channel's ``ran``."""
    with workflow(name) as wf:

        @task(inject_context=True)
        def prepare(ctx: TaskExecutionContext) -> list[int]:
            ctx.get_channel().append("ran", "prepare")
            return [1, 2, 3]

        @task(inject_context=True)
        def flaky(ctx: TaskExecutionContext, prepare: list[int]) -> int:
            ctx.get_channel().append("ran", "flaky")
            if not os.path.exists(flag):
                raise RuntimeError(f"no flag at {flag}")
            return sum(prepare)

        @task(inject_context=True)
        def report(ctx: TaskExecutionContext, flaky: int) -> str:
            ctx.get_channel().append("ran", "report")
            return f"total {flaky}"

        prepare >> flaky >> report
    return wf


def test_a_failed_task_is_retried_from_the_stored_frontier(client: Client,
                                                            tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    run = client.submit(flaky_workflow("retry-me", flag))
    with pytest.raises(TaskExecutionError, match="no flag"):
        run.wait(timeout=RUN_TIMEOUT_S)

    detail = client.broker.console.run(run.session_id)
    assert detail.states == {"prepare": "done", "flaky": "failed", "report": "pending"}
    failed = detail.tasks["flaky"]
    assert failed.outcome == "failed" and failed.attempts == 1
    assert "RuntimeError: no flag" in failed.traceback and failed.worker
    assert failed.started_at >= failed.queued_at > 0 and failed.duration_s > 0
    assert detail.tasks["prepare"].preview == "[1, 2, 3]"

    with pytest.raises(TaskStateError, match="'prepare' .* is done"):
        client.retry(run.session_id, "prepare")

    flag.touch()
    again = client.retry(run.session_id, "flaky")
    assert again.wait(timeout=RUN_TIMEOUT_S) == "total 6"
    assert again.channel().get("ran") == ["prepare", "flaky", "flaky", "report"]
    after = client.broker.console.run(run.session_id)
    assert set(after.states.values()) == {"done"}
    assert after.tasks["flaky"].outcome == "done" and after.tasks["flaky"].preview == "6"
    assert after.record.status is RunStatus.COMPLETED


def test_retry_refuses_an_active_run(client: Client, tmp_path: Path) -> None:
    with workflow("slow-one") as wf:

        @task
        def wait_for_flag() -> None:
            flag = tmp_path / "go"
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    run = client.submit(wf)
    try:
        with pytest.raises(RunActiveError, match="only a finished run"):
            client.retry(run.session_id, "wait_for_flag")
    finally:
        (tmp_path / "go").touch()
    run.wait(timeout=RUN_TIMEOUT_S)
