"""A state machine that checkpoints at every transition.

Order processing NEW -> VALIDATED -> PAID -> SHIPPED, written as the seed's state
machine pattern: one task, ``process_order``, reads the order's state from the
channel, performs exactly one transition, stores the new state, asks for a
checkpoint and loops with ``task_ctx.next_iteration()`` until the order is SHIPPED.
Its successor ``send_confirmation`` waits for the last iteration.

Each checkpoint is written after the iteration that requested it completed, so it
holds the new state in the channel and the next iteration as pending. The example
then resumes from every checkpoint taken (one per transition) and shows that each
resumed run performs only the transitions that were still missing and ends with the
order SHIPPED: the state in the channel tells the re-run task where to continue,
which is what makes the task safe to run again.

Run: ``python examples/checkpoints/02_state_machine_checkpoint.py [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from itertools import pairwise
from pathlib import Path

from graflow_dist.client import run_context
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow

STATES = ["NEW", "VALIDATED", "PAID", "SHIPPED"]
TRANSITIONS = dict(pairwise(STATES))  # NEW -> VALIDATED, VALIDATED -> PAID, ...
SAMPLE_ORDER = {"id": "A-1001", "amount": 42.0}  # when the channel brings none


def build_workflow(checkpoint_dir: str) -> WorkflowContext:
    """``process_order`` (looping state machine) >> ``send_confirmation``."""
    with workflow("order_state_machine") as wf:

        @task(inject_context=True, max_cycles=len(STATES))
        def process_order(task_ctx: TaskExecutionContext) -> str:
            channel = task_ctx.get_channel()
            order = channel.get("order", SAMPLE_ORDER)
            state = channel.get("state", "NEW")
            if state == "SHIPPED":  # nothing left to do (e.g. re-run after the end)
                return state
            if state == "NEW":
                assert order["amount"] > 0, "invalid order"
            elif state == "VALIDATED":
                channel.set("payment_id", f"pay-{order['id']}")
            elif state == "PAID":
                channel.set("tracking_no", f"track-{order['id']}")
            new_state = TRANSITIONS[state]
            channel.set("state", new_state)
            channel.append("transitions", f"{state}->{new_state}")
            print(f"  process_order (cycle {task_ctx.cycle_count}): {state} -> {new_state}")
            # A unique name per checkpoint: a resumed run must not overwrite the
            # checkpoints the other resumes start from.
            name = f"{STATES.index(new_state):02d}_{new_state}_{uuid.uuid4().hex[:6]}"
            task_ctx.checkpoint(
                path=os.path.join(checkpoint_dir, name),
                metadata={"order_id": order["id"], "state": new_state},
            )
            if new_state != "SHIPPED":
                task_ctx.next_iteration()
            return new_state

        @task(inject_context=True)
        def send_confirmation(task_ctx: TaskExecutionContext) -> str:
            channel = task_ctx.get_channel()
            message = f"order {channel.get('order', SAMPLE_ORDER)['id']} is {channel.get('state')}"
            channel.append("confirmations", message)
            print(f"  send_confirmation: {message}")
            return message

        process_order >> send_confirmation
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
        wf = build_workflow(str(directory))

        print("== first run")
        ctx = ExecutionContext.create(wf.graph)
        ctx.channel.set("order", SAMPLE_ORDER)
        first = run(ctx)
        assert first.channel.get("state") == "SHIPPED"
        assert first.channel.get("transitions") == [
            "NEW->VALIDATED", "VALIDATED->PAID", "PAID->SHIPPED"
        ]

        checkpoints = CheckpointManager.list_checkpoints(directory)
        print(f"checkpoints taken: {[Path(m.path).name for m in checkpoints]}")
        assert [m.user_metadata["state"] for m in checkpoints] == STATES[1:]

        for meta in checkpoints:
            saved_state = meta.user_metadata["state"]
            print(f"== resume from the {saved_state} checkpoint ({Path(meta.path).name})")
            restored, loaded = CheckpointManager.resume_from_checkpoint(meta.path)
            assert loaded.checkpoint_id == meta.checkpoint_id
            assert restored.channel.get("state") == saved_state
            print(f"restored state: {saved_state}, pending: "
                  f"{[s.task_id for s in restored.pending_tasks]}")
            done = len(restored.channel.get("transitions"))
            resumed = run(restored)
            ran = resumed.channel.get("transitions")[done:]
            final = resumed.channel.get("state")
            print(f"transitions in the resumed run: {ran}; final state: {final}")
            expected = [f"{a}->{b}" for a, b in TRANSITIONS.items()][STATES.index(saved_state):]
            assert ran == expected, (ran, expected)
            assert final == "SHIPPED", final
            assert resumed.channel.get("confirmations") == ["order A-1001 is SHIPPED"]
        total = len(CheckpointManager.list_checkpoints(directory))
        print(f"checkpoints on disk now: {total} (resumed runs checkpoint too)")
        print(f"OK: all {len(checkpoints)} resumed runs reached SHIPPED")


# For `graflow-dist submit examples/checkpoints/02_state_machine_checkpoint.py:wf --wait`.
# Checkpoint paths are relative: a coordinator writes them under its --checkpoint-dir.
wf = build_workflow("order_state_machine")


if __name__ == "__main__":
    main()
