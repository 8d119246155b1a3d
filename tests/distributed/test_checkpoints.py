"""Checkpoints cross the boundary: taken in process, resumed on the cluster, and the
other way round."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clusters import checkpoint_dir_of

from graflow_dist import (
    CheckpointManager,
    Client,
    ExecutionContext,
    TaskExecutionContext,
    WorkflowEngine,
    task,
    workflow,
)
from graflow_dist.embedded.cluster import LocalCluster

RUN_TIMEOUT_S = 60


def etl_workflow(name: str, checkpoint_base: Path):  # noqa: ANN201 - a WorkflowContext
    """``extract >> transform >> load``; extract asks for a checkpoint at
    ``checkpoint_base``; each task logs ``[name, parent pid]`` to the channel's ``log``
    (on a cluster the worker service, whose executor process runs the task; in process
    the test's parent)."""
    with workflow(name) as wf:

        @task(inject_context=True)
        def extract(ctx: TaskExecutionContext) -> dict[str, int]:
            ctx.get_channel().append("log", ["extract", os.getppid()])
            ctx.checkpoint(path=str(checkpoint_base), metadata={"stage": "extract"})
            return {"rows": 21}

        @task(inject_context=True)
        def transform(ctx: TaskExecutionContext, extract: dict[str, int]) -> int:
            ctx.get_channel().append("log", ["transform", os.getppid()])
            return extract["rows"] * 2

        @task(inject_context=True)
        def load(ctx: TaskExecutionContext, transform: int) -> str:
            ctx.get_channel().append("log", ["load", os.getppid()])
            return f"loaded {transform}"

        extract >> transform >> load
    return wf


def test_checkpoint_taken_in_process_resumes_on_the_cluster(
    client: Client, shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    base = tmp_path / "ck" / "local"
    wf = etl_workflow("local-then-cluster", base)
    result, local_ctx = wf.execute(ret_context=True)
    assert result == "loaded 42"

    run = client.resume(f"{base}.pkl")
    assert run.session_id == local_ctx.session_id
    assert run.wait(timeout=RUN_TIMEOUT_S) == "loaded 42"

    log = run.channel().get("log")
    assert [name for name, _pid in log] == ["extract", "transform", "load"]
    assert log[0][1] == os.getppid(), "extract is not re-run: its log entry comes from here"
    worker_pids = {w.pid for w in shared_cluster.workers}
    assert {pid for _name, pid in log[1:]} <= worker_pids
    assert run.get_result("extract") == {"rows": 21}
    ctx = run.context()
    assert ctx.completed_tasks == ["extract", "transform", "load"]
    assert ctx.steps == 3


def test_checkpoint_written_by_the_cluster_resumes_in_process(
    client: Client, shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    base = checkpoint_dir_of(shared_cluster) / tmp_path.name / "cluster"
    run = client.submit(etl_workflow("cluster-then-local", base))
    assert run.wait(timeout=RUN_TIMEOUT_S) == "loaded 42"
    assert run.info().get("last_checkpoint") == f"{base}.pkl"
    assert {p.name for p in base.parent.iterdir()} == {
        "cluster.pkl", "cluster.state.json", "cluster.meta.json"}

    ctx, meta = CheckpointManager.resume_from_checkpoint(f"{base}.pkl")
    assert meta.session_id == run.session_id
    assert meta.user_metadata["stage"] == "extract"
    assert ctx.completed_tasks == ["extract"]
    assert [spec.task_id for spec in ctx.pending_tasks] == ["transform"]
    assert ctx.get_result("extract") == {"rows": 21}

    assert WorkflowEngine().execute(ctx) == "loaded 42"
    assert ctx.completed_tasks == ["extract", "transform", "load"]
    log = ctx.channel.get("log")
    worker_pids = {w.pid for w in shared_cluster.workers}
    assert log[0][0] == "extract" and log[0][1] in worker_pids
    assert log[-2:] == [["transform", os.getppid()], ["load", os.getppid()]]


def test_a_checkpoint_of_the_last_task_is_there_when_the_run_ends(
    client: Client, shared_cluster: LocalCluster, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in process, ``execute`` returns with the checkpoint of the run's last task
    written and named in the context: the coordinator writes a checkpoint before the
    commit that ends the run (it used to write it after, so the run was seen ended
    first and the context had no checkpoint)."""
    monkeypatch.chdir(tmp_path)  # in process, checkpoints go below the working directory
    for attempt in range(5):  # the race it had was lost every time; once is not proof
        with workflow(f"last-task-checkpoint-{attempt}") as wf:

            @task
            def first() -> int:
                return 20

            @task(inject_context=True)
            def last(ctx: TaskExecutionContext, first: int) -> int:
                ctx.checkpoint(metadata={"stage": "last"})
                return first + 1

            first >> last

        local = ExecutionContext(wf.graph)
        assert WorkflowEngine().execute(local) == 21
        ctx = ExecutionContext(wf.graph)
        assert client.execute(ctx, timeout=RUN_TIMEOUT_S) == 21
        assert local.last_checkpoint_path and ctx.last_checkpoint_path, attempt
        assert client.attach(ctx.session_id).info()["checkpoint_error"] is None
        assert ctx.last_checkpoint_path.startswith(str(checkpoint_dir_of(shared_cluster)))
        resumed, meta = CheckpointManager.resume_from_checkpoint(ctx.last_checkpoint_path)
        assert meta.user_metadata["stage"] == "last"
        assert resumed.completed_tasks == ["first", "last"]
        assert resumed.pending_tasks == []


def test_cluster_checkpoint_holds_the_channel_as_of_the_checkpointing_task(
    client: Client, shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    """The checkpoint records ``extract`` completed and ``transform`` pending, so its
    channel must not contain what ``transform`` wrote (as in process). A large channel
    value widens the window between the coordinator dispatching ``transform`` and
    reading the channel for the checkpoint, which must not matter."""
    base = checkpoint_dir_of(shared_cluster) / tmp_path.name / "consistent"
    with workflow("checkpoint-consistency") as wf:

        @task(inject_context=True)
        def extract(ctx: TaskExecutionContext) -> int:
            channel = ctx.get_channel()
            channel.set("ballast", b"x" * (16 * 2**20))
            channel.append("log", "extract")
            ctx.checkpoint(path=str(base))
            return 1

        @task(inject_context=True)
        def transform(ctx: TaskExecutionContext, extract: int) -> int:
            ctx.get_channel().append("log", "transform")
            return extract + 1

        extract >> transform

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == 2
    assert run.channel().get("log") == ["extract", "transform"]

    ctx, _meta = CheckpointManager.resume_from_checkpoint(f"{base}.pkl")
    assert ctx.completed_tasks == ["extract"]
    assert [spec.task_id for spec in ctx.pending_tasks] == ["transform"]
    assert ctx.channel.get("log") == ["extract"], (
        "the checkpoint's channel holds writes of a task it records as pending")


def test_checkpoint_with_a_pending_dynamic_task_resumes_anywhere(
    client: Client, shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    """A task created on a worker is pending in a cluster checkpoint; the checkpoint
    carries its code, so it resumes in process and on the cluster."""
    base = checkpoint_dir_of(shared_cluster) / tmp_path.name / "dynamic"
    with workflow("dynamic-checkpoint") as wf:

        @task(inject_context=True)
        def planner(ctx: TaskExecutionContext) -> int:
            rows = 6

            @task("worker_made")
            def worker_made(planner: int) -> int:
                return planner * rows + 1

            ctx.next_task(worker_made, goto=True)
            ctx.checkpoint(path=str(base))
            return 7

        @task
        def skipped() -> str:
            return "not reached: planner jumps to worker_made"

        planner >> skipped

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == 43

    ctx, _meta = CheckpointManager.resume_from_checkpoint(f"{base}.pkl")
    assert ctx.completed_tasks == ["planner"]
    assert [spec.task_id for spec in ctx.pending_tasks] == ["worker_made"]
    assert WorkflowEngine().execute(ctx) == 43
    assert ctx.completed_tasks == ["planner", "worker_made"]

    again = client.resume(f"{base}.pkl")
    assert again.wait(timeout=RUN_TIMEOUT_S) == 43
    assert again.context().completed_tasks == ["planner", "worker_made"]
