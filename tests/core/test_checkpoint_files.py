"""Writing checkpoints: the three files, their fields, paths, and crash safety."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from graflow_dist import CheckpointManager, TaskExecutionContext, parallel, task, workflow
from graflow_dist.checkpoint.format import SCHEMA_VERSION
from graflow_dist.errors import CheckpointError, TaskExecutionError
from graflow_dist.scheduler import TaskSpec

TASKSPEC_FIELDS = {f.name for f in fields(TaskSpec)}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_three_files_with_a_common_base(pipeline_checkpoint) -> None:
    ck = pipeline_checkpoint
    assert ck.result == "total 20"  # the run itself carried on after the checkpoint
    assert sorted(p.name for p in ck.base.parent.iterdir()) == [
        "pipeline.meta.json",
        "pipeline.pkl",
        "pipeline.state.json",
    ]
    assert ck.context.last_checkpoint_path == str(ck.pkl)
    assert ck.context.checkpoint_metadata["user_metadata"]["stage"] == "extract"
    assert not ck.context.checkpoint_requested  # the request was consumed


def test_state_document_fields(pipeline_checkpoint) -> None:
    state = read_json(pipeline_checkpoint.state)
    assert state["schema_version"] == SCHEMA_VERSION == 2
    assert state["session_id"] == pipeline_checkpoint.context.session_id
    assert state["steps"] == 1
    # deferred: s1 completed before the checkpoint was written, its successor pends
    assert state["completed_tasks"] == ["s1"]
    assert state["cycle_counts"] == {"s1": 1}
    (pending,) = state["pending_tasks"]
    assert set(pending) == TASKSPEC_FIELDS  # a full TaskSpec, not just an id
    assert pending["task_id"] == "s2" and pending["attempt"] == 1 and pending["cycle"] == 0
    assert TaskSpec.from_dict(pending).token == pending["token"]


def test_state_document_lists_one_pending_task_per_line(tmp_path: Path) -> None:
    @task
    def work(x: int) -> int:
        return x

    with workflow("wide") as wf:

        @task(inject_context=True)
        def head(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path=str(tmp_path / "wide"))

        head >> parallel(*[work(task_id=f"w{i}", x=i) for i in range(50)])
    wf.execute(start_node="head")
    text = (tmp_path / "wide.state.json").read_text()
    state = json.loads(text)
    assert len(state["pending_tasks"]) == 50
    lines = text.splitlines()
    for spec in state["pending_tasks"]:  # readable: each spec whole on a line of its own
        assert f"    {json.dumps(spec, ensure_ascii=False)}," in lines or \
            f"    {json.dumps(spec, ensure_ascii=False)}" in lines
    assert '  "session_id": ' in text


def test_meta_document_fields(pipeline_checkpoint) -> None:
    meta = read_json(pipeline_checkpoint.meta)
    assert meta["session_id"] == pipeline_checkpoint.context.session_id
    assert meta["steps"] == 1
    assert meta["checkpoint_id"].startswith(meta["session_id"])
    created = datetime.fromisoformat(meta["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(created.tzinfo) - created) < timedelta(minutes=5)
    user = meta["user_metadata"]
    assert user["stage"] == "extract"
    assert user["task_id"] == "s1" and user["cycle_count"] == 1 and user["mode"] == "deferred"


def test_no_secret_in_any_file(pipeline_checkpoint, signing_secret: str) -> None:
    for path in (pipeline_checkpoint.pkl, pipeline_checkpoint.state, pipeline_checkpoint.meta):
        assert signing_secret.encode() not in path.read_bytes()


def test_generated_path_under_checkpoints_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with workflow("w") as wf:

        @task(inject_context=True)
        def first(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint()

        @task(inject_context=True)
        def second(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint({"n": 2})

        first >> second

    _, ctx = wf.execute(ret_context=True)
    sid = ctx.session_id
    directory = tmp_path / "checkpoints" / sid
    metas = sorted(directory.glob("*.meta.json"))
    assert len(metas) == 2
    assert all(p.name.startswith(f"session_{sid}_step_") for p in metas)
    assert Path(ctx.last_checkpoint_path).parent == Path("checkpoints") / sid
    assert (tmp_path / ctx.last_checkpoint_path).exists()

    listed = CheckpointManager.list_checkpoints()
    assert [m.steps for m in listed] == [1, 2]  # oldest first
    assert listed[1].user_metadata["n"] == 2
    assert len({m.checkpoint_id for m in listed}) == 2
    assert CheckpointManager.list_checkpoints(session_id=sid) == listed
    assert CheckpointManager.list_checkpoints(session_id="someone-else") == []
    assert CheckpointManager.latest_checkpoint().checkpoint_id == listed[1].checkpoint_id


def test_positional_path_is_accepted(tmp_path: Path) -> None:
    base = tmp_path / "positional"
    with workflow("w") as wf:

        @task(inject_context=True)
        def only(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(str(base))

    _, ctx = wf.execute(ret_context=True)
    assert ctx.last_checkpoint_path == f"{base}.pkl"
    assert Path(f"{base}.meta.json").exists()


def test_trailing_pkl_is_stripped_from_the_given_path(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def only(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path=str(tmp_path / "named.pkl"))

    wf.execute()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "named.meta.json", "named.pkl", "named.state.json",
    ]


def test_checkpoint_ids_are_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with workflow("w") as wf:

        @task
        def only() -> None: ...

    ctx = wf.create_context()
    first_path, first = CheckpointManager.create_checkpoint(ctx)
    second_path, second = CheckpointManager.create_checkpoint(ctx)
    assert first.checkpoint_id != second.checkpoint_id
    assert first_path != second_path
    assert first.session_id == second.session_id == ctx.session_id


def test_failed_task_writes_no_checkpoint(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def doomed(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path=str(tmp_path / "never"))
            raise RuntimeError("after asking for a checkpoint")

    with pytest.raises(TaskExecutionError):
        wf.execute()
    assert list(tmp_path.iterdir()) == []


def test_terminating_task_still_gets_its_checkpoint(tmp_path: Path) -> None:
    with workflow("w") as wf:

        @task(inject_context=True)
        def stop(ctx: TaskExecutionContext) -> None:
            ctx.checkpoint(path=str(tmp_path / "final"))
            ctx.terminate_workflow("done")

        @task
        def skipped() -> None: ...

        stop >> skipped

    wf.execute()
    state = read_json(tmp_path / "final.state.json")
    assert state["completed_tasks"] == ["stop"] and state["pending_tasks"] == []


def test_no_temp_files_are_left_behind(pipeline_checkpoint) -> None:
    leftovers = [p.name for p in pipeline_checkpoint.base.parent.iterdir()
                 if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


def test_interrupted_write_is_never_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with workflow("w") as wf:

        @task
        def only() -> None: ...

    ctx = wf.create_context()
    base = tmp_path / "broken"
    real_replace = os.replace

    def replace_but_die_on_meta(src: str, dst: str) -> None:
        if str(dst).endswith(".meta.json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace_but_die_on_meta)
        with pytest.raises(CheckpointError, match="No space left"):
            CheckpointManager.create_checkpoint(ctx, path=str(base))

    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pkl", "broken.state.json"]
    assert CheckpointManager.list_checkpoints(tmp_path) == []
    with pytest.raises(CheckpointError, match=r"broken\.meta\.json.*never completed"):
        CheckpointManager.resume_from_checkpoint(f"{base}.pkl")


def test_list_checkpoints_skips_uncommitted_and_unreadable(pipeline_checkpoint) -> None:
    directory = pipeline_checkpoint.base.parent
    (directory / "garbage.meta.json").write_text("{not json")
    (directory / "orphan.pkl").write_bytes(b"no meta, never committed")
    (listed,) = CheckpointManager.list_checkpoints(directory)
    assert listed.path == str(pipeline_checkpoint.pkl)
    assert listed.session_id == pipeline_checkpoint.context.session_id
    pipeline_checkpoint.meta.unlink()
    assert CheckpointManager.list_checkpoints(directory) == []


def test_list_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert CheckpointManager.list_checkpoints(tmp_path / "nothing-here") == []
    assert CheckpointManager.latest_checkpoint(tmp_path / "nothing-here") is None
