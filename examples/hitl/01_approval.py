"""Approval: a person approves a deployment; a late answer resumes the run.

The workflow is the seed document's approval pattern::

    process >> request_approval >> [checkpoint on timeout] >> deploy

``request_approval`` calls ``ctx.request_feedback("approval", ...)`` and waits for the
answer (``timeout`` seconds at most). The answer is also written to the channel key
``deploy_approved`` (``write_to_channel=True``), where ``deploy`` reads it.

1. The reviewer answers within the timeout: the run goes straight through.
2. The reviewer answers after the timeout. In process the run stops as ``waiting``
   (Graflow's behaviour: ``execute`` returns None) and writes a checkpoint with
   ``request_approval`` still pending. Once the answer is in, the example resumes the
   checkpoint: ``request_approval`` runs again, finds the stored answer under the same
   feedback id at once, and ``deploy`` runs. (On a cluster the run is parked instead
   and continues by itself when the answer arrives; the example handles both.)

The reviewer is a thread that answers like a person would (see ``reviewer.py``);
``--interactive`` asks you at the terminal instead.

Run: ``python examples/hitl/01_approval.py [--interactive] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from reviewer import Reviewer

from graflow_dist.client import run_context
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.hitl.manager import FEEDBACK_DIR_ENV
from graflow_dist.scheduler.events import RunStatus

# `graflow-dist submit examples/hitl/01_approval.py:build_workflow` waits this long for
# an answer before the run checkpoints and parks.
DEFAULT_TIMEOUT_S = 600.0


def build_workflow(timeout_s: float = DEFAULT_TIMEOUT_S) -> WorkflowContext:
    with workflow("approval") as wf:

        @task(inject_context=True)
        def process(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("executed", "process")
            print("  process: built release 2.4.1")
            return "2.4.1"

        @task(inject_context=True)
        def request_approval(ctx: TaskExecutionContext, process: str) -> bool:
            ctx.get_channel().append("executed", "request_approval")
            response = ctx.request_feedback(
                feedback_type="approval",
                prompt=f"Deploy release {process} to production?",
                timeout=timeout_s,
                channel_key="deploy_approved",
                write_to_channel=True,
                metadata={"release": process},
            )
            print(f"  request_approval: approved={response.approved} "
                  f"reason={response.reason!r}")
            return bool(response.approved)

        @task(inject_context=True)
        def deploy(ctx: TaskExecutionContext, process: str) -> str:
            ctx.get_channel().append("executed", "deploy")
            if not ctx.get_channel().get("deploy_approved"):
                print("  deploy: not approved, nothing deployed")
                return "not deployed"
            print(f"  deploy: release {process} is live")
            return f"deployed {process}"

        process >> request_approval >> deploy
    return wf


def run(ctx: ExecutionContext) -> ExecutionContext:
    """Run (or continue) ``ctx``: in process, or on the cluster named by
    ``GRAFLOW_DIST_CLUSTER``."""
    run_context(ctx)
    return ctx


def approve(reason: str):
    return lambda request: {"approved": True, "reason": reason, "responded_by": "alice"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactive", action="store_true", help="answer yourself")
    parser.add_argument("--dir", help="feedback and checkpoint directory (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graflow-hitl-") as tmp:
        directory = Path(args.dir or tmp)
        # Every run of this process keeps its feedback here; the reviewer answers here.
        os.environ[FEEDBACK_DIR_ENV] = str(directory / "feedback")
        os.chdir(directory)  # a waiting run checkpoints under ./checkpoints/

        print("== 1. answered within the timeout")
        with Reviewer(approve("tests passed"), interactive=args.interactive):
            first = run(ExecutionContext.create(build_workflow(timeout_s=60).graph))
        print(f"status: {first.status.value}, result: {first.get_result('deploy')!r}")
        assert first.get_result("deploy") == "deployed 2.4.1"

        print("== 2. answered after the timeout")
        wf = build_workflow(timeout_s=1)
        with Reviewer(approve("approved late"), delay_s=2,
                      interactive=args.interactive) as reviewer:
            second = run(ExecutionContext.create(wf.graph))
            if second.status is RunStatus.WAITING:
                print(f"status: waiting, checkpoint: {Path(second.last_checkpoint_path).name}")
                print(f"completed: {second.completed_tasks}, pending: "
                      f"{[s.task_id for s in second.pending_tasks]}")
                reviewer.wait_for_answers(1)
                print("== resume once the answer is in")
                second, meta = CheckpointManager.resume_from_checkpoint(
                    second.last_checkpoint_path)
                print(f"checkpoint reason: {meta.user_metadata['reason']}")
                run(second)
        print(f"status: {second.status.value}, result: {second.get_result('deploy')!r}")
        print(f"executed: {second.channel.get('executed')}")
        assert second.get_result("deploy") == "deployed 2.4.1"
        assert second.channel.get("deploy_approved") is True
        print("OK: the late approval was picked up under the same feedback id")


if __name__ == "__main__":
    main()
