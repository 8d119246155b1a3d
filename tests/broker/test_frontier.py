"""The Redis frontier written as deltas always loads back as the scheduler's snapshot
(what a coordinator taking over sees is exactly what the old leader had committed)."""

from __future__ import annotations

import random

import pytest
import redis

from graflow_dist.broker.commit import chunked
from graflow_dist.broker.frontier import (
    frontier_commands,
    journal_commands,
    load_run,
    shape_commands,
)
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.scripts import MAX_COMMAND_ARGS
from graflow_dist.errors import UnknownSessionError
from graflow_dist.scheduler.events import NextTask, TaskOutcome
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import GraphShape, GroupPolicySpec, NodeShape, RetrySettings
from graflow_dist.scheduler.state import Scheduler

KEYSPACE = Keyspace("gftest")


def _shape() -> GraphShape:
    nodes = {
        "a": NodeShape("a", successors=["G"]),
        "G": NodeShape("G", successors=["d"], predecessors=["a"], members=["b", "c"],
                       policy=GroupPolicySpec("best_effort")),
        "b": NodeShape("b", retry=RetrySettings(max_retries=2)),
        "c": NodeShape("c"),
        "d": NodeShape("d", successors=["loop"], predecessors=["G"]),
        "loop": NodeShape("loop", predecessors=["d"], max_cycles=4),
    }
    return GraphShape(nodes)


def _apply(client: redis.Redis, commands: list[list[object]]) -> None:
    pipe = client.pipeline(transaction=True)
    for cmd in commands:
        pipe.execute_command(*cmd)
    pipe.execute()


def _normalised(snap: FrontierSnapshot) -> dict[str, object]:
    data = snap.to_dict()
    data["pending_tasks"] = sorted(data["pending_tasks"], key=lambda s: s["token"])
    return data


@pytest.mark.parametrize("seed", range(8))
def test_deltas_reload_as_the_same_frontier(redis_client: redis.Redis, seed: int) -> None:
    rng = random.Random(seed)
    sched = Scheduler(_shape(), "s1", epoch="e")
    keys = KEYSPACE.run("s1")
    _apply(redis_client, [["HSET", keys.meta, *sum(RunRecord("s1").settings_meta().items(), ())]])
    _apply(redis_client, list(shape_commands(keys.shape, sched.shape)))
    sched.start()
    now = 100.0
    while sched.end is None:
        _apply(redis_client, journal_commands(keys, sched, sched.drain_journal()))
        _info, _shape_loaded, loaded = load_run(redis_client, KEYSPACE.run("s1"))
        assert _normalised(loaded) == _normalised(sched.snapshot())
        if not sched.inflight:
            if sched.parked and (not sched.delayed or rng.random() < 0.5):
                sched.expire_waits(now + 1)
                sched.wake(rng.choice(sorted(sched.parked)))
                continue
            now = sched.next_due() or now
            sched.release_due(now)
            continue
        spec = rng.choice(list(sched.inflight.values()))
        roll = rng.random()
        if roll < 0.1:
            sched.park(spec.token, f"fb-{spec.token}", deadline=now + 1)
        elif roll < 0.2:
            sched.fail(spec.token, "boom", now=now)
        elif roll < 0.3:
            sched.crash(spec.token, "lost", worker="w")
        elif spec.task_id == "loop" and spec.cycle < 2:
            sched.complete(spec.token, TaskOutcome(iterate=True))
        elif spec.task_id == "d" and rng.random() < 0.5:
            dyn = NodeShape("dyn")
            sched.complete(spec.token, TaskOutcome(next_tasks=[NextTask("dyn", False, dyn)]))
        else:
            sched.complete(spec.token, TaskOutcome())
    _apply(redis_client, journal_commands(keys, sched, sched.drain_journal()))
    _info, shape, loaded = load_run(redis_client, KEYSPACE.run("s1"))
    assert _normalised(loaded) == _normalised(sched.snapshot())
    assert set(shape.nodes) == set(sched.shape.nodes)


def test_a_group_that_starts_again_reloads_with_only_its_new_round(
        redis_client: redis.Redis) -> None:
    sched = Scheduler(_shape(), "s3", epoch="e")
    keys = KEYSPACE.run("s3")
    _apply(redis_client, [["HSET", keys.meta, *sum(RunRecord("s3").settings_meta().items(), ())]])
    _apply(redis_client, list(shape_commands(keys.shape, sched.shape)))

    def step(task_id: str, outcome: TaskOutcome | None = None, fail: bool = False) -> None:
        spec = next(s for s in sched.inflight.values() if s.task_id == task_id)
        if fail:
            sched.fail(spec.token, f"{task_id} broke")
        else:
            sched.complete(spec.token, outcome or TaskOutcome())
        _apply(redis_client, journal_commands(keys, sched, sched.drain_journal()))
        _info, _shape_loaded, loaded = load_run(redis_client, keys)
        assert _normalised(loaded) == _normalised(sched.snapshot())

    sched.start()
    _apply(redis_client, journal_commands(keys, sched, sched.drain_journal()))
    step("a")
    step("b")  # one member ended, in its group's first round
    step("c", fail=True)  # best effort: the group passes, d is next
    step("d", TaskOutcome(next_tasks=[NextTask("a", goto=True)]))
    step("a")  # G starts again: the ends of its first round are gone
    assert sched.groups["G"].outstanding == dict.fromkeys(["b", "c"])
    assert redis_client.hlen(keys.group_ends) == 0
    step("c")
    _info, _shape_loaded, loaded = load_run(redis_client, keys)
    assert loaded.groups["G"].succeeded == ["c"] and loaded.groups["G"].failed == {}


def test_a_replaced_frontier_loads_back(redis_client: redis.Redis) -> None:
    sched = Scheduler(_shape(), "s2", epoch="e")
    sched.start()
    snap = sched.snapshot()
    keys = KEYSPACE.run("s2")
    _apply(redis_client, [["HSET", keys.meta, *sum(RunRecord("s2").settings_meta().items(), ())]])
    _apply(redis_client, [*shape_commands(keys.shape, sched.shape), *frontier_commands(keys, snap)])
    _info, _loaded_shape, loaded = load_run(redis_client, KEYSPACE.run("s2"))
    assert _normalised(loaded) == _normalised(snap)


def test_runs_of_one_small_graph_load_equal_shapes_of_their_own(
    redis_client: redis.Redis
) -> None:
    shapes = []
    for sid in ("r1", "r2"):
        keys = KEYSPACE.run(sid)
        _apply(redis_client, [["HSET", keys.meta,
                               *sum(RunRecord(sid).settings_meta().items(), ())],
                              *shape_commands(keys.shape, _shape())])
        shapes.append(load_run(redis_client, keys)[1])
    first, second = shapes
    assert first.nodes == second.nodes == _shape().nodes
    first.nodes["loop"].max_cycles = 9  # a scheduler may change its own nodes
    assert second.nodes["loop"].max_cycles == 4


def test_loading_an_unknown_run_is_a_clear_error(redis_client: redis.Redis) -> None:
    with pytest.raises(UnknownSessionError, match="nope"):
        load_run(redis_client, KEYSPACE.run("nope"))


def test_long_commands_are_split_below_the_script_argument_limit() -> None:
    fields = [x for i in range(5000) for x in (f"f{i}", i)]
    pieces = list(chunked([["HSET", "k", *fields], ["ZADD", "z", "NX", *fields[:3000]],
                           ["DEL", *[f"k{i}" for i in range(2500)]], ["SET", "a", "b"]]))
    assert all(len(p) <= MAX_COMMAND_ARGS for p in pieces)
    hset = [p for p in pieces if p[0] == "HSET"]
    assert all(p[1] == "k" and len(p) % 2 == 0 for p in hset)
    assert [x for p in hset for x in p[2:]] == fields
    zadd = [p for p in pieces if p[0] == "ZADD"]
    assert all(p[:3] == ["ZADD", "z", "NX"] for p in zadd)
    assert [x for p in zadd for x in p[3:]] == fields[:3000]
    assert sum(len(p) - 1 for p in pieces if p[0] == "DEL") == 2500
    assert ["SET", "a", "b"] in pieces
