"""Periodic checkpoints in a long-running loop, and resuming after an interruption.

A simulated training job: the task ``train`` runs one epoch per iteration
(``task_ctx.next_iteration()``, ``max_cycles=EPOCHS``) and keeps the model in the
channel. Every ``CHECKPOINT_EVERY`` epochs it asks for a checkpoint named after the
epoch, under ``DIR/{session_id}/``. ``evaluate`` runs after the last epoch.

The first run is interrupted during epoch ``CRASH_AT_EPOCH`` (a deterministic,
simulated failure that happens only once: a marker file records that it happened).
The example then finds the latest checkpoint of the session with
``CheckpointManager.list_checkpoints(directory, session_id)``, resumes from it and
finishes the job. The resumed run starts with the epoch right after the last
checkpointed one: epochs after the checkpoint are redone, epochs before it are not.

Run: ``python examples/checkpoints/03_periodic_checkpoint.py [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from graflow_dist.client import run_context
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.errors import WorkflowError

EPOCHS = 10
CHECKPOINT_EVERY = 3
CRASH_AT_EPOCH = 7


class SimulatedInterruption(RuntimeError):
    """Stands in for a killed process, a preempted node or an out-of-memory error."""


def build_workflow(checkpoint_dir: str, crash_at_epoch: int | None) -> WorkflowContext:
    """``train`` (one epoch per iteration) >> ``evaluate``."""
    with workflow("periodic_checkpoint") as wf:

        @task(inject_context=True, max_cycles=EPOCHS)
        def train(task_ctx: TaskExecutionContext) -> dict:
            channel = task_ctx.get_channel()
            epoch = task_ctx.cycle_count  # 1-based: the first run is epoch 1
            model = channel.get("model", {"weight": 0.0})
            loss = 1.0 / epoch
            model = {"weight": model["weight"] + loss, "epoch": epoch}
            channel.append("epochs_run", epoch)
            print(f"  epoch {epoch:2d}: loss={loss:.3f}")

            session_dir = os.path.join(checkpoint_dir, task_ctx.session_id)
            marker = os.path.join(session_dir, f"interrupted_at_epoch_{epoch}")
            if epoch == crash_at_epoch and not os.path.exists(marker):
                os.makedirs(session_dir, exist_ok=True)
                Path(marker).touch()  # the interruption happens once
                raise SimulatedInterruption(f"process killed during epoch {epoch}")

            channel.set("model", model)
            if epoch % CHECKPOINT_EVERY == 0:
                task_ctx.checkpoint(
                    path=os.path.join(session_dir, f"epoch_{epoch:03d}"),
                    metadata={"epoch": epoch, "loss": loss},
                )
            if epoch < EPOCHS:
                task_ctx.next_iteration()
            return model

        @task(inject_context=True)
        def evaluate(task_ctx: TaskExecutionContext) -> str:
            model = task_ctx.get_channel().get("model")
            summary = f"trained {model['epoch']} epochs, weight={model['weight']:.4f}"
            print(f"  evaluate: {summary}")
            return summary

        train >> evaluate
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
        wf = build_workflow(str(directory), crash_at_epoch=CRASH_AT_EPOCH)

        print(f"== first run: {EPOCHS} epochs, checkpoint every {CHECKPOINT_EVERY}")
        ctx = ExecutionContext.create(wf.graph)
        session_id = ctx.session_id
        try:
            run(ctx)
        except WorkflowError as exc:
            print(f"interrupted: {exc}")
        else:
            raise AssertionError("the first run was expected to be interrupted")
        first_epochs = ctx.channel.get("epochs_run")
        print(f"epochs run in the first run: {first_epochs}")
        assert first_epochs == list(range(1, CRASH_AT_EPOCH + 1))

        checkpoints = CheckpointManager.list_checkpoints(directory, session_id)
        saved = [m.user_metadata["epoch"] for m in checkpoints]
        print(f"checkpoints of session {session_id}: epochs {saved}")
        assert saved == list(range(CHECKPOINT_EVERY, CRASH_AT_EPOCH, CHECKPOINT_EVERY))
        latest = CheckpointManager.latest_checkpoint(directory, session_id)
        assert latest is not None and latest.checkpoint_id == checkpoints[-1].checkpoint_id
        last_saved_epoch = latest.user_metadata["epoch"]

        print(f"== resume from the latest checkpoint (epoch {last_saved_epoch})")
        restored, _ = CheckpointManager.resume_from_checkpoint(latest.path)
        already = len(restored.channel.get("epochs_run"))
        resumed = run(restored)
        resumed_epochs = resumed.channel.get("epochs_run")[already:]
        print(f"epochs run in the resumed run: {resumed_epochs}")
        print(f"result: {resumed.get_result('evaluate')!r}")
        assert resumed_epochs[0] == last_saved_epoch + 1, resumed_epochs
        assert resumed_epochs == list(range(last_saved_epoch + 1, EPOCHS + 1))
        model = resumed.channel.get("model")
        assert model["epoch"] == EPOCHS
        # Same model as an uninterrupted run: the interrupted epoch 7 left no trace.
        assert abs(model["weight"] - sum(1.0 / e for e in range(1, EPOCHS + 1))) < 1e-9
        print(f"OK: resumed at epoch {last_saved_epoch + 1}, right after the last "
              f"checkpointed epoch {last_saved_epoch}, and finished all {EPOCHS} epochs")


# For `graflow-dist submit examples/checkpoints/03_periodic_checkpoint.py:wf --wait`.
# Checkpoint paths are relative: a coordinator writes them under its --checkpoint-dir.
wf = build_workflow("periodic_checkpoint", crash_at_epoch=None)


if __name__ == "__main__":
    main()
