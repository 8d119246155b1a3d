"""Graph utilities and drawing, with Graflow's names (``graflow.utils.graph``).

Every function takes a workflow's graph in any of its forms: a `TaskGraph`
(``wf.graph``), a workflow, an `ExecutionContext`, a `GraphShape` (structure only, as
the cluster stores it) or a networkx ``DiGraph`` (``wf.graph.nx_graph()``). Text,
Mermaid, DOT and SVG need nothing else; images need matplotlib, `create_agraph`
needs pygraphviz, `draw_task_graph` matplotlib. Nothing contacts a network service.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.task import ParallelGroup
from graflow_dist.core.workflow import WorkflowContext, current_workflow_context
from graflow_dist.drawing import image
from graflow_dist.drawing.dot import render_dot
from graflow_dist.drawing.layout import LR
from graflow_dist.drawing.mermaid import render_mermaid
from graflow_dist.drawing.model import DrawGraph
from graflow_dist.drawing.svg import render_svg
from graflow_dist.drawing.text import AsciiCanvas, render_text
from graflow_dist.errors import UnknownTaskError, UnsupportedGraphError
from graflow_dist.optional import require
from graflow_dist.scheduler.specs import GraphShape, NodeShape

GraphLike = TaskGraph | WorkflowContext | ExecutionContext | GraphShape | Any


def graph_shape(graph: GraphLike) -> GraphShape:
    """The structure of ``graph`` (any of the forms this module accepts)."""
    if isinstance(graph, GraphShape):
        return graph
    if isinstance(graph, WorkflowContext | ExecutionContext):
        return graph.graph.shape()
    if isinstance(graph, TaskGraph):
        return graph.shape()
    if type(graph).__module__.startswith("networkx"):
        return _shape_from_networkx(graph)
    raise UnsupportedGraphError(
        f"expected a TaskGraph, workflow, ExecutionContext, GraphShape or networkx "
        f"DiGraph, got {type(graph).__name__}")


def _shape_from_networkx(graph: Any) -> GraphShape:
    shape = GraphShape()
    for node, data in graph.nodes(data=True):
        task = data.get("task")
        members = task.member_ids if isinstance(task, ParallelGroup) else None
        shape.add(NodeShape(node_id=str(node),
                            successors=[str(s) for s in graph.successors(node)],
                            predecessors=[str(p) for p in graph.predecessors(node)],
                            members=members))
    return shape


def _draw_graph(graph: GraphLike) -> DrawGraph:
    return DrawGraph.from_shape(graph_shape(graph))


# --- building and inspecting -------------------------------------------------------------


def build_graph(start_node: Any, context: WorkflowContext | None = None) -> TaskGraph:
    """A new `TaskGraph` with ``start_node`` and everything connected to it in the
    workflow (``context``, default: the current one): predecessors, successors and
    group members. The workflow's own graph is left as it is."""
    source = (context or current_workflow_context()).graph
    if not source.has_node(start_node.task_id):
        raise UnknownTaskError(start_node.task_id, "the workflow graph (build_graph)")
    built = TaskGraph()
    seen: set[str] = set()
    todo = [start_node.task_id]
    while todo:
        node_id = todo.pop()
        if node_id in seen or not source.has_node(node_id):
            continue
        seen.add(node_id)
        node = source.get_node(node_id)
        built.add_node(node)
        todo.extend(source.successors(node_id))
        todo.extend(source.predecessors(node_id))
        if isinstance(node, ParallelGroup):
            todo.extend(node.member_ids)
    for a, b in source.edges:
        if a in seen and b in seen:
            built.add_edge(a, b)
    return built


def detect_cycles(graph: GraphLike) -> list[list[str]]:
    """One cycle of ``>>`` edges per loop in the graph (empty if there is none)."""
    return _draw_graph(graph).find_cycles()


def visualize_dependencies(graph: GraphLike) -> None:
    """Print each node with its successors."""
    print("=== Dependencies ===")
    shape = graph_shape(graph)
    for node_id, node in shape.nodes.items():
        if node.successors:
            print(f"{node_id} >> {' >> '.join(node.successors)}")
        else:
            print(f"{node_id} (no dependencies)")


def show_graph_info(graph: GraphLike) -> None:
    """Print the nodes, the edges and whether the graph has cycles."""
    drawn = _draw_graph(graph)
    print("=== Graph Information ===")
    print(f"Nodes: {drawn.nodes}")
    print(f"Edges: {drawn.edges}")
    cycles = drawn.find_cycles()
    print(f"Cycles detected: {cycles}" if cycles else "No cycles detected")


# --- drawing -----------------------------------------------------------------------------


class VertexViewer:
    """The size of a node's box in a text drawing (3 lines, the id plus padding)."""

    HEIGHT = 3

    def __init__(self, name: str) -> None:
        self._h = self.HEIGHT
        self._w = len(name) + 2

    @property
    def h(self) -> int:
        return self._h

    @property
    def w(self) -> int:
        return self._w


def draw_ascii(graph: GraphLike) -> str:
    """The graph as text, sources on top; parallel groups as double-line boxes."""
    return render_text(_draw_graph(graph))


def draw_mermaid(graph: GraphLike, title: str = "Graph", *, with_styles: bool = True,
                 node_colors: Mapping[str, str] | None = None,
                 wrap_label_n_words: int = 9) -> str:
    """Mermaid flowchart text; parallel groups are subgraphs. ``wrap_label_n_words`` is
    accepted for compatibility (our edges carry no labels)."""
    return render_mermaid(_draw_graph(graph), title, with_styles=with_styles,
                          node_colors=node_colors)


def draw_svg(graph: GraphLike, states: Mapping[str, str] | None = None, *,
             direction: str = LR, include_style: bool = True, title: str | None = None) -> str:
    """An SVG document: every task id as ``<text>``, groups as boxes, and ``states``
    (node id -> ``pending``/``ready``/``running``/``waiting``/``done``/``failed``/
    ``retrying``/``dead_lettered``) as CSS classes a page can swap live."""
    return render_svg(_draw_graph(graph), states, direction=direction,
                      include_style=include_style, title=title)


def draw_dot(graph: GraphLike, node_labels: Mapping[str, str] | None = None,
             node_colors: Mapping[str, str] | None = None) -> str:
    """Graphviz DOT text (produced without Graphviz)."""
    return render_dot(_draw_graph(graph), node_labels, node_colors)


def create_agraph(graph: GraphLike, node_labels: Mapping[str, str] | None = None,
                  node_colors: Mapping[str, str] | None = None) -> Any:
    """A pygraphviz ``AGraph`` of the graph (needs pygraphviz)."""
    pygraphviz = require("pygraphviz", "create_agraph()",
                         "pip install pygraphviz (or use draw_dot/draw_svg)")
    return pygraphviz.AGraph(string=draw_dot(graph, node_labels, node_colors))


def draw_png(graph: GraphLike, output_path: str | Path | None = None,
             node_labels: Mapping[str, str] | None = None,
             node_colors: Mapping[str, str] | None = None) -> bytes:
    """A PNG image of the graph drawn with matplotlib; written to ``output_path`` if
    given. Returns the PNG bytes."""
    return image.render_png(_draw_graph(graph), output_path, None, node_labels, node_colors)


def draw_mermaid_png(graph: GraphLike, output_path: str | Path | None = None, *,
                     title: str = "Graph", with_styles: bool = True,
                     node_colors: Mapping[str, str] | None = None, wrap_label_n_words: int = 9,
                     background_color: str | None = "white", max_retries: int = 1,
                     retry_delay: float = 1.0) -> bytes:
    """A PNG of the graph, drawn locally with matplotlib: unlike Graflow, the graph is
    never sent to an online Mermaid renderer (the retry options are accepted and unused)."""
    return image.render_png(_draw_graph(graph), output_path,
                            None if title == "Graph" else title, None, node_colors,
                            background_color)


def draw_task_graph(graph: GraphLike, title: str = "Task Graph") -> None:
    """Show the graph in a matplotlib window."""
    plt = image.pyplot()
    image.render_figure(_draw_graph(graph), title)
    plt.show()


__all__ = [
    "AsciiCanvas",
    "VertexViewer",
    "build_graph",
    "create_agraph",
    "detect_cycles",
    "draw_ascii",
    "draw_dot",
    "draw_mermaid",
    "draw_mermaid_png",
    "draw_png",
    "draw_svg",
    "draw_task_graph",
    "graph_shape",
    "show_graph_info",
    "visualize_dependencies",
]
