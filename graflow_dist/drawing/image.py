"""PNG drawing with matplotlib (optional): the same layered layout as the SVG."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graflow_dist.drawing.layout import LR, layout_graph
from graflow_dist.drawing.model import DrawGraph
from graflow_dist.optional import require

DPI = 100


def pyplot() -> Any:
    """matplotlib.pyplot, or a clear error when matplotlib is not installed."""
    return require("matplotlib.pyplot", "drawing graphs as images", "pip install matplotlib")


def render_figure(graph: DrawGraph, title: str | None = None,
                  node_labels: Mapping[str, str] | None = None,
                  node_colors: Mapping[str, str] | None = None) -> Any:
    """A matplotlib Figure of the graph (the caller shows or saves it)."""
    plt = pyplot()
    patches = require("matplotlib.patches", "drawing graphs as images", "pip install matplotlib")
    FancyArrowPatch, FancyBboxPatch = patches.FancyArrowPatch, patches.FancyBboxPatch  # noqa: N806

    layout = layout_graph(graph, direction=LR)
    labels, colors = dict(node_labels or {}), dict(node_colors or {})
    width, height = max(layout.width, 64), max(layout.height, 64)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    if title:
        ax.set_title(title)
    for group in layout.groups:
        b = layout.boxes[group]
        ax.add_patch(FancyBboxPatch((b.x, b.y), b.w, b.h, boxstyle="round,pad=0,rounding_size=8",
                                    facecolor="#f5f0ff", edgecolor="#8250df", linestyle="--"))
        ax.text(b.x + 10, b.y + 12, labels.get(group, group), color="#6639ba",
                fontsize=9, family="monospace", va="center")
    for route in layout.edges:
        xs = [p[0] for p in route.points]
        ys = [p[1] for p in route.points]
        ax.plot(xs[:-1], ys[:-1], color="#8c959f", linewidth=1)
        ax.add_patch(FancyArrowPatch(route.points[-2], route.points[-1], arrowstyle="-|>",
                                     mutation_scale=10, color="#8c959f"))
    for node_id, b in layout.boxes.items():
        if node_id in layout.groups:
            continue
        ax.add_patch(FancyBboxPatch((b.x, b.y), b.w, b.h, boxstyle="round,pad=0,rounding_size=5",
                                    facecolor=colors.get(node_id, "#ddf4ff"),
                                    edgecolor="#57606a"))
        ax.text(b.cx, b.cy, labels.get(node_id, node_id), ha="center", va="center",
                fontsize=9, family="monospace")
    return fig


def render_png(graph: DrawGraph, output_path: str | Path | None = None,
               title: str | None = None, node_labels: Mapping[str, str] | None = None,
               node_colors: Mapping[str, str] | None = None,
               background_color: str | None = "white") -> bytes:
    """PNG bytes of the graph; also written to ``output_path`` if given."""
    plt = pyplot()
    fig = render_figure(graph, title, node_labels, node_colors)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", facecolor=background_color or "none")
    finally:
        plt.close(fig)
    data = buffer.getvalue()
    if output_path is not None:
        Path(output_path).write_bytes(data)
    return data
