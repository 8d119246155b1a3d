"""A worker loads the code of the tasks it runs, blob by blob, and keeps a bounded number
of them; the rest of a run's graph is read from Redis only when asked for."""

from __future__ import annotations

from typing import Any

import redis

from graflow_dist import Client, parallel, task, workflow
from graflow_dist.broker import Broker
from graflow_dist.core.dynamic import DynamicNode
from graflow_dist.core.graph import LayeredGraph
from graflow_dist.core.lazy_graph import LazyGraph
from graflow_dist.wire.messages import Batch
from graflow_dist.wire.signing import dumps_signed
from graflow_dist.worker.code_cache import CodeCache, RunGraphSource


@task
def work(x: int) -> int:
    return x


def wide(n: int) -> Any:
    with workflow(f"wide-{n}") as wf:

        @task
        def head() -> None:
            return None

        head >> parallel(*[work(task_id=f"w{i}", x=i) for i in range(n)])
    return wf


def submitted(redis_client: redis.Redis, n: int) -> tuple[Broker, str, dict[str, str]]:
    """A run of ``wide(n)`` as a client stores it (no coordinator picks it up), and the
    code blob of each of its nodes."""
    client = Client(redis_client=redis_client)
    run = client.submit(wide(n))
    broker = Broker(redis_client)
    _record, shape, _frontier = broker.runs.load(run.session_id)
    return broker, run.session_id, {n: s.code for n, s in shape.nodes.items()}


def test_a_worker_holds_the_blobs_it_used_lately_not_the_graph(
        redis_client: redis.Redis) -> None:
    broker, _session, code_of = submitted(redis_client, 600)
    # 600 tasks and the head in blobs of 256; the group in one of its own
    assert len(set(code_of.values())) == 4
    cache = CodeCache(broker, max_nodes=300)
    first = cache.executables(code_of["w0"], "graph")
    assert first["w0"].bound_kwargs == {"x": 0} and cache.nodes_held == 256
    cache.executables(code_of["w300"], "graph")
    assert cache.nodes_held == 256  # the older blob made room
    again = cache.executables(code_of["w300"], "graph")
    assert "w300" in again and cache.nodes_held == 256


def test_a_batch_s_blobs_come_in_one_round_trip_and_other_nodes_when_asked(
        redis_client: redis.Redis) -> None:
    broker, session, code_of = submitted(redis_client, 20)
    batch = Batch(session, broker.runs.record(session).graph_hash, [],
                  code={"w3": code_of["w3"]})
    cache = CodeCache(broker)
    cache.prefetch(batch.code.values())
    graph = LayeredGraph(LazyGraph(RunGraphSource(cache, batch)))
    assert graph.get_node("w3").bound_kwargs == {"x": 3}
    assert graph.get_node("head").task_id == "head"  # not in the batch: via its shape
    assert graph.successors("head") == ["ParallelGroup_1"]
    assert graph.get_node_or_none("nope") is None
    assert len(list(graph.nodes)) == 22


def test_a_group_s_blob_refers_to_its_members_without_their_code(
        redis_client: redis.Redis) -> None:
    broker, session, code_of = submitted(redis_client, 600)
    group_blob = code_of["ParallelGroup_1"]
    assert len(broker.runs.code.blobs([group_blob])[group_blob]) < 20_000
    cache = CodeCache(broker)
    graph = LazyGraph(RunGraphSource(cache, Batch(session, "g", [])))
    group = graph.get_node("ParallelGroup_1")  # its members are looked up as it loads
    assert group.member_ids[:2] == ["w0", "w1"] and len(group.tasks) == 600
    assert group.tasks[599] is graph.get_node("w599")


def test_tasks_added_while_the_run_ran_come_from_the_run(redis_client: redis.Redis) -> None:
    broker, session, _code_of = submitted(redis_client, 2)

    @task("late")
    def late() -> str:
        return "late"

    redis_client.hset(broker.keyspace.run(session).dynamic, "late",
                      dumps_signed(DynamicNode(late)))
    record = broker.runs.record(session)
    graph = LazyGraph(RunGraphSource(CodeCache(broker), Batch(session, record.graph_hash, [])))
    assert graph.has_node("late") and graph.has_node("head") and not graph.has_node("nope")
    assert graph.get_node("late").func() == "late"
    assert list(graph.nodes)[-1] == "late"
