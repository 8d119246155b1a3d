"""Basic checkpoint and resume.

A three-step workflow (``step_1 >> step_2 >> step_3``). ``step_2`` asks for a
checkpoint with ``task_ctx.checkpoint(path=..., metadata=...)``. The request is
deferred: the engine writes the checkpoint only after ``step_2`` completed, so the
checkpoint records steps 1 and 2 as completed and ``step_3`` as pending.

The example runs the workflow once (all three steps run and the checkpoint is
written), then resumes from the checkpoint with
``CheckpointManager.resume_from_checkpoint`` and ``WorkflowEngine().execute``. The
resumed run executes only ``step_3`` and sees the channel data written by steps 1
and 2.

Every task appends its id to the channel list ``"executed"``; the channel is saved
in the checkpoint, so the tasks that ran in the resumed run are the entries added
after the ones restored from the checkpoint. (The channel works the same way on a
cluster, where a module-level list in this process would not see anything.)

Run: ``python examples/checkpoints/01_basic_checkpoint.py [--dir DIR]``
(checkpoints go to a temporary directory unless ``--dir`` is given).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from graflow_dist.client import run_context
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow


def build_workflow(checkpoint_base: str) -> WorkflowContext:
    """The workflow; ``step_2`` checkpoints to ``checkpoint_base`` (``.pkl`` etc.)."""
    with workflow("basic_checkpoint") as wf:

        @task(inject_context=True)
        def step_1(task_ctx: TaskExecutionContext) -> str:
            channel = task_ctx.get_channel()
            channel.append("executed", task_ctx.task_id)
            channel.set("raw_records", [3, 1, 2])
            print("  step_1: loaded 3 records")
            return "loaded"

        @task(inject_context=True)
        def step_2(task_ctx: TaskExecutionContext) -> str:
            channel = task_ctx.get_channel()
            channel.append("executed", task_ctx.task_id)
            channel.set("sorted_records", sorted(channel.get("raw_records")))
            # Deferred: written by the engine once this task has completed.
            task_ctx.checkpoint(path=checkpoint_base, metadata={"stage": "sorted"})
            print("  step_2: sorted the records, checkpoint requested")
            return "sorted"

        @task(inject_context=True)
        def step_3(task_ctx: TaskExecutionContext) -> str:
            channel = task_ctx.get_channel()
            channel.append("executed", task_ctx.task_id)
            records = channel.get("sorted_records")
            print(f"  step_3: report on {records}")
            return f"report: {records}"

        step_1 >> step_2 >> step_3
    return wf


def run(ctx: ExecutionContext) -> ExecutionContext:
    """Run (or continue) ``ctx`` to its end: in process, or on the cluster named by
    ``GRAFLOW_DIST_CLUSTER`` (a Redis URL) when it is set."""
    run_context(ctx)
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="checkpoint directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graflow-ckpt-") as tmp:
        directory = Path(args.dir or tmp).resolve()  # a cluster re-roots relative paths
        checkpoint_base = str(directory / "after_step_2")
        wf = build_workflow(checkpoint_base)

        print("== first run")
        first = run(ExecutionContext.create(wf.graph))
        print(f"ran: {first.channel.get('executed')}")
        print(f"result: {first.get_result('step_3')!r}")
        print(f"checkpoint written: {first.last_checkpoint_path}")
        for suffix in (".pkl", ".state.json", ".meta.json"):
            assert Path(checkpoint_base + suffix).exists(), suffix

        print("== resume from the checkpoint")
        restored, meta = CheckpointManager.resume_from_checkpoint(checkpoint_base + ".pkl")
        print(f"checkpoint {meta.checkpoint_id}: steps={meta.steps}, "
              f"stage={meta.user_metadata['stage']!r}")
        print(f"restored completed tasks: {restored.completed_tasks}")
        print(f"restored pending tasks: {[s.task_id for s in restored.pending_tasks]}")
        before = len(restored.channel.get("executed", []))
        resumed = run(restored)
        ran = resumed.channel.get("executed")[before:]
        print(f"ran in the resumed run: {ran}")
        print(f"result: {resumed.get_result('step_3')!r}")
        assert ran == ["step_3"], ran
        assert resumed.completed_tasks == ["step_1", "step_2", "step_3"]
        assert resumed.get_result("step_3") == first.get_result("step_3")
        assert resumed.session_id == first.session_id
        print("OK: the resumed run executed only step_3")


# For `graflow-dist submit examples/checkpoints/01_basic_checkpoint.py:wf --wait`.
# Checkpoint paths are relative: a coordinator writes them under its --checkpoint-dir.
wf = build_workflow("basic_checkpoint/after_step_2")


if __name__ == "__main__":
    main()
