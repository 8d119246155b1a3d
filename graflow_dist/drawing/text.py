"""Text drawing: boxes in a character grid, sources on top, parallel groups as
double-line boxes around their members, edges as ``*`` lines (loops end in ``<``)."""

from __future__ import annotations

from graflow_dist.drawing.layout import TB, Metrics, layout_graph
from graflow_dist.drawing.model import DrawGraph

TEXT_METRICS = Metrics(char_w=1, node_h=3, label_pad=2, min_node_w=5, group_pad=2,
                       group_header=2, layer_gap=3, order_gap=2, dummy_size=1, margin=0)
EMPTY_GRAPH = "Empty graph"


class AsciiCanvas:
    """A ``cols`` x ``lines`` grid of characters."""

    def __init__(self, cols: int, lines: int) -> None:
        if cols < 1 or lines < 1:
            raise ValueError(f"canvas needs at least 1x1 characters, got {cols}x{lines}")
        self.cols = cols
        self.lines = lines
        self.canvas = [[" "] * cols for _ in range(lines)]

    def point(self, x: int, y: int, char: str) -> None:
        if len(char) != 1:
            raise ValueError(f"point() draws one character, got {char!r}")
        if 0 <= x < self.cols and 0 <= y < self.lines:
            self.canvas[y][x] = char

    def line(self, x0: int, y0: int, x1: int, y1: int, char: str) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0))
        for i in range(steps + 1):
            t = i / steps if steps else 0.0
            self.point(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t), char)

    def text(self, x: int, y: int, text: str) -> None:
        for i, char in enumerate(text):
            self.point(x + i, y, char)

    def box(self, x0: int, y0: int, width: int, height: int, *, double: bool = False,
            label: str = "") -> None:
        h, v, corners = ("═", "║", "╔╗╚╝") if double else ("-", "|", "++++")
        x1, y1 = x0 + width - 1, y0 + height - 1
        for x in range(x0 + 1, x1):
            self.point(x, y0, h)
            self.point(x, y1, h)
        for y in range(y0 + 1, y1):
            self.point(x0, y, v)
            self.point(x1, y, v)
            for x in range(x0 + 1, x1):
                self.point(x, y, " ")
        for (x, y), c in zip(((x0, y0), (x1, y0), (x0, y1), (x1, y1)), corners, strict=True):
            self.point(x, y, c)
        if label:
            self.text(x0 + 2, y0, f" {label} ")

    def draw(self) -> str:
        rows = ["".join(row).rstrip() for row in self.canvas]
        while len(rows) > 1 and not rows[-1]:
            rows.pop()
        return "\n".join(rows)


def render_text(graph: DrawGraph) -> str:
    """The graph as text, top to bottom."""
    if not graph.nodes:
        return EMPTY_GRAPH
    layout = layout_graph(graph, TEXT_METRICS, TB)
    canvas = AsciiCanvas(int(layout.width) + 2, int(layout.height) + 2)
    for route in layout.edges:
        pts = [(round(x), round(y)) for x, y in route.points]
        if route.kind == "forward":
            pts[-1] = (pts[-1][0], pts[-1][1] - 1)  # stop above the target's border
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            canvas.line(x0, y0, x1, y1, "*")
        if route.kind != "forward":  # forward edges point down, as in Graflow's drawings
            canvas.point(*pts[-1], "<")
    groups = layout.groups
    depth = {g: _depth(g, groups) for g in groups}
    for group in sorted(groups, key=depth.__getitem__):  # outer boxes first
        b = layout.boxes[group]
        canvas.box(round(b.x), round(b.y), round(b.w), round(b.h), double=True, label=group)
    for node_id, b in layout.boxes.items():
        if node_id in groups:
            continue
        x, y = round(b.x), round(b.y)
        canvas.box(x, y, round(b.w), round(b.h))
        canvas.text(x + TEXT_METRICS.label_pad, y + 1, node_id)
    return canvas.draw()


def _depth(group: str, groups: dict[str, list[str]]) -> int:
    parents = {m: g for g, members in groups.items() for m in members}
    depth = 0
    while group in parents:
        group = parents[group]
        depth += 1
    return depth
