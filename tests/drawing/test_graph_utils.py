"""graflow_dist.utils.graph: Graflow's graph utilities and drawings."""

from __future__ import annotations

import sys

import pytest

from graflow_dist.core.decorators import task
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.workflow import workflow
from graflow_dist.errors import MissingDependencyError, UnsupportedGraphError
from graflow_dist.utils import graph as gu

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_ascii_drawing_shows_every_task_and_the_group_box(diamond) -> None:
    text = gu.draw_ascii(diamond.graph)
    for node_id in diamond.graph.nodes:
        assert node_id in text
    lines = text.splitlines()
    row = {n: next(i for i, line in enumerate(lines) if f" {n} " in line)
           for n in ("fetch", "transform_a", "store")}
    assert row["fetch"] < row["transform_a"] < row["store"]  # sources on top
    assert "╔═ ParallelGroup_1 " in text and "╚" in text
    assert str(diamond.graph) == text
    assert gu.draw_ascii(TaskGraph()) == "Empty graph"


def test_show_info_prints_graflows_shape(diamond, capsys) -> None:
    diamond.show_info()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "=== Workflow 'diamond' Information ==="
    assert out[-1] == "No cycles detected"
    assert "\n".join(out[1:-1]) == gu.draw_ascii(diamond)


def test_show_info_reports_a_cycle_built_with_rshift(capsys) -> None:
    with workflow("loop") as wf:
        @task
        def a() -> None: ...

        @task
        def b() -> None: ...

        @task
        def c() -> None: ...

        a >> b >> c >> a
    wf.show_info()
    assert capsys.readouterr().out.splitlines()[-1] == "Cycles detected: [['a', 'b', 'c']]"
    assert gu.detect_cycles(wf) == [["a", "b", "c"]]


def test_dependencies_and_graph_info(diamond, capsys) -> None:
    gu.visualize_dependencies(diamond.graph)
    gu.show_graph_info(diamond.graph)
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["=== Dependencies ===", "fetch >> ParallelGroup_1 >> audit",
                       "transform_a (no dependencies)"]
    assert "Nodes: ['fetch', 'transform_a', 'transform_b', 'audit', 'store', " \
           "'ParallelGroup_1']" in out
    assert "No cycles detected" in out


def test_mermaid_has_a_subgraph_per_group_and_every_edge(diamond) -> None:
    text = gu.draw_mermaid(diamond.graph)
    assert "graph TD;" in text
    assert 'subgraph ParallelGroup_1[" ParallelGroup_1 "]' in text
    assert 'transform_a["transform_a"];' in text
    for a, b in diamond.graph.edges:
        assert f"{a} --> {b};" in text
    assert 'fetch(["fetch"]):::first;' in text and 'store(["store"]):::last;' in text
    plain = gu.draw_mermaid(diamond.graph, "My flow", with_styles=False)
    assert "classDef" not in plain and "%% My flow" in plain


def test_mermaid_ids_are_safe_and_distinct() -> None:
    with workflow("odd") as wf:
        @task(id="end")
        def finish() -> None: ...

        @task(id="load.v2")
        def load() -> None: ...

        @task(id="load_v2")
        def load_again() -> None: ...

        load >> load_again >> finish
    text = gu.draw_mermaid(wf)
    assert 'end_1(["end"])' in text and 'load_v2(["load.v2"])' in text
    assert 'load_v2_1["load_v2"]' in text


def test_dot_text_needs_no_graphviz(diamond) -> None:
    dot = gu.draw_dot(diamond, node_colors={"store": "gold"})
    assert dot.startswith('digraph "workflow" {')
    assert '"transform_a" [label="transform_a"];' in dot
    assert 'subgraph cluster_0' in dot and '"store" [label="store", fillcolor="gold"]' in dot


def test_png_through_matplotlib(diamond, tmp_path) -> None:
    data = gu.draw_png(diamond, tmp_path / "g.png")
    assert data.startswith(PNG_MAGIC) and (tmp_path / "g.png").read_bytes() == data
    assert gu.draw_mermaid_png(diamond).startswith(PNG_MAGIC)


def test_missing_optional_libraries_give_a_clear_error(diamond, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    monkeypatch.setitem(sys.modules, "networkx", None)
    monkeypatch.setitem(sys.modules, "pygraphviz", None)
    with pytest.raises(MissingDependencyError, match="needs matplotlib.*pip install"):
        gu.draw_png(diamond)
    with pytest.raises(ImportError, match="needs networkx"):  # also an ImportError
        diamond.graph.nx_graph()
    with pytest.raises(MissingDependencyError, match="pygraphviz.*draw_dot/draw_svg"):
        gu.create_agraph(diamond)


def test_networkx_graphs_are_accepted(diamond) -> None:
    nx_graph = diamond.graph.nx_graph()
    assert set(nx_graph.nodes) == set(diamond.graph.nodes)
    assert nx_graph.nodes["fetch"]["task"] is diamond.graph.get_node("fetch")
    assert gu.draw_svg(nx_graph) == gu.draw_svg(diamond)
    assert gu.draw_ascii(nx_graph) == gu.draw_ascii(diamond)
    # Graflow's build_graph adds group -> member edges: they are the box, not arrows.
    nx_graph.add_edge("ParallelGroup_1", "transform_a")
    assert gu.draw_mermaid(nx_graph) == gu.draw_mermaid(diamond)


def test_build_graph_keeps_what_is_connected(diamond) -> None:
    with diamond:
        @task
        def lonely() -> None: ...
    fetch = diamond.graph.get_node("fetch")
    built = gu.build_graph(fetch, diamond)
    assert "lonely" not in built.nodes and "lonely" in diamond.graph.nodes
    assert set(built.nodes) == set(diamond.graph.nodes) - {"lonely"}
    assert sorted(built.edges) == sorted(diamond.graph.edges)


def test_other_objects_are_refused() -> None:
    with pytest.raises(UnsupportedGraphError, match="got dict"):
        gu.draw_ascii({"a": ["b"]})
