"""Idempotent tasks: the three patterns of the checkpoint guide.

A task that is re-run (a retry, a re-dispatch after a worker died, a resume from a
checkpoint) starts again from its beginning. Making that safe is the task author's
job; this example shows the three patterns the guide recommends, each against a
crash that happens once, at a deterministic point, after part of the work was done:

1. Processed ids in the channel. ``process_orders`` charges a list of orders and
   records each charged order id in a set in the channel. It crashes after the second
   order; the engine retries it (``max_retries=1``), the retry skips the recorded
   orders, and every order is charged exactly once. The same crash against a naive
   version of the task charges the first two orders twice.
2. State machine. ``multi_stage_task`` keeps its stage in the channel, checkpoints
   after each stage and loops with ``next_iteration``. It crashes in the PROCESSING
   stage; resuming from the checkpoint re-runs only that stage, never INIT.
3. Idempotency key. ``create_payment_intent`` stores an idempotency key in the channel
   and checkpoints; ``charge_customer`` passes the key to a payment API that
   de-duplicates requests by key. The charge goes through, then the process dies
   before the task completes (the response is lost). Resuming from the checkpoint
   re-runs ``charge_customer`` with the same key: the API answers with the first
   charge and the customer is charged once.

Why the key is created in an earlier, checkpointed task: a resume restores the
channel as it was at the checkpoint, so a key created after it (inside the task that
crashed) would be lost with a `MemoryChannel`, a new key would be made and the
customer charged twice. The same holds for pattern 1's set: it protects re-runs
within a run (retries, re-dispatch) but a resume from an earlier checkpoint starts
from the set saved in that checkpoint.

The fake payment API keeps its charges in a JSON file: the outside world, which a
resume does not roll back.

Run: ``python examples/checkpoints/05_idempotency_patterns.py [--dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from graflow_dist.client import run_context
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.errors import WorkflowError

ORDERS = [
    {"id": "A-1", "amount": 10.0},
    {"id": "A-2", "amount": 20.0},
    {"id": "A-3", "amount": 30.0},
    {"id": "A-4", "amount": 40.0},
]


class SimulatedCrash(RuntimeError):
    """Stands in for a killed process at an unlucky moment."""


class CrashOnce:
    """Raises `SimulatedCrash` the first time a point is reached (marker files);
    with no directory it never crashes."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory

    def at(self, point: str) -> None:
        if self.directory is None:
            return
        marker = Path(self.directory, f"crashed_{point}")
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise SimulatedCrash(f"crash at {point}")


class FakePaymentAPI:
    """A payment service that de-duplicates requests carrying the same idempotency
    key, like most real ones. Its state is a JSON file, outside the workflow."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(Path(self.path).read_text())
        except FileNotFoundError:
            return {"requests": 0, "charges": []}

    def charge(self, order_id: str, amount: float, idempotency_key: str | None = None) -> dict:
        state = self._load()
        state["requests"] += 1
        for previous in state["charges"]:
            if idempotency_key and previous["idempotency_key"] == idempotency_key:
                Path(self.path).write_text(json.dumps(state))
                print(f"    payment API: duplicate key, returning {previous['charge_id']}")
                return previous
        charge = {
            "charge_id": f"ch_{len(state['charges']) + 1}",
            "order_id": order_id,
            "amount": amount,
            "idempotency_key": idempotency_key,
        }
        state["charges"].append(charge)
        Path(self.path).write_text(json.dumps(state))
        print(f"    payment API: charged {order_id} {amount:.2f} ({charge['charge_id']})")
        return charge

    def charges_per_order(self) -> dict[str, int]:
        return dict(Counter(c["order_id"] for c in self._load()["charges"]))

    def requests(self) -> int:
        return self._load()["requests"]


def run(ctx: ExecutionContext) -> ExecutionContext:
    """Run (or continue) ``ctx`` to its end: in process, or on the cluster named by
    ``GRAFLOW_DIST_CLUSTER`` (a Redis URL) when it is set."""
    run_context(ctx)
    return ctx


# --- pattern 1: processed ids in the channel ------------------------------------------


def build_processed_ids_workflow(
    payments: FakePaymentAPI, crash: CrashOnce, checkpoint_base: str, idempotent: bool
) -> WorkflowContext:
    """One task charging ``ORDERS``; it crashes once after the second charge."""
    with workflow("processed_ids") as wf:

        @task(inject_context=True, max_retries=1)
        def process_orders(task_ctx: TaskExecutionContext) -> int:
            channel = task_ctx.get_channel()
            processed = set(channel.get("processed_order_ids", set()))
            seen = f", already processed {sorted(processed)}" if idempotent else ""
            print(f"  process_orders: attempt {task_ctx.retry_count + 1}{seen}")
            for number, order in enumerate(ORDERS, start=1):
                if idempotent and order["id"] in processed:
                    continue  # charged by an earlier attempt
                payments.charge(order["id"], order["amount"])
                processed.add(order["id"])
                channel.set("processed_order_ids", processed)
                if number == 2:
                    crash.at(f"processed_ids_{'safe' if idempotent else 'naive'}")
            task_ctx.checkpoint(path=checkpoint_base, metadata={"orders": len(processed)})
            return len(processed)

    return wf


def pattern_processed_ids(directory: Path) -> None:
    print("== pattern 1: processed ids in the channel (re-run by a retry)")
    crash = CrashOnce(str(directory / "crashes"))
    results = {}
    for idempotent in (False, True):
        label = "idempotent" if idempotent else "naive"
        payments = FakePaymentAPI(str(directory / f"payments_{label}.json"))
        wf = build_processed_ids_workflow(
            payments, crash, str(directory / f"orders_{label}"), idempotent
        )
        print(f"-- {label} task")
        run(ExecutionContext.create(wf.graph))
        results[label] = payments.charges_per_order()
        print(f"charges per order ({label}): {results[label]}")
    assert results["naive"] == {"A-1": 2, "A-2": 2, "A-3": 1, "A-4": 1}, results
    assert results["idempotent"] == {o["id"]: 1 for o in ORDERS}, results
    print("OK pattern 1: with the processed-ids set each order was charged once")


# --- pattern 2: state machine ---------------------------------------------------------


def build_state_machine_workflow(crash: CrashOnce, checkpoint_dir: str) -> WorkflowContext:
    """One task walking INIT -> PROCESSING -> FINALIZING, one stage per iteration."""
    with workflow("state_machine") as wf:

        @task(inject_context=True, max_cycles=3)
        def multi_stage_task(task_ctx: TaskExecutionContext) -> str:
            channel = task_ctx.get_channel()
            state = channel.get("state", "INIT")
            print(f"  multi_stage_task: stage {state}")
            channel.append("stages_run", state)
            if state == "INIT":
                channel.set("resources", "allocated")
                channel.set("state", "PROCESSING")
                task_ctx.checkpoint(path=os.path.join(checkpoint_dir, "after_init"))
                task_ctx.next_iteration()
            elif state == "PROCESSING":
                crash.at("state_machine_processing")
                channel.set("processed", sum(o["amount"] for o in ORDERS))
                channel.set("state", "FINALIZING")
                task_ctx.checkpoint(path=os.path.join(checkpoint_dir, "after_processing"))
                task_ctx.next_iteration()
            elif state == "FINALIZING":
                channel.set("state", "COMPLETE")
                return "COMPLETE"
            return state

    return wf


def pattern_state_machine(directory: Path) -> None:
    print("== pattern 2: state machine (re-run by a resume)")
    crash = CrashOnce(str(directory / "crashes"))
    wf = build_state_machine_workflow(crash, str(directory / "state_machine"))
    ctx = ExecutionContext.create(wf.graph)
    try:
        run(ctx)
    except WorkflowError as exc:
        print(f"first run failed: {exc}")
    else:
        raise AssertionError("the first run was expected to crash")
    print(f"resume from {Path(ctx.last_checkpoint_path).name}")
    restored, _ = CheckpointManager.resume_from_checkpoint(ctx.last_checkpoint_path)
    already = len(restored.channel.get("stages_run"))
    resumed = run(restored)
    stages = resumed.channel.get("stages_run")[already:]
    print(f"stages run in the resumed run: {stages}; final state: "
          f"{resumed.channel.get('state')}")
    assert stages == ["PROCESSING", "FINALIZING"], stages
    assert resumed.channel.get("state") == "COMPLETE"
    assert resumed.get_result("multi_stage_task") == "COMPLETE"
    print("OK pattern 2: the resumed run skipped INIT and finished")


# --- pattern 3: idempotency key -------------------------------------------------------


def build_idempotency_key_workflow(
    payments: FakePaymentAPI, crash: CrashOnce, checkpoint_base: str
) -> WorkflowContext:
    """``create_payment_intent`` (checkpoint) >> ``charge_customer`` >> ``send_receipt``."""
    with workflow("idempotency_key") as wf:

        @task(inject_context=True)
        def create_payment_intent(task_ctx: TaskExecutionContext) -> str:
            channel = task_ctx.get_channel()
            idempotency_key = channel.get("idempotency_key")
            if not idempotency_key:
                idempotency_key = str(uuid.uuid4())
                channel.set("idempotency_key", idempotency_key)
            print(f"  create_payment_intent: key {idempotency_key[:8]}...")
            task_ctx.checkpoint(path=checkpoint_base, metadata={"stage": "intent"})
            return idempotency_key

        @task(inject_context=True)
        def charge_customer(task_ctx: TaskExecutionContext) -> str:
            order = ORDERS[0]
            idempotency_key = task_ctx.get_channel().get("idempotency_key")
            print("  charge_customer: calling the payment API")
            charge = payments.charge(order["id"], order["amount"], idempotency_key)
            crash.at("after_payment_call")  # the charge went through, the answer is lost
            return charge["charge_id"]

        @task
        def send_receipt(charge_customer: str) -> str:
            print(f"  send_receipt: receipt for {charge_customer}")
            return f"receipt for {charge_customer}"

        create_payment_intent >> charge_customer >> send_receipt
    return wf


def pattern_idempotency_key(directory: Path) -> None:
    print("== pattern 3: idempotency key (re-run by a resume)")
    crash = CrashOnce(str(directory / "crashes"))
    payments = FakePaymentAPI(str(directory / "payments_keyed.json"))
    checkpoint_base = str(directory / "payment_intent")
    wf = build_idempotency_key_workflow(payments, crash, checkpoint_base)
    try:
        run(ExecutionContext.create(wf.graph))
    except WorkflowError as exc:
        print(f"first run failed: {exc}")
    else:
        raise AssertionError("the first run was expected to crash")
    print(f"resume from {Path(checkpoint_base).name}")
    restored, _ = CheckpointManager.resume_from_checkpoint(checkpoint_base + ".pkl")
    resumed = run(restored)
    charges = payments.charges_per_order()
    print(f"payment API requests: {payments.requests()}, charges per order: {charges}")
    assert payments.requests() == 2
    assert charges == {ORDERS[0]["id"]: 1}, charges
    assert resumed.get_result("send_receipt") == "receipt for ch_1"
    print("OK pattern 3: two requests with one key, one charge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="checkpoint directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graflow-ckpt-") as tmp:
        directory = Path(args.dir or tmp).resolve() / uuid.uuid4().hex[:8]  # fresh crash markers
        directory.mkdir(parents=True)
        pattern_processed_ids(directory)
        pattern_state_machine(directory)
        pattern_idempotency_key(directory)
        print("OK: all three idempotency patterns held")


# For `graflow-dist submit examples/checkpoints/05_idempotency_patterns.py:wf --wait`.
# Checkpoint paths are relative: a coordinator writes them under its --checkpoint-dir.
# Pattern 3 without the simulated crash; the fake payment API's file is on the worker.
wf = build_idempotency_key_workflow(
    FakePaymentAPI(os.path.join(tempfile.gettempdir(), "graflow-example-payments.json")),
    CrashOnce(None), "idempotency_key/payment_intent")


if __name__ == "__main__":
    main()
