"""A graph split into code blobs and a manifest comes back whole; a client recognises a
graph it already split; a worker's lazy graph answers like the whole graph."""

from __future__ import annotations

from typing import Any

import pytest

from graflow_dist import TaskExecutionContext, parallel, task, workflow
from graflow_dist.core.dynamic import collect_new_nodes, dynamic_shapes
from graflow_dist.core.graph import LayeredGraph, TaskGraph
from graflow_dist.core.graph_code import GraphCodeCache, graph_from_code, split_graph
from graflow_dist.core.lazy_graph import LazyGraph
from graflow_dist.errors import SignatureError, WireError


@task
def work(x: int) -> int:
    return x * 10


def diamond() -> Any:
    with workflow("diamond") as wf:

        @task
        def head() -> int:
            return 1

        @task
        def left(head: int) -> int:
            return head + 1

        @task
        def right(head: int) -> int:
            return head + 2

        @task
        def tail(left: int, right: int) -> int:
            return left + right

        head >> left >> tail
        head >> right >> tail
        tail >> parallel(*[work(task_id=f"w{i}", x=i) for i in range(5)])
    return wf


def test_split_and_rebuilt_graph_is_the_same_graph() -> None:
    graph = diamond().graph
    code = split_graph(graph)
    assert code.blobs is not None and set(code.blobs) == set(code.manifest.blobs)
    again = graph_from_code(code.manifest_bytes, code.blobs, "test")
    assert list(again.nodes) == list(graph.nodes)
    for node in graph.nodes:  # edges in the same order, both ways
        assert again.successors(node) == graph.successors(node)
        assert again.predecessors(node) == graph.predecessors(node)
    assert again.shape().to_dict() == graph.shape().to_dict()
    assert again.get_node("w3").func(**again.get_node("w3").bound_kwargs) == 30


def test_a_graph_spread_over_many_blobs_names_each_node_s_blob() -> None:
    graph = diamond().graph
    stored: dict[str, bytes] = {}
    code = split_graph(graph, store=lambda b: stored.setdefault(b.hash, b.blob), keep=False,
                       max_nodes=3)
    assert code.blobs is None and len(stored) == len(code.manifest.blobs) == 4
    assert len(set(code.code_of.values())) == 4 and set(code.code_of) == set(graph.nodes)
    rebuilt = graph_from_code(code.manifest_bytes, stored, "test")
    assert list(rebuilt.nodes) == list(graph.nodes)
    missing = dict(stored)
    missing.pop(code.code_of["w4"])
    with pytest.raises(WireError, match="test: code blob .* is missing"):
        graph_from_code(code.manifest_bytes, missing, "test")
    forged = {h: b[:-1] + bytes([b[-1] ^ 1]) for h, b in stored.items()}
    with pytest.raises(SignatureError, match="signature does not verify"):
        graph_from_code(code.manifest_bytes, forged, "test")


def test_groups_refer_to_their_members_and_nested_groups_come_back_whole() -> None:
    with workflow("nested") as wf:

        @task
        def after() -> None:
            return None

        inner = parallel(work(task_id="a", x=1), work(task_id="b", x=2))
        inner >> after  # a group with edges stays a node of its own inside another
        outer = parallel(inner, work(task_id="c", x=3))
    graph = wf.graph
    code = split_graph(graph, max_nodes=2)
    assert code.blobs is not None
    rebuilt = graph_from_code(code.manifest_bytes, code.blobs, "test")
    outer_again = rebuilt.get_node(outer.task_id)
    assert outer_again.member_ids == outer.member_ids == [inner.task_id, "c"]
    inner_again = rebuilt.get_node(inner.task_id)
    assert outer_again.tasks[0] is inner_again  # one object, as in the graph
    assert inner_again.tasks[1] is rebuilt.get_node("b")
    assert rebuilt.shape().to_dict() == graph.shape().to_dict()


def test_the_cache_recognises_an_unchanged_graph_only() -> None:
    wf = diamond()
    graph = wf.graph
    cache = GraphCodeCache()
    key = cache.key(graph, graph.shape())
    code = split_graph(graph)
    cache.put(graph, key, code)
    assert cache.get(graph, cache.key(graph, graph.shape())) is code
    # A changed setting changes the structure the scheduler sees.
    graph.get_node("left").max_retries = 2
    assert cache.get(graph, cache.key(graph, graph.shape())) is None
    graph.get_node("left").max_retries = 0
    assert cache.get(graph, cache.key(graph, graph.shape())) is code
    # A replaced attribute that the structure does not show: another object, a miss.
    node = graph.get_node("w1")
    node._bound_kwargs = {"x": 100}
    assert cache.get(graph, cache.key(graph, graph.shape())) is None
    # Another graph object with the same structure is not this graph.
    assert cache.get(diamond().graph, key) is None


def test_large_graphs_keep_only_hashes_and_very_large_ones_are_not_cached() -> None:
    graph = diamond().graph
    cache = GraphCodeCache(kept_nodes=3, cached_nodes=100)
    key = cache.key(graph, graph.shape())
    cache.put(graph, key, split_graph(graph))
    cached = cache.get(graph, key)
    assert cached is not None and cached.blobs is None
    tiny = GraphCodeCache(kept_nodes=1, cached_nodes=2)
    assert tiny.key(graph, graph.shape()) is None


class DictSource:
    """A graph source over a whole graph, counting what it is asked."""

    def __init__(self, graph: TaskGraph) -> None:
        self.graph = graph
        self.asked: list[str] = []

    def executable(self, node_id: str) -> Any | None:
        self.asked.append(node_id)
        return self.graph.get_node_or_none(node_id)

    def contains(self, node_id: str) -> bool:
        return self.graph.has_node(node_id)

    def edges(self, node_id: str) -> tuple[list[str], list[str]] | None:
        if not self.graph.has_node(node_id):
            return None
        return self.graph.successors(node_id), self.graph.predecessors(node_id)

    def node_ids(self) -> list[str]:
        return list(self.graph.nodes)


def test_a_lazy_graph_fetches_only_what_is_asked_and_answers_like_the_graph() -> None:
    graph = diamond().graph
    source = DictSource(graph)
    lazy = LazyGraph(source)
    assert lazy.get_node("left") is graph.get_node("left")
    assert lazy.get_node("left") is graph.get_node("left")
    assert source.asked == ["left"]  # fetched once, nothing else
    assert lazy.has_node("tail") and not lazy.has_node("nope")
    assert source.asked == ["left"]  # knowing a node exists does not load its code
    assert lazy.get_node_or_none("nope") is None
    assert lazy.successors("head") == ["left", "right"]
    assert lazy.predecessors("tail") == ["left", "right"]
    assert list(lazy.nodes) == list(graph.nodes)
    assert lazy.shape().to_dict() == graph.shape().to_dict()


def test_tasks_built_in_a_task_join_a_layer_over_a_lazy_graph() -> None:
    graph = diamond().graph
    view = LayeredGraph(LazyGraph(DictSource(graph)))

    @task
    def extra() -> None:
        return None

    scratch = TaskGraph()
    scratch.add_node(extra)
    scratch.add_node(graph.get_node("tail"))
    scratch.add_edge("extra", "tail")
    nodes = collect_new_nodes(extra, scratch, view, {})
    assert list(nodes) == ["extra"]  # tail exists: it is not new
    shapes = dynamic_shapes(nodes, view, 10)
    assert shapes["extra"].successors == ["tail"]
    assert graph.predecessors("tail") == ["left", "right"]  # the graph itself unchanged


def test_next_task_on_a_lazy_graph_jumps_to_an_existing_node() -> None:
    from graflow_dist.core.context import ExecutionContext

    graph = diamond().graph
    ctx = ExecutionContext(LayeredGraph(LazyGraph(DictSource(graph))))
    task_ctx = TaskExecutionContext("head", ctx)
    task_ctx.next_task(graph.get_node("tail"))
    (jump,) = task_ctx.outcome.next_tasks
    assert jump.task_id == "tail" and jump.shape is None  # a jump, no new node
