"""Typed channels and the cycle controller on a cluster: tasks on worker processes
share checked messages through Redis, and see the scheduler's cycle counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import pytest

from graflow_dist.core.context import TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import workflow
from graflow_dist.errors import WorkflowError


class Reading(TypedDict):
    sensor: str
    values: list[float]


@dataclass
class Summary:
    sensor: str
    mean: float


def sensor_workflow(bad: bool = False):
    with workflow("sensors") as wf:
        @task(inject_context=True)
        def read(ctx: TaskExecutionContext) -> None:
            values = ["oops"] if bad else [1.0, 2.0, 6.0]
            ctx.get_typed_channel(Reading).send("reading", {"sensor": "s1", "values": values})

        @task(inject_context=True)
        def summarise(ctx: TaskExecutionContext) -> None:
            reading = ctx.get_typed_channel(Reading).receive("reading")
            mean = sum(reading["values"]) / len(reading["values"])
            ctx.get_typed_channel(Summary).set("summary", Summary(reading["sensor"], mean))

        @task(inject_context=True)
        def report(ctx: TaskExecutionContext) -> str:
            summary = ctx.get_typed_channel(Summary).get("summary")
            assert isinstance(summary, Summary)
            raw = ctx.get_channel().get("summary")  # stored as plain fields
            return f"{summary.sensor}={summary.mean} raw={sorted(raw)}"

        read >> summarise >> report
    return wf


def test_typed_messages_cross_workers(client) -> None:
    run = client.submit(sensor_workflow())
    assert run.wait(30) == "s1=3.0 raw=['mean', 'sensor']"


def test_a_bad_message_fails_the_run_with_the_field_named(client) -> None:
    run = client.submit(sensor_workflow(bad=True))
    with pytest.raises(WorkflowError, match=r"typed channel key 'reading'.*field 'values': "
                                            r"\[0\]: expected float, got str"):
        run.wait(30)


def refine_workflow():
    with workflow("refine") as wf:
        @task
        def setup() -> int:
            return 0

        @task(inject_context=True, max_cycles=4)
        def refine(ctx: TaskExecutionContext) -> list:
            cc = ctx.execution_context.cycle_controller
            seen = ctx.get_channel().append(
                "seen", [cc.get_cycle_count("refine"), cc.get_max_cycles_for_node("refine"),
                         cc.accept_next_cycle("refine")])
            if cc.accept_next_cycle("refine"):
                ctx.next_iteration()
            return seen

        @task(inject_context=True)
        def done(ctx: TaskExecutionContext) -> list:
            return ctx.get_channel().get("seen")

        setup >> refine >> done
    return wf


def test_cycle_controller_on_workers_matches_in_process(client) -> None:
    expected = refine_workflow().execute()
    assert expected == [[1, 4, True], [2, 4, True], [3, 4, True], [4, 4, False]]
    run = client.submit(refine_workflow())
    assert run.wait(30) == expected
