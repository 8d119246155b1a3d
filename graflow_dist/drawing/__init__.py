"""Drawing workflow graphs from their structure alone (a `GraphShape`): a deterministic
layered layout, and renderers for SVG, text, Mermaid and DOT. No user code, no external
binaries, no network: the web console draws runs with it from what Redis holds."""

from graflow_dist.drawing.layout import Layout, Metrics, layout_graph
from graflow_dist.drawing.model import DrawGraph
from graflow_dist.drawing.svg import DEFAULT_STYLESHEET, NODE_STATES, render_svg, state_class

__all__ = [
    "DEFAULT_STYLESHEET",
    "NODE_STATES",
    "DrawGraph",
    "Layout",
    "Metrics",
    "layout_graph",
    "render_svg",
    "state_class",
]
