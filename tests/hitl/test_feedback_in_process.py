"""request_feedback inside in-process runs: answers, timeouts that stop the run as
``waiting`` with a checkpoint, and resumes that get the stored answer at once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from graflow_dist import (
    CheckpointManager,
    ExecutionContext,
    TaskExecutionContext,
    WorkflowEngine,
    task,
    workflow,
)
from graflow_dist.core.workflow import WorkflowContext
from graflow_dist.errors import FeedbackTimeoutError, TaskExecutionError
from graflow_dist.hitl import FeedbackManager, FeedbackType
from graflow_dist.hitl.types import make_response
from graflow_dist.scheduler.events import RunStatus

APPROVE = {"approved": True, "reason": "looks right"}


def approval_workflow(timeout: float) -> WorkflowContext:
    """``process >> request_approval >> deploy`` (the seed document's pattern)."""
    with workflow("approval") as wf:

        @task(inject_context=True)
        def process(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().append("ran", "process")
            return 42

        @task(inject_context=True)
        def request_approval(ctx: TaskExecutionContext, process: int) -> bool:
            ctx.get_channel().append("ran", "request_approval")
            response = ctx.request_feedback(
                "approval", f"Deploy build {process}?", timeout=timeout,
                channel_key="deploy_approved", write_to_channel=True,
                metadata={"build": process},
            )
            return bool(response.approved)

        @task(inject_context=True)
        def deploy(ctx: TaskExecutionContext, request_approval: bool) -> str:
            ctx.get_channel().append("ran", "deploy")
            return "deployed" if request_approval else "skipped"

        process >> request_approval >> deploy
    return wf


def test_an_answered_approval_lets_the_run_finish(person: Any, reviewer: FeedbackManager) -> None:
    wf = approval_workflow(timeout=30)
    with person(lambda request: APPROVE):
        result, ctx = wf.execute(ret_context=True)
    assert result == "deployed"
    assert ctx.status is RunStatus.COMPLETED
    assert ctx.channel.get("deploy_approved") is True
    assert ctx.channel.get("deploy_approved.__feedback_response__")["reason"] == "looks right"
    (request,) = reviewer.list_requests()
    assert (request.status, request.task_id, request.session_id) == \
        ("completed", "request_approval", ctx.session_id)
    assert (request.prompt, request.metadata) == ("Deploy build 42?", {"build": 42})


def test_a_timeout_stops_the_run_as_waiting_and_a_resume_gets_the_answer(
    reviewer: FeedbackManager, tmp_path: Path
) -> None:
    wf = approval_workflow(timeout=0.3)
    result, ctx = wf.execute(ret_context=True)

    # Graflow's behaviour: no error, None, a checkpoint with the task still pending.
    assert result is None
    assert ctx.status is RunStatus.WAITING
    assert ctx.completed_tasks == ["process"]
    assert [s.task_id for s in ctx.pending_tasks] == ["request_approval"]
    (request,) = reviewer.list_pending_requests() or reviewer.list_requests()
    assert request.status == "timeout"
    meta = json.loads(Path(ctx.last_checkpoint_path[:-4] + ".meta.json").read_text())
    assert meta["user_metadata"] == {"reason": "feedback_timeout",
                                     "feedback_id": request.feedback_id,
                                     "task_id": "request_approval", "timeout": 0.3,
                                     "resuming_task_id": "request_approval"}
    assert request.metadata["checkpoint_path"] == ctx.last_checkpoint_path
    assert request.metadata["checkpoint_id"] == meta["checkpoint_id"]
    # Graflow's default place: checkpoints/SESSION/ under the working directory.
    assert ctx.last_checkpoint_path.startswith(f"checkpoints/{ctx.session_id}/")
    assert (tmp_path / ctx.last_checkpoint_path).exists()

    # Someone answers later; the resumed run gets the answer without waiting again.
    assert reviewer.provide_feedback(request.feedback_id, make_response(request, **APPROVE))
    resumed, _meta = CheckpointManager.resume_from_checkpoint(ctx.last_checkpoint_path)
    started = time.monotonic()
    assert WorkflowEngine().execute(resumed) == "deployed"
    assert time.monotonic() - started < 0.3
    assert resumed.status is RunStatus.COMPLETED
    assert resumed.channel.get("ran") == ["process", "request_approval", "request_approval",
                                          "deploy"]
    assert resumed.channel.get("deploy_approved") is True
    assert [r.feedback_id for r in reviewer.list_requests()] == [request.feedback_id]


def test_the_waiting_context_itself_continues_once_answered(
    reviewer: FeedbackManager,
) -> None:
    wf = approval_workflow(timeout=0.2)
    ctx = ExecutionContext.create(wf.graph)
    assert WorkflowEngine().execute(ctx) is None
    assert ctx.status is RunStatus.WAITING
    request = reviewer.list_requests()[0]
    reviewer.provide_feedback(request.feedback_id,
                              make_response(request, approved=False, reason="not today"))
    assert WorkflowEngine().execute(ctx) == "skipped"
    assert ctx.status is RunStatus.COMPLETED
    assert ctx.channel.get("deploy_approved") is False


def test_other_branches_finish_before_the_run_waits(reviewer: FeedbackManager) -> None:
    with workflow("branches") as wf:

        @task(inject_context=True)
        def approve(ctx: TaskExecutionContext) -> bool:
            ctx.get_channel().append("ran", "approve")
            return ctx.request_approval("Go?", timeout=0.1)

        @task(inject_context=True)
        def compute(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().append("ran", "compute")
            return 7

        @task
        def join(approve: bool, compute: int) -> str:
            return f"{approve}-{compute}"

        (approve | compute) >> join

    result, ctx = wf.execute(ret_context=True)
    assert (result, ctx.status) == (None, RunStatus.WAITING)
    assert ctx.completed_tasks == ["compute"]
    assert ctx.channel.get("ran") == ["approve", "compute"]
    request = reviewer.list_requests()[0]
    reviewer.provide_feedback(request.feedback_id, make_response(request, approved=True))
    resumed, _ = CheckpointManager.resume_from_checkpoint(ctx.last_checkpoint_path)
    assert resumed.execute() == "True-7"
    assert resumed.channel.get("ran") == ["approve", "compute", "approve"]


def test_ids_are_per_call_and_per_iteration_and_stable_across_reruns(
    person: Any, reviewer: FeedbackManager
) -> None:
    with workflow("ids") as wf:

        @task(inject_context=True, max_cycles=3)
        def survey(ctx: TaskExecutionContext) -> list[str]:
            name = ctx.request_text_input(f"name #{ctx.cycle_count}?", timeout=30)
            color = ctx.request_selection("color?", ["red", "blue"], timeout=30)
            ctx.get_channel().append("answers", f"{name}:{color}")
            if ctx.cycle_count < 2:
                ctx.next_iteration()
            return ctx.get_channel().get("answers")

    def answer(request: Any) -> dict[str, Any]:
        if request.feedback_type is FeedbackType.TEXT:
            return {"text": request.prompt.split("#")[1].rstrip("?")}
        return {"selected": "blue"}

    with person(answer):
        result, ctx = wf.execute(ret_context=True)
    assert result == ["1:blue", "2:blue"]
    requests = reviewer.list_requests()
    assert len({r.feedback_id for r in requests}) == 4
    # Running the same execution points again (same session) finds every answer.
    again = ExecutionContext(wf.graph, session_id=ctx.session_id)
    started = time.monotonic()
    assert WorkflowEngine().execute(again) == ["1:blue", "2:blue"]
    assert time.monotonic() - started < 5
    assert len(reviewer.list_requests()) == 4


def test_every_feedback_type_and_its_channel_value(person: Any) -> None:
    with workflow("types") as wf:

        @task(inject_context=True)
        def ask(ctx: TaskExecutionContext) -> dict[str, Any]:
            multi = ctx.request_feedback("multi_selection", "which?", options=["a", "b", "c"],
                                         channel_key="multi", write_to_channel=True)
            custom = ctx.request_feedback(FeedbackType.CUSTOM, "form", channel_key="form",
                                          write_to_channel=True)
            return {"multi": multi.selected_multiple, "custom": custom.custom_data,
                    "approved": ctx.request_approval("ok?")}

    def answer(request: Any) -> dict[str, Any]:
        return {"multi_selection": {"selected_multiple": ["c", "a"]},
                "custom": {"custom_data": {"rating": 5}},
                "approval": {"approved": False}}[request.feedback_type.value]

    with person(answer):
        result, ctx = wf.execute(ret_context=True)
    assert result == {"multi": ["c", "a"], "custom": {"rating": 5}, "approved": False}
    assert (ctx.channel.get("multi"), ctx.channel.get("form")) == (["c", "a"], {"rating": 5})


def test_a_bad_request_fails_the_task_with_the_reason() -> None:
    with workflow("bad") as wf:

        @task(inject_context=True)
        def choose(ctx: TaskExecutionContext) -> str:
            return ctx.request_feedback("selection", "pick one").selected or ""

    with pytest.raises(TaskExecutionError) as raised:
        wf.execute()
    assert "task 'choose' failed" in str(raised.value)
    assert "a selection request needs options" in str(raised.value)


def test_a_task_may_handle_its_own_timeout() -> None:
    with workflow("fallback") as wf:

        @task(inject_context=True)
        def ask(ctx: TaskExecutionContext) -> str:
            try:
                return ctx.request_text_input("comment?", timeout=0.05)
            except FeedbackTimeoutError as exc:
                return f"default after {exc.timeout}s"

    result, ctx = wf.execute(ret_context=True)
    assert (result, ctx.status) == ("default after 0.05s", RunStatus.COMPLETED)
    assert ctx.last_checkpoint_path is None


def test_a_memory_store_chosen_when_creating_the_context() -> None:
    wf = approval_workflow(timeout=10)
    ctx = ExecutionContext.create(wf.graph, feedback_backend="memory")
    manager = ctx.feedback_manager
    assert manager.channel_manager is ctx.channel

    import threading

    def answer() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pending = manager.list_pending_requests(ctx.session_id)
            if pending:
                manager.provide_feedback(pending[0].feedback_id,
                                         make_response(pending[0], approved=True))
                return
            time.sleep(0.01)

    thread = threading.Thread(target=answer)
    thread.start()
    assert WorkflowEngine().execute(ctx) == "deployed"
    thread.join()
