"""Typed channels and the cycle controller, in process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

import pytest

from graflow_dist.channels import MemoryChannel
from graflow_dist.channels.schemas import TaskProgressMessage
from graflow_dist.channels.typed import ChannelTypeRegistry, TypedChannel
from graflow_dist.core.context import TaskExecutionContext
from graflow_dist.core.cycle import CycleController
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import workflow
from graflow_dist.errors import ChannelTypeError, CycleLimitExceededError, WorkflowError


class Order(TypedDict):
    order_id: str
    amount: float
    items: list[str]
    status: Literal["new", "paid"]
    note: NotRequired[str]


@dataclass
class Score:
    model: str
    value: float
    tags: list[str] | None = None


def test_typed_dict_messages_are_checked_on_write_and_read() -> None:
    channel = MemoryChannel("s")
    orders = TypedChannel(channel, Order)
    good: Order = {"order_id": "o1", "amount": 3, "items": ["a"], "status": "new"}
    orders.send("order", good)
    assert orders.receive("order") == good and channel.get("order") == good
    assert orders.receive("missing") is None and orders.get("missing", "d") == "d"
    cases = {
        "missing field(s) items, status": {"order_id": "o1", "amount": 1.0},
        "unknown field(s) colour": {**good, "colour": "red"},
        "field 'amount': expected float, got str": {**good, "amount": "3"},
        "field 'items': [1]: expected str, got int": {**good, "items": ["a", 2]},
        "field 'status': expected one of ['new', 'paid'], got 'lost'": {**good,
                                                                        "status": "lost"},
        "expected Order, got list": [1, 2],
    }
    for problem, value in cases.items():
        with pytest.raises(ChannelTypeError) as info:
            orders.set("order", value)
        assert str(info.value) == (f"typed channel key 'order': value is not a valid Order "
                                   f"({problem})")
        assert isinstance(info.value, TypeError)  # catchable as Graflow's TypeError
    channel.set("raw", {"order_id": 5})  # written around the typed view
    with pytest.raises(ChannelTypeError, match="key 'raw' holds a value that is not a valid"):
        orders.get("raw")


def test_dataclass_messages_are_stored_as_plain_fields_and_read_back_as_instances() -> None:
    channel = MemoryChannel("s")
    scores = TypedChannel(channel, Score)
    scores.set("best", Score("m1", 0.9))
    assert channel.get("best") == {"model": "m1", "value": 0.9, "tags": None}
    assert scores.get("best") == Score("m1", 0.9)
    scores.set("dict", {"model": "m2", "value": 1})
    assert scores.get("dict") == Score("m2", 1)
    with pytest.raises(ChannelTypeError, match=r"field 'tags': expected list\[str\] \| None"):
        scores.set("bad", Score("m", 1.0, tags="x"))  # type: ignore[arg-type]
    with pytest.raises(ChannelTypeError, match="needs a TypedDict or dataclass.*'int'"):
        TypedChannel(channel, int)


def test_lists_counters_and_keys_pass_through() -> None:
    typed = TypedChannel(MemoryChannel("s"), Order)
    assert typed.append("log", "x") == 1 and typed.atomic_add("n", 2) == 2
    assert sorted(typed.keys()) == ["log", "n"] and typed.exists("n")
    assert typed.delete("n") and not typed.exists("n")


def test_registry_and_common_schemas() -> None:
    channel = ChannelTypeRegistry.create_channel(MemoryChannel("s"), "task_progress")
    assert channel.message_type is TaskProgressMessage
    with pytest.raises(ChannelTypeError, match="'nope' is not registered.*task_result"):
        ChannelTypeRegistry.create_channel(MemoryChannel("s"), "nope")


def test_tasks_share_typed_messages_through_the_run() -> None:
    with workflow("orders") as wf:
        @task(inject_context=True)
        def take(ctx: TaskExecutionContext) -> None:
            ctx.get_typed_channel(Order).send(
                "current", {"order_id": "o7", "amount": 9.5, "items": ["x"], "status": "paid"})

        @task(inject_context=True)
        def bill(ctx: TaskExecutionContext) -> float:
            return ctx.get_typed_channel(Order).receive("current")["amount"]

        @task(inject_context=True)
        def bad(ctx: TaskExecutionContext) -> None:
            ctx.get_typed_channel(Order).send("current", {"order_id": "o8"})

        take >> bill
    assert wf.execute("take") == 9.5
    with workflow("bad_orders") as wf2:
        wf2.graph.add_node(bad)
        with pytest.raises(WorkflowError, match="missing field"):
            wf2.execute()


def test_cycle_controller_sees_the_schedulers_counts() -> None:
    seen: list[tuple[int, int, bool, dict[str, int]]] = []
    with workflow("loops") as wf:
        @task
        def setup() -> None: ...

        @task(inject_context=True, max_cycles=4)
        def refine(ctx: TaskExecutionContext) -> int:
            cc = ctx.execution_context.cycle_controller
            seen.append((cc.get_cycle_count("refine"), cc.get_max_cycles_for_node("refine"),
                         cc.accept_next_cycle("refine"), cc.cycle_counts))
            if cc.accept_next_cycle("refine"):
                ctx.next_iteration()
            return cc.get_cycle_count("refine")

        setup >> refine
    result, ctx = wf.execute(ret_context=True)
    assert result == 4
    assert [s[:3] for s in seen] == [(1, 4, True), (2, 4, True), (3, 4, True), (4, 4, False)]
    assert seen[1][3] == {"setup": 1, "refine": 2}
    controller = ctx.cycle_controller
    assert controller.cycle_counts == {"setup": 1, "refine": 4}
    assert controller.default_max_cycles == 10 and controller.node_max_cycles == {"refine": 4}
    with pytest.raises(CycleLimitExceededError, match="'refine' exceeded max_cycles=4"):
        controller.check_cycle_limit("refine")
    controller.check_cycle_limit("setup")
    with pytest.raises(WorkflowError, match="kept by its scheduler"):
        controller.increment("refine")


def test_a_task_can_raise_its_own_limit_while_the_run_goes() -> None:
    with workflow("grow") as wf:
        @task(inject_context=True, max_cycles=2)
        def grow(ctx: TaskExecutionContext) -> int:
            cc = ctx.execution_context.cycle_controller
            if ctx.cycle_count == 1:
                cc.set_node_max_cycles("grow", 5)
            if ctx.can_iterate():
                ctx.next_iteration()
            return ctx.cycle_count

    assert wf.execute() == 5


def test_a_standalone_controller_counts_like_graflows() -> None:
    cc = CycleController(default_max_cycles=2)
    cc.set_node_max_cycles("a", 3)
    assert [cc.increment("a") for _ in range(3)] == [1, 2, 3]
    assert not cc.accept_next_cycle("a") and cc.accept_next_cycle("b")
    with pytest.raises(CycleLimitExceededError):
        cc.check_cycle_limit("a")
    assert cc.node_max_cycles == {"a": 3} and cc.get_max_cycles_for_node("b") == 2
