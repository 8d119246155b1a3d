"""SVG drawing of a laid-out graph: every node a ``<g class="gf-node">`` with its id as
``<text>``, parallel groups as boxes around their members, edges with arrows.

A node's state (``pending``, ``ready``, ``running``, ...) is a CSS class on its
``<g>`` (``gf-state-running``), so a web page recolours nodes live by swapping that
class; `DEFAULT_STYLESHEET` colours them. Nodes carry ``data-node-id`` for lookups.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape, quoteattr

from graflow_dist.drawing.layout import LR, Box, EdgeRoute, Layout, Metrics, layout_graph
from graflow_dist.drawing.model import DrawGraph
from graflow_dist.errors import GraphError

NODE_STATES = ("pending", "ready", "running", "waiting", "done", "failed", "retrying",
               "dead_lettered")
STATE_CLASS_PREFIX = "gf-state-"
SVG_NS = "http://www.w3.org/2000/svg"
FONT_SIZE_PX = 13

DEFAULT_STYLESHEET = """
.gf-graph { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.gf-node rect { fill: #f6f8fa; stroke: #57606a; stroke-width: 1.2; }
.gf-node text, .gf-group-label { font-size: 13px; fill: #1f2328; dominant-baseline: middle; }
.gf-node text { text-anchor: middle; }
.gf-group > rect { fill: #f5f0ff; fill-opacity: 0.55; stroke: #8250df; stroke-width: 1.5;
  stroke-dasharray: 5 3; }
.gf-group-label { fill: #6639ba; }
.gf-edge { fill: none; stroke: #8c959f; stroke-width: 1.3; }
.gf-edge-back { stroke-dasharray: 4 3; }
.gf-arrow { fill: #8c959f; }
.gf-state-pending rect { fill: #f6f8fa; stroke: #8c959f; }
.gf-state-ready rect { fill: #ddf4ff; stroke: #54aeff; }
.gf-state-running rect { fill: #fff8c5; stroke: #d4a72c; stroke-width: 2; }
.gf-state-waiting rect { fill: #fbefff; stroke: #c297ff; stroke-width: 2; }
.gf-state-done rect { fill: #dafbe1; stroke: #4ac26b; }
.gf-state-failed rect { fill: #ffebe9; stroke: #ff8182; stroke-width: 2; }
.gf-state-retrying rect { fill: #fff1e5; stroke: #fb8f44; stroke-width: 2; }
.gf-state-dead_lettered rect { fill: #ffcecb; stroke: #cf222e; stroke-width: 2.5; }
.gf-group.gf-state-done > rect { fill: #dafbe1; fill-opacity: 0.35; }
.gf-group.gf-state-failed > rect { fill: #ffebe9; fill-opacity: 0.5; }
.gf-group.gf-state-running > rect { fill: #fff8c5; fill-opacity: 0.35; }
""".strip()


def state_class(state: str) -> str:
    """The CSS class of a node in ``state`` (one of `NODE_STATES`)."""
    if state not in NODE_STATES:
        raise GraphError(f"unknown node state {state!r}: use one of {', '.join(NODE_STATES)}")
    return STATE_CLASS_PREFIX + state


def element_id(node_id: str) -> str:
    """A valid, unique SVG/HTML id for a node: letters, digits and ``-`` are kept,
    anything else becomes ``_`` and its UTF-8 bytes in hex."""
    out = []
    for ch in node_id:
        if ch.isascii() and (ch.isalnum() or ch == "-"):
            out.append(ch)
        else:
            out.append("".join(f"_{b:02x}" for b in ch.encode()))
    return "gf-node-" + "".join(out)


def render_svg(graph: DrawGraph, states: Mapping[str, str] | None = None, *,
               direction: str = LR, include_style: bool = True, title: str | None = None,
               metrics: Metrics | None = None) -> str:
    """The SVG document of ``graph``.

    Parameters
    ----------
    states:
        Optional node id -> state; unknown ids or states raise `GraphError`.
    direction:
        ``"LR"`` (sources left) or ``"TB"`` (sources on top).
    include_style:
        Embed `DEFAULT_STYLESHEET` (leave it out when the page styles the graph).
    """
    states = dict(states or {})
    known = set(graph.nodes)
    for node_id, state in states.items():
        if node_id not in known:
            raise GraphError(f"state given for {node_id!r}, which is not a node of the graph")
        state_class(state)
    layout = layout_graph(graph, metrics, direction)
    return _document(layout, states, include_style, title)


def _fmt(v: float) -> str:
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _classes(base: str, node_id: str, states: Mapping[str, str]) -> str:
    state = states.get(node_id)
    return f"{base} {state_class(state)}" if state else base


def _document(layout: Layout, states: Mapping[str, str], include_style: bool,
              title: str | None) -> str:
    w, h = _fmt(layout.width), _fmt(layout.height)
    parts = [f'<svg xmlns="{SVG_NS}" class="gf-graph" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}" data-direction="{layout.direction}">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    if include_style:
        parts.append(f"<style>{escape(DEFAULT_STYLESHEET)}</style>")
    parts.append('<defs><marker id="gf-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
                 'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
                 '<path class="gf-arrow" d="M0,0 L10,5 L0,10 z"/></marker></defs>')
    parts.append('<g class="gf-groups">')
    for group in _outermost_first(layout):
        parts.append(_group(group, layout.boxes[group], states))
    parts.append('</g><g class="gf-edges">')
    parts.extend(_edge(route) for route in layout.edges)
    parts.append('</g><g class="gf-nodes">')
    for node_id, box in layout.boxes.items():
        if node_id not in layout.groups:
            parts.append(_node(node_id, box, states))
    parts.append("</g></svg>")
    return "".join(parts)


def _outermost_first(layout: Layout) -> list[str]:
    inner = {m for members in layout.groups.values() for m in members}
    order: list[str] = []
    todo = [g for g in layout.groups if g not in inner]
    while todo:
        group = todo.pop(0)
        order.append(group)
        todo.extend(m for m in layout.groups[group] if m in layout.groups)
    return order


def _group(group: str, box: Box, states: Mapping[str, str]) -> str:
    return (f'<g class={quoteattr(_classes("gf-group", group, states))} '
            f'id="{element_id(group)}" data-node-id={quoteattr(group)}>'
            f"<title>{escape(group)}</title>"
            f'<rect x="{_fmt(box.x)}" y="{_fmt(box.y)}" width="{_fmt(box.w)}" '
            f'height="{_fmt(box.h)}" rx="8"/>'
            f'<text class="gf-group-label" x="{_fmt(box.x + 10)}" y="{_fmt(box.y + 12)}">'
            f"{escape(group)}</text></g>")


def _node(node_id: str, box: Box, states: Mapping[str, str]) -> str:
    return (f'<g class={quoteattr(_classes("gf-node", node_id, states))} '
            f'id="{element_id(node_id)}" data-node-id={quoteattr(node_id)}>'
            f"<title>{escape(node_id)}</title>"
            f'<rect x="{_fmt(box.x)}" y="{_fmt(box.y)}" width="{_fmt(box.w)}" '
            f'height="{_fmt(box.h)}" rx="5"/>'
            f'<text x="{_fmt(box.cx)}" y="{_fmt(box.cy)}">{escape(node_id)}</text></g>')


def _edge(route: EdgeRoute) -> str:
    pts = route.points
    d = f"M{_fmt(pts[0][0])},{_fmt(pts[0][1])}"
    if route.kind in ("back", "inner", "self") and len(pts) == 4:
        (x1, y1), (x2, y2), (x3, y3) = pts[1], pts[2], pts[3]
        d += f" C{_fmt(x1)},{_fmt(y1)} {_fmt(x2)},{_fmt(y2)} {_fmt(x3)},{_fmt(y3)}"
    else:
        d += "".join(f" L{_fmt(x)},{_fmt(y)}" for x, y in pts[1:])
    cls = "gf-edge" if route.kind == "forward" else f"gf-edge gf-edge-{route.kind}"
    return (f'<path class="{cls}" data-source={quoteattr(route.source)} '
            f'data-target={quoteattr(route.target)} d="{d}" marker-end="url(#gf-arrow)"/>')
