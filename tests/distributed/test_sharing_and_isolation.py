"""State is shared across workers within a run, and never across runs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
from graflow_dist.embedded.cluster import LocalCluster

RUN_TIMEOUT_S = 60
PEER_WAIT_S = 20.0


def test_tasks_read_channel_values_written_on_other_workers(
    client: Client, shared_cluster: LocalCluster
) -> None:
    """Each writer publishes its pid, then waits (bounded) until it reads a pid written
    by a task on another worker: the group can only succeed if values written on one
    worker are visible on the other. A reader after the group sees every write."""
    n = 8

    def writer(i: int) -> Any:
        @task(f"writer_{i}", inject_context=True)
        def run(ctx: TaskExecutionContext) -> dict[str, Any]:
            channel = ctx.get_channel()
            me = os.getppid()  # the worker service whose executor runs this task
            channel.set(f"written_by_{i}", {"pid": me, "value": i * i})
            channel.append("writer_pids", me)
            deadline = time.monotonic() + PEER_WAIT_S
            while time.monotonic() < deadline:
                peers = sorted({p for p in channel.get("writer_pids") if p != me})
                if peers:
                    return {"pid": me, "peers": peers}
                time.sleep(0.01)
            return {"pid": me, "peers": []}

        return run

    with workflow("cross-worker-channel") as wf:

        @task(inject_context=True)
        def reader(ctx: TaskExecutionContext) -> dict[str, Any]:
            channel = ctx.get_channel()
            return {"pid": os.getppid(),
                    "values": [channel.get(f"written_by_{i}") for i in range(n)]}

        parallel(*[writer(i) for i in range(n)]) >> reader

    run = client.submit(wf)
    result = run.wait(timeout=RUN_TIMEOUT_S)

    worker_pids = {w.pid for w in shared_cluster.workers}
    writers = [run.get_result(f"writer_{i}") for i in range(n)]
    assert {w["pid"] for w in writers} == worker_pids, "both workers must take part"
    for i, seen in enumerate(writers):
        assert seen["peers"], f"writer_{i} never saw a value written on the other worker"
        assert set(seen["peers"]) <= worker_pids - {seen["pid"]}
    assert [v["value"] for v in result["values"]] == [i * i for i in range(n)]
    assert [v["pid"] for v in result["values"]] == [w["pid"] for w in writers]
    # The reader ran on one worker, so it read the writes of the other one too.
    assert {v["pid"] for v in result["values"]} - {result["pid"]}


def test_two_concurrent_runs_of_one_workflow_are_isolated(client: Client) -> None:
    width = 10
    with workflow("twins") as wf:

        @task(inject_context=True)
        def seed(ctx: TaskExecutionContext) -> int:
            base = ctx.get_channel().get("base")
            ctx.get_channel().append("log", f"seed:{base}")
            return base

        def scale(i: int) -> Any:
            @task(f"scale_{i}", inject_context=True)
            def run(ctx: TaskExecutionContext, seed: int) -> int:
                channel = ctx.get_channel()
                channel.append("log", f"scale_{i}:{seed}")
                channel.atomic_add("total", seed * i)
                return seed * i

            return run

        @task(inject_context=True)
        def total(ctx: TaskExecutionContext) -> dict[str, Any]:
            channel = ctx.get_channel()
            return {"total": channel.get("total"),
                    "sum": sum(ctx.get_result(f"scale_{i}") for i in range(width))}

        seed >> parallel(*[scale(i) for i in range(width)]) >> total

    run_a = client.submit(wf, initial_channel={"base": 1})
    run_b = client.submit(wf, initial_channel={"base": 1000})
    assert run_a.session_id != run_b.session_id
    result_b = run_b.wait(timeout=RUN_TIMEOUT_S)
    result_a = run_a.wait(timeout=RUN_TIMEOUT_S)

    expected = sum(range(width))
    assert result_a == {"total": expected, "sum": expected}
    assert result_b == {"total": 1000 * expected, "sum": 1000 * expected}
    for run, base in ((run_a, 1), (run_b, 1000)):
        log = run.channel().get("log")
        assert sorted(log) == sorted([f"seed:{base}"] + [f"scale_{i}:{base}" for i in range(width)])
        assert [run.get_result(f"scale_{i}") for i in range(width)] == \
            [base * i for i in range(width)]
        ctx = run.context()
        assert len(ctx.completed_tasks) == width + 3  # seed, members, group, total
        assert ctx.steps == width + 2


@dataclass(frozen=True)
class Point:
    x: int
    y: int


EXACT_VALUES: dict[str, Any] = {
    "tuple": (1, "two", 3.0),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "bytes": b"\x00\xff\x10",
    "big_int": 2**80,
    "negative_big_int": -(2**70),
    "float": 0.1,
    "bool": True,
    "unicode": "ünïcødé ✓",
    "int_keys": {1: "one", 2: "two"},
    "nested": {"k": [1, (2, 3), {"x": None}], "empty": []},
    "decimal": Decimal("1.10"),
    "dataclass": Point(1, 2),
}


def test_channel_values_round_trip_exactly_between_client_and_workers(client: Client) -> None:
    """Values set by the client are read unchanged on a worker (compared there with the
    originals shipped inside the graph), and values set on a worker read back unchanged
    in the client: same type, same value."""
    expected = dict(EXACT_VALUES)

    with workflow("exact-values") as wf:

        @task(inject_context=True)
        def compare_and_copy(ctx: TaskExecutionContext) -> list[str]:
            channel = ctx.get_channel()
            wrong = []
            for key, value in expected.items():
                got = channel.get(key)
                if type(got) is not type(value) or got != value:
                    wrong.append(f"{key}: {got!r}")
                channel.set(f"copy_{key}", got)
            return wrong

    run = client.submit(wf, initial_channel=expected)
    assert run.wait(timeout=RUN_TIMEOUT_S) == []
    channel = run.channel()
    for key, value in expected.items():
        got = channel.get(f"copy_{key}")
        assert type(got) is type(value) and got == value, key
