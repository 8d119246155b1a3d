"""Human feedback on a cluster: a waiting task is parked and holds no worker; the run
is ``waiting``; an answer (Client or CLI) wakes the task, which gets the stored answer;
after the request's timeout a checkpoint is written and a late answer still counts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clusters import WORKER_OPTIONS, coordinator_options

from graflow_dist import Client, TaskExecutionContext, task, workflow
from graflow_dist.broker.connection import REDIS_URL_ENV
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import FeedbackError, FeedbackValidationError
from graflow_dist.hitl.types import TIMEOUT, FeedbackResponse

RUN_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A coordinator and ONE worker: a run that waits must not take it."""
    root = tmp_path_factory.mktemp("feedback-cluster")
    with RedisServer(dir=root / "redis") as server, LocalCluster(
        1, redis_url=server.url, data_dir=str(root / "services"),
        worker_options=WORKER_OPTIONS, coordinator_options=coordinator_options(root),
    ) as running:
        yield running


@pytest.fixture
def client(one_worker: LocalCluster) -> Iterator[Client]:
    with Client(one_worker.url) as connected:
        yield connected


def approval_workflow(timeout: float = 600.0):  # noqa: ANN201
    with workflow("approval") as wf:

        @task
        def prepare() -> str:
            return "build-42"

        @task(inject_context=True)
        def approve(ctx: TaskExecutionContext, prepare: str) -> dict[str, Any]:
            ctx.get_channel().atomic_add("asked", 1)
            answer = ctx.request_feedback("approval", f"deploy {prepare}?", timeout=timeout,
                                          channel_key="decision", write_to_channel=True)
            return {"approved": answer.approved, "reason": answer.reason}

        @task
        def deploy(approve: dict[str, Any]) -> str:
            return "deployed" if approve["approved"] else f"stopped: {approve['reason']}"

        prepare >> approve >> deploy
    return wf


def quick_workflow():  # noqa: ANN201
    with workflow("quick") as wf:

        @task
        def hello() -> str:
            return "hi"

    return wf


def open_request(client: Client, session: str, wait_until: Callable[..., Any]):  # noqa: ANN201
    return wait_until(lambda: client.pending_feedback(session), "the feedback request")[0]


def test_a_waiting_run_holds_no_worker_and_an_answer_finishes_it(
        client: Client, wait_until: Callable[..., Any]) -> None:
    run = client.submit(approval_workflow())
    request = open_request(client, run.session_id, wait_until)
    assert (request.task_id, request.feedback_type.value) == ("approve", "approval")
    assert request.prompt == "deploy build-42?"
    wait_until(lambda: run.status() == "waiting", "the run to be waiting")
    assert run.progress().running == 0
    # The only worker is free: another run completes while the first one waits.
    assert client.submit(quick_workflow()).wait(timeout=RUN_TIMEOUT_S) == "hi"
    assert run.status() == "waiting"

    with pytest.raises(FeedbackValidationError):  # an answer must fit the question
        client.respond(request.feedback_id, text="yes")
    client.respond(request.feedback_id, approved=True, reason="looks good")
    assert run.wait(timeout=RUN_TIMEOUT_S) == "deployed"
    assert run.get_result("approve") == {"approved": True, "reason": "looks good"}
    assert run.channel().get("decision") is True  # write_to_channel, from the task
    assert run.channel().get("asked") == 2  # asked, parked, ran again and got the answer
    assert client.pending_feedback(run.session_id) == []
    with pytest.raises(FeedbackError, match="no longer open"):
        client.respond(request.feedback_id, approved=False)
    with pytest.raises(FeedbackError, match="no feedback request"):
        client.respond("no-such-request", approved=True)


def test_an_answer_through_the_command_line(client: Client, one_worker: LocalCluster,
                                            wait_until: Callable[..., Any]) -> None:
    run = client.submit(approval_workflow())
    request = open_request(client, run.session_id, wait_until)
    env = {**os.environ, REDIS_URL_ENV: one_worker.url}
    cli = [sys.executable, "-m", "graflow_dist.cli.main"]
    listed = subprocess.run([*cli, "feedback", "list", run.session_id], env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and request.feedback_id in listed.stdout, listed
    answered = subprocess.run([*cli, "feedback", "respond", request.feedback_id, "--reject",
                               "--reason", "not today"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert answered.returncode == 0, answered.stderr
    assert run.wait(timeout=RUN_TIMEOUT_S) == "stopped: not today"
    again = subprocess.run([*cli, "feedback", "respond", request.feedback_id, "--approve"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "no longer open" in again.stderr
    assert "Traceback" not in again.stderr


def test_after_the_timeout_a_checkpoint_is_written_and_a_late_answer_counts(
        client: Client, one_worker: LocalCluster, wait_until: Callable[..., Any],
        tmp_path: Path) -> None:
    run = client.submit(approval_workflow(timeout=1.0))
    request = open_request(client, run.session_id, wait_until)
    checkpoint = wait_until(lambda: run.record().last_checkpoint, "the timeout's checkpoint")
    assert run.status() == "waiting"
    stored = client.feedback.get_request(request.feedback_id)
    assert stored.status == TIMEOUT and stored.metadata["checkpoint_path"] == checkpoint
    assert [r.feedback_id for r in client.pending_feedback(run.session_id)] == [
        request.feedback_id]  # still open: its task still waits
    _ctx, meta = CheckpointManager.resume_from_checkpoint(checkpoint)
    assert meta.user_metadata["waiting_for"] == [request.feedback_id]
    client.respond(request.feedback_id, FeedbackResponse(request.feedback_id, "approval",
                                                         approved=True))
    assert run.wait(timeout=RUN_TIMEOUT_S) == "deployed"


def test_cancel_ends_a_waiting_run(client: Client, wait_until: Callable[..., Any]) -> None:
    run = client.submit(approval_workflow())
    open_request(client, run.session_id, wait_until)
    wait_until(lambda: run.status() == "waiting", "the run to be waiting")
    run.cancel("changed our mind")
    wait_until(lambda: run.status() == "cancelled", "the run to be cancelled")
