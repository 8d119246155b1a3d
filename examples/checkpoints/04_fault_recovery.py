"""Fault recovery: checkpoint before an expensive, unreliable step and resume until
it succeeds.

The pipeline ``fetch_data >> clean_data >> build_features >> train_model >> publish``
has cheap preparation steps and one expensive step, ``train_model``, that fails at
random (think: spot instances, a flaky GPU node). ``build_features`` asks for a
checkpoint, so once it has completed the preparation never has to be repeated.

The driver runs the workflow; while it fails, it resumes from the checkpoint taken
before the expensive step (``CheckpointManager.resume_from_checkpoint``) and runs
again. The failures are random but reproducible: the decision for attempt ``n``
comes from ``random.Random(f"{seed}:{n}")`` with the seed from ``--seed`` or the
``GRAFLOW_EXAMPLE_SEED`` environment variable (the default seed fails the first two
attempts and succeeds on the third).

A run ledger (a small JSON file next to the checkpoints, i.e. state outside the
workflow that a resume does not roll back) counts how often each task really ran:
the cheap steps run exactly once, ``train_model`` once per attempt.

Run: ``python examples/checkpoints/04_fault_recovery.py [--dir DIR] [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

from graflow_dist.client import run_context
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.errors import WorkflowError

SEED_ENV = "GRAFLOW_EXAMPLE_SEED"
DEFAULT_SEED = 24
DEFAULT_FAILURE_RATE = 0.5
MAX_ATTEMPTS = 10


class RunLedger:
    """Counts task executions in a JSON file: the outside world's memory."""

    def __init__(self, path: str) -> None:
        self.path = path

    def counts(self) -> dict[str, int]:
        try:
            return json.loads(Path(self.path).read_text())
        except FileNotFoundError:
            return {}

    def record(self, task_id: str) -> int:
        counts = self.counts()
        counts[task_id] = counts.get(task_id, 0) + 1
        Path(self.path).write_text(json.dumps(counts))
        return counts[task_id]


class NodeLost(RuntimeError):
    """The simulated infrastructure failure of the expensive step."""


def fails(seed: int, attempt: int, failure_rate: float) -> bool:
    """Whether attempt ``attempt`` fails: random, but the same for the same seed."""
    return random.Random(f"{seed}:{attempt}").random() < failure_rate


def build_workflow(
    checkpoint_base: str, ledger: RunLedger, seed: int, failure_rate: float
) -> WorkflowContext:
    """Cheap steps, a checkpoint, then the expensive step that may fail."""
    with workflow("fault_recovery") as wf:

        @task(inject_context=True)
        def fetch_data(task_ctx: TaskExecutionContext) -> int:
            ledger.record(task_ctx.task_id)
            task_ctx.get_channel().set("rows", list(range(1, 101)))
            print("  fetch_data: 100 rows")
            return 100

        @task(inject_context=True)
        def clean_data(task_ctx: TaskExecutionContext) -> int:
            ledger.record(task_ctx.task_id)
            channel = task_ctx.get_channel()
            rows = [r for r in channel.get("rows") if r % 10 != 0]
            channel.set("rows", rows)
            print(f"  clean_data: {len(rows)} rows kept")
            return len(rows)

        @task(inject_context=True)
        def build_features(task_ctx: TaskExecutionContext) -> int:
            ledger.record(task_ctx.task_id)
            channel = task_ctx.get_channel()
            features = [r * r for r in channel.get("rows")]
            channel.set("features", features)
            # Everything up to here is saved once this task completes.
            task_ctx.checkpoint(path=checkpoint_base, metadata={"stage": "features_ready"})
            print(f"  build_features: {len(features)} features, checkpoint requested")
            return len(features)

        @task(inject_context=True)
        def train_model(task_ctx: TaskExecutionContext) -> float:
            attempt = ledger.record(task_ctx.task_id)
            features = task_ctx.get_channel().get("features")
            if fails(seed, attempt, failure_rate):
                print(f"  train_model: attempt {attempt} lost its node")
                raise NodeLost(f"worker node lost during attempt {attempt}")
            score = sum(features) / len(features)
            print(f"  train_model: attempt {attempt} succeeded, score={score:.1f}")
            return score

        @task(inject_context=True)
        def publish(task_ctx: TaskExecutionContext, train_model: float) -> str:
            ledger.record(task_ctx.task_id)
            print(f"  publish: model with score {train_model:.1f}")
            return f"published score {train_model:.1f}"

        fetch_data >> clean_data >> build_features >> train_model >> publish
    return wf


def run(ctx: ExecutionContext) -> ExecutionContext:
    """Run (or continue) ``ctx`` to its end: in process, or on the cluster named by
    ``GRAFLOW_DIST_CLUSTER`` (a Redis URL) when it is set."""
    run_context(ctx)
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="checkpoint directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get(SEED_ENV, DEFAULT_SEED)))
    parser.add_argument("--failure-rate", type=float, default=DEFAULT_FAILURE_RATE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graflow-ckpt-") as tmp:
        directory = Path(args.dir or tmp).resolve()  # a cluster re-roots relative paths
        directory.mkdir(parents=True, exist_ok=True)
        checkpoint_base = str(directory / "before_train_model")
        ledger = RunLedger(str(directory / "run_ledger.json"))
        Path(ledger.path).unlink(missing_ok=True)
        wf = build_workflow(checkpoint_base, ledger, args.seed, args.failure_rate)
        print(f"seed={args.seed}, failure rate={args.failure_rate}")

        ctx = ExecutionContext.create(wf.graph)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if attempt == 1:
                print("== attempt 1: full run")
            else:
                print(f"== attempt {attempt}: resume from {Path(checkpoint_base).name}")
                ctx, _ = CheckpointManager.resume_from_checkpoint(checkpoint_base + ".pkl")
            try:
                run(ctx)
            except WorkflowError as exc:
                print(f"attempt {attempt} failed: {exc}")
                continue
            break
        else:
            raise SystemExit(f"train_model still failing after {MAX_ATTEMPTS} attempts")

        counts = ledger.counts()
        print(f"succeeded after {attempt} attempt(s): {ctx.get_result('publish')!r}")
        print(f"task executions over all attempts: {counts}")
        for cheap in ("fetch_data", "clean_data", "build_features"):
            assert counts[cheap] == 1, (cheap, counts)
        assert counts["train_model"] == attempt
        assert counts["publish"] == 1
        assert ctx.completed_tasks == [
            "fetch_data", "clean_data", "build_features", "train_model", "publish"
        ]
        print("OK: the cheap steps ran once; only the expensive step was retried")


# For `graflow-dist submit examples/checkpoints/04_fault_recovery.py:wf --wait`.
# Checkpoint paths are relative: a coordinator writes them under its --checkpoint-dir.
# The ledger is a file on the worker; no simulated failures.
wf = build_workflow("fault_recovery/features_ready",
                    RunLedger(os.path.join(tempfile.gettempdir(), "graflow-example-ledger.json")),
                    DEFAULT_SEED, failure_rate=0.0)


if __name__ == "__main__":
    main()
