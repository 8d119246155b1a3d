"""Resuming from checkpoints: only pending work runs; results, channel data and cycle
counts come back."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest

from graflow_dist import (
    CheckpointManager,
    CheckpointMetadata,
    ExecutionContext,
    RetryPolicy,
    TaskExecutionContext,
    WorkflowEngine,
    task,
    workflow,
)
from graflow_dist.checkpoint.format import PAYLOAD_FORMAT, ContextPayload
from graflow_dist.core import engine as engine_module
from graflow_dist.core.graph_code import graph_from_code
from graflow_dist.scheduler import RunStatus
from graflow_dist.wire.signing import dumps_signed, sign


def test_resume_restores_the_frontier(pipeline_checkpoint) -> None:
    ctx, meta = CheckpointManager.resume_from_checkpoint(str(pipeline_checkpoint.pkl))
    assert isinstance(ctx, ExecutionContext) and isinstance(meta, CheckpointMetadata)
    assert ctx.session_id == pipeline_checkpoint.context.session_id
    assert ctx.steps == 1
    assert ctx.completed_tasks == ["s1"]
    assert [s.task_id for s in ctx.pending_tasks] == ["s2"]
    assert ctx.last_checkpoint_path == str(pipeline_checkpoint.pkl)
    assert meta.path == str(pipeline_checkpoint.pkl)
    assert meta.user_metadata["stage"] == "extract"
    assert ctx.checkpoint_metadata["checkpoint_id"] == meta.checkpoint_id


def test_resume_runs_only_pending_tasks(pipeline_checkpoint) -> None:
    ctx, _ = CheckpointManager.resume_from_checkpoint(pipeline_checkpoint.pkl)
    assert ctx.channel.get("log") == ["s1"]
    result = WorkflowEngine().execute(ctx)
    assert result == "total 20"
    assert ctx.channel.get("log") == ["s1", "s2", "s3"]  # s1 did not run again
    assert ctx.completed_tasks == ["s1", "s2", "s3"]
    assert ctx.steps == 3
    assert ctx.status is RunStatus.COMPLETED


def test_a_schema_1_checkpoint_with_one_pickled_graph_still_resumes(
        pipeline_checkpoint) -> None:
    ck = pipeline_checkpoint
    payload = ContextPayload.decode(ck.pkl.read_bytes(), str(ck.pkl))
    graph = graph_from_code(payload.graph_manifest, payload.graph_code, "test")
    body = {name: getattr(payload, name) for name in (
        "session_id", "channel", "start_node", "max_steps", "default_max_cycles",
        "default_max_retries", "config", "dynamic")}
    body.update(graph_blob=dumps_signed(graph), format=PAYLOAD_FORMAT, schema_version=1)
    ck.pkl.write_bytes(sign(msgpack.packb(body, use_bin_type=True)))
    for path in (ck.state, ck.meta):
        path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 1}))
    ctx, _ = CheckpointManager.resume_from_checkpoint(ck.pkl)
    assert WorkflowEngine().execute(ctx) == "total 20"
    assert ctx.channel.get("log") == ["s1", "s2", "s3"]


def test_context_execute_continues_too(pipeline_checkpoint) -> None:
    ctx, _ = CheckpointManager.resume_from_checkpoint(pipeline_checkpoint.pkl)
    assert ctx.execute() == "total 20"


def test_results_and_channel_data_survive_exactly(pipeline_checkpoint) -> None:
    ctx, _ = CheckpointManager.resume_from_checkpoint(pipeline_checkpoint.pkl)
    assert ctx.get_result("s1") == {"rows": 10}
    shape, tags, nested = (ctx.channel.get(k) for k in ("shape", "tags", "nested"))
    assert shape == (3, 4) and type(shape) is tuple
    assert tags == {"a", "b"} and type(tags) is set
    assert nested == {"k": {"inner": [1, (2, 3)]}, "none": None}
    assert type(nested["k"]["inner"][1]) is tuple


@pytest.mark.parametrize("suffix", ["", ".pkl", ".state.json", ".meta.json"])
def test_any_of_the_three_paths_names_the_checkpoint(pipeline_checkpoint, suffix: str) -> None:
    ctx, meta = CheckpointManager.resume_from_checkpoint(f"{pipeline_checkpoint.base}{suffix}")
    assert meta.path == str(pipeline_checkpoint.pkl)
    assert ctx.completed_tasks == ["s1"]


def test_resuming_twice_from_one_checkpoint_gives_the_same_run(pipeline_checkpoint) -> None:
    first, _ = CheckpointManager.resume_from_checkpoint(pipeline_checkpoint.pkl)
    second, _ = CheckpointManager.resume_from_checkpoint(pipeline_checkpoint.pkl)
    assert first.execute() == second.execute() == "total 20"
    assert first.channel.get("log") == second.channel.get("log") == ["s1", "s2", "s3"]


def _loop_workflow(base: Path):
    wf = workflow("loop")
    with wf:

        @task(inject_context=True, max_cycles=5)
        def loop(ctx: TaskExecutionContext, data: int | None = None) -> int:
            ctx.get_channel().append("cycles", ctx.cycle_count)
            if ctx.cycle_count == 3:
                ctx.checkpoint(path=str(base))
            if ctx.can_iterate():
                ctx.next_iteration((data or 0) + 1)
            return ctx.cycle_count

        @task(inject_context=True)
        def after(ctx: TaskExecutionContext, loop: int) -> str:
            ctx.get_channel().append("cycles", "after")
            return f"looped {loop} times"

        loop >> after
    return wf


def test_cycle_counts_survive_resume(tmp_path: Path) -> None:
    base = tmp_path / "loop"
    result, original = _loop_workflow(base).execute(ret_context=True)
    assert result == "looped 5 times"
    assert original.channel.get("cycles") == [1, 2, 3, 4, 5, "after"]

    ctx, meta = CheckpointManager.resume_from_checkpoint(f"{base}.pkl")
    assert meta.user_metadata["cycle_count"] == 3
    assert ctx.cycle_counts == {"loop": 3}
    (pending,) = ctx.pending_tasks
    assert pending.task_id == "loop" and pending.cycle == 3
    assert ctx.completed_tasks == ["loop"]

    assert WorkflowEngine().execute(ctx) == "looped 5 times"
    # exactly two more cycles (4 and 5), then the successor once
    assert ctx.channel.get("cycles") == [1, 2, 3, 4, 5, "after"]
    assert ctx.cycle_counts == {"loop": 5, "after": 1}


def test_iteration_data_survives_resume(tmp_path: Path) -> None:
    base = tmp_path / "loop"
    _loop_workflow(base).execute()
    ctx, _ = CheckpointManager.resume_from_checkpoint(f"{base}.pkl")
    WorkflowEngine().execute(ctx)
    assert ctx.get_result("loop") == 5


def test_checkpoint_of_a_resumed_run_resumes_again(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def a(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint(path=str(tmp_path / "one"))
            return "a"

        @task(inject_context=True)
        def b(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint(path=str(tmp_path / "two"))
            return "b"

        @task
        def c(a: str, b: str) -> str:
            return a + b + "c"

        a >> b >> c

    assert wf.execute() == "abc"
    ctx1, _ = CheckpointManager.resume_from_checkpoint(tmp_path / "one.pkl")
    assert ctx1.execute() == "abc"  # rewrites "two" from the resumed run
    ctx2, meta2 = CheckpointManager.resume_from_checkpoint(tmp_path / "two.pkl")
    assert meta2.session_id == ctx1.session_id
    assert ctx2.completed_tasks == ["a", "b"]
    assert ctx2.execute() == "abc"
    assert ctx2.completed_tasks == ["a", "b", "c"]


def test_group_progress_survives_resume(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def left(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", "left")
            ctx.checkpoint(path=str(tmp_path / "mid-group"))
            return "L"

        @task(inject_context=True)
        def right(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", "right")
            return "R"

        @task
        def join(left: str, right: str) -> str:
            return left + right

        (left | right) >> join

    assert wf.execute() == "LR"
    ctx, _ = CheckpointManager.resume_from_checkpoint(tmp_path / "mid-group.pkl")
    assert [s.task_id for s in ctx.pending_tasks] == ["right"]
    assert ctx.execute() == "LR"
    assert ctx.channel.get("ran") == ["left", "right"]
    assert ctx.completed_tasks == ["left", "right", "ParallelGroup_1", "join"]


def test_dynamic_task_survives_resume(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def spawner(ctx: TaskExecutionContext) -> None:
            @task
            def spawned() -> str:
                return "spawned ran"

            ctx.next_task(spawned, goto=True)
            ctx.checkpoint(path=str(tmp_path / "dyn"))

    wf.execute()
    ctx, _ = CheckpointManager.resume_from_checkpoint(tmp_path / "dyn.pkl")
    assert [s.task_id for s in ctx.pending_tasks] == ["spawned"]
    assert ctx.execute() == "spawned ran"


def test_resumed_terminated_run_stays_finished(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def stopper(ctx: TaskExecutionContext) -> str:
            ctx.checkpoint(path=str(tmp_path / "final"))
            ctx.terminate_workflow("done")
            return "stopped"

        @task
        def sibling() -> str:  # a second root, still pending when stopper ends the run
            raise AssertionError("must not run")

    assert wf.execute() == "stopped"
    ctx, _ = CheckpointManager.resume_from_checkpoint(tmp_path / "final.pkl")
    assert ctx.pending_tasks == []
    ctx.execute()
    assert ctx.completed_tasks == ["stopper"]


class FakeClock:
    """Replaces the engine's `time` module: sleeping advances the clock at once."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_retry_backoff_survives_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(1000.0)
    monkeypatch.setattr(engine_module, "time", clock)
    with workflow("w") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=30))
        def flaky(ctx: TaskExecutionContext) -> int:
            if ctx.attempt == 1:
                raise RuntimeError("transient")
            ctx.get_channel().set("retried_at", engine_module.time.time())
            return ctx.attempt

        @task(inject_context=True)
        def snapshotter(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path=str(tmp_path / "retrying"))

    assert wf.execute() == 2
    assert clock.slept == [30.0]

    ctx, _ = CheckpointManager.resume_from_checkpoint(tmp_path / "retrying.pkl")
    (pending,) = ctx.pending_tasks
    assert pending.task_id == "flaky" and pending.attempt == 2
    assert pending.not_before == 1030.0  # still backing off when the checkpoint was taken

    clock.now, clock.slept = 1010.0, []  # resume 10 s after the checkpoint
    assert ctx.execute() == 2
    assert clock.slept == [20.0]  # only the rest of the backoff
    assert ctx.channel.get("retried_at") == 1030.0
    assert ctx.completed_tasks == ["snapshotter", "flaky"]


@dataclass(frozen=True)
class Point:
    x: int
    y: int


ROUND_TRIP_VALUES = {
    "tuple": (1, "two", 3.0),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "nested": {"outer": {"inner": [1, (2, 3), {"deep": None}], "flag": True}},
    "int_keys": {1: "one", (2, 3): "tuple key"},
    "big_int": 2**70,
    "negative": -(2**63),
    "bytes": b"\x00\xff",
    "float": 0.1,
    "dataclass": Point(1, 2),
    "empty_list": [],
    "none": None,
}


def test_channel_values_round_trip_exactly_through_a_checkpoint(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task
        def only() -> None: ...

    ctx = wf.create_context()
    for key, value in ROUND_TRIP_VALUES.items():
        ctx.channel.set(key, value)
    pkl, _ = CheckpointManager.create_checkpoint(ctx, path=str(tmp_path / "values"))
    restored, _ = CheckpointManager.resume_from_checkpoint(pkl)
    for key, value in ROUND_TRIP_VALUES.items():
        got = restored.channel.get(key, "MISSING")
        assert got == value and type(got) is type(value), key
    assert type(restored.channel.get("nested")["outer"]["inner"][1]) is tuple


def test_checkpoint_of_a_run_not_started_yet_resumes_from_the_start(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task
        def first() -> str:
            return "first"

        @task
        def second(first: str) -> str:
            return first + " then second"

        first >> second

    ctx = wf.create_context()
    pkl, meta = CheckpointManager.create_checkpoint(ctx, path=str(tmp_path / "fresh"))
    assert meta.steps == 0
    restored, _ = CheckpointManager.resume_from_checkpoint(pkl)
    assert [s.task_id for s in restored.pending_tasks] == ["first"]
    assert restored.execute() == "first then second"
    assert restored.completed_tasks == ["first", "second"]
