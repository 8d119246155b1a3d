"""A deterministic layered layout (sources first, sinks last) with parallel groups as
boxes around their members.

Top-level units ("blocks") are tasks outside any group and outermost groups. Blocks
are layered by longest path over the ``>>`` edges (back edges of loops ignored), edges
spanning several layers get dummy points so they pass between boxes, the order inside
each layer is improved by barycenter sweeps, and positions along a layer come from an
exact least-squares fit under the no-overlap constraints. Same input, same picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from graflow_dist.drawing.model import DrawGraph

LR, TB = "LR", "TB"
DIRECTIONS = (LR, TB)
_SWEEPS = 4


@dataclass(frozen=True)
class Metrics:
    """Sizes in output units (pixels for SVG, characters for text)."""

    char_w: float = 7.8
    node_h: float = 32.0
    label_pad: float = 14.0
    min_node_w: float = 48.0
    group_pad: float = 12.0
    group_header: float = 22.0
    layer_gap: float = 56.0
    order_gap: float = 16.0
    dummy_size: float = 8.0
    margin: float = 16.0

    def label_w(self, label: str) -> float:
        return len(label) * self.char_w + 2 * self.label_pad


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def overlaps(self, other: Box) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)

    def contains(self, other: Box) -> bool:
        return (self.x <= other.x and self.y <= other.y and other.x + other.w <= self.x + self.w
                and other.y + other.h <= self.y + self.h)


@dataclass
class EdgeRoute:
    source: str
    target: str
    points: list[tuple[float, float]]
    kind: str = "forward"  # forward, back (closes a loop), inner (within one block), self


@dataclass
class Layout:
    """Where everything goes: node boxes (tasks and groups), edge routes, total size."""

    direction: str
    boxes: dict[str, Box] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    edges: list[EdgeRoute] = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    layer_of: dict[str, int] = field(default_factory=dict)


@dataclass
class _Block:
    """A top-level unit: its size and, for groups, where its insides go (relative)."""

    node: str
    w: float
    h: float
    inner: dict[str, Box] = field(default_factory=dict)


def layout_graph(graph: DrawGraph, metrics: Metrics | None = None,
                 direction: str = LR) -> Layout:
    """Lay out ``graph``; ``direction`` is ``"LR"`` (left to right) or ``"TB"``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    m = metrics or Metrics()
    parent = graph.parent_group()
    children: dict[str, list[str]] = {g: [] for g in graph.groups}
    for member, group in parent.items():
        children[group].append(member)
    for group in children:  # members in the group's own order
        order = {n: i for i, n in enumerate(graph.groups[group])}
        children[group].sort(key=order.__getitem__)
    blocks = {n: _block(n, children, m, direction) for n in graph.nodes if n not in parent}

    def top(node: str) -> str:
        while node in parent:
            node = parent[node]
        return node

    block_ids = list(blocks)
    block_edges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for a, b in graph.edges:
        ta, tb = top(a), top(b)
        if ta != tb and (ta, tb) not in seen:
            seen.add((ta, tb))
            block_edges.append((ta, tb))
    back = _back_edges(block_ids, block_edges)
    forward = [e for e in block_edges if e not in back]
    layer = _layers(block_ids, forward)
    layers, chains = _with_dummies(block_ids, forward, dict(layer))
    _order(layers, forward, chains)

    def length(n: str) -> float:  # size along the flow
        if n in blocks:
            return blocks[n].w if direction == LR else blocks[n].h
        return 0.0

    def breadth(n: str) -> float:  # size across the flow
        if n in blocks:
            return blocks[n].h if direction == LR else blocks[n].w
        return m.dummy_size

    across = _positions(layers, forward, chains, breadth, m.order_gap, m.margin)
    layer_start: list[float] = []
    offset = m.margin
    for nodes in layers:
        layer_start.append(offset)
        offset += max((length(n) for n in nodes), default=0.0) + m.layer_gap
    layer_len = [max((length(n) for n in nodes), default=0.0) for nodes in layers]

    out = Layout(direction, groups={g: list(c) for g, c in children.items()},
                 layer_of=dict(layer))
    points: dict[str, tuple[float, float]] = {}
    for i, nodes in enumerate(layers):
        for n in nodes:
            along = layer_start[i] + (layer_len[i] - length(n)) / 2
            pos = across[n]
            if n not in blocks:  # a dummy point, centred in its layer
                mid = layer_start[i] + layer_len[i] / 2
                points[n] = (mid, pos + m.dummy_size / 2) if direction == LR else \
                    (pos + m.dummy_size / 2, mid)
                continue
            block = blocks[n]
            x, y = (along, pos) if direction == LR else (pos, along)
            out.boxes[n] = Box(x, y, block.w, block.h)
            for inner_id, rel in block.inner.items():
                out.boxes[inner_id] = Box(x + rel.x, y + rel.y, rel.w, rel.h)
    right = max((b.x + b.w for b in out.boxes.values()), default=0.0)
    bottom = max((b.y + b.h for b in out.boxes.values()), default=0.0)
    out.width, out.height = right + m.margin, bottom + m.margin
    _route_edges(out, graph, top, back, chains, points, m)
    return out


def _block(node: str, children: dict[str, list[str]], m: Metrics, direction: str) -> _Block:
    label_w = max(m.label_w(node), m.min_node_w)
    if node not in children:
        return _Block(node, label_w, m.node_h)
    inner_blocks = [_block(c, children, m, direction) for c in children[node]]
    inner: dict[str, Box] = {}
    if direction == LR:  # members stacked across the flow (vertically)
        content_w = max((b.w for b in inner_blocks), default=0.0)
        w = max(content_w, label_w) + 2 * m.group_pad
        y = m.group_header
        for b in inner_blocks:
            bx = (w - b.w) / 2
            _place(inner, b, bx, y)
            y += b.h + m.order_gap
        h = max(y - m.order_gap, m.group_header) + m.group_pad
    else:  # members side by side
        content_w = sum(b.w for b in inner_blocks) + m.order_gap * max(len(inner_blocks) - 1, 0)
        w = max(content_w, label_w) + 2 * m.group_pad
        content_h = max((b.h for b in inner_blocks), default=0.0)
        x = (w - content_w) / 2
        for b in inner_blocks:
            _place(inner, b, x, m.group_header + (content_h - b.h) / 2)
            x += b.w + m.order_gap
        h = m.group_header + content_h + m.group_pad
    return _Block(node, w, h, inner)


def _place(inner: dict[str, Box], block: _Block, x: float, y: float) -> None:
    inner[block.node] = Box(x, y, block.w, block.h)
    for inner_id, rel in block.inner.items():
        inner[inner_id] = Box(x + rel.x, y + rel.y, rel.w, rel.h)


def _back_edges(nodes: list[str], edges: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Edges that close a cycle, found by a depth-first search in node order."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    has_pred = {b for _, b in edges}
    roots = [n for n in nodes if n not in has_pred] + nodes
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str]] = set()
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def _layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest path from the sources (Kahn's order, ties by node order)."""
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    indegree = dict.fromkeys(nodes, 0)
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
        succ[a].append(b)
        indegree[b] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    layer: dict[str, int] = {}
    while ready:
        node = ready.pop(0)
        layer[node] = max((layer[p] + 1 for p in preds[node]), default=0)
        for nxt in succ[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return layer


def _with_dummies(nodes: list[str], edges: list[tuple[str, str]], layer: dict[str, int]
                  ) -> tuple[list[list[str]], dict[tuple[str, str], list[str]]]:
    """Layers as lists, with a dummy per layer an edge passes through."""
    depth = max(layer.values(), default=-1) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for n in nodes:
        layers[layer[n]].append(n)
    chains: dict[tuple[str, str], list[str]] = {}
    for a, b in edges:
        chain = []
        for k in range(layer[a] + 1, layer[b]):
            dummy = f"\0{a}\0{b}\0{k}"
            layers[k].append(dummy)
            layer[dummy] = k
            chain.append(dummy)
        chains[(a, b)] = chain
    return layers, chains


def _segments(edges: list[tuple[str, str]], chains: dict[tuple[str, str], list[str]]
              ) -> list[tuple[str, str]]:
    """Each edge as links between consecutive layers (through its dummies)."""
    links = []
    for a, b in edges:
        path = [a, *chains[(a, b)], b]
        links.extend(zip(path, path[1:], strict=False))
    return links


def _order(layers: list[list[str]], edges: list[tuple[str, str]],
           chains: dict[tuple[str, str], list[str]]) -> None:
    links = _segments(edges, chains)
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in links:
        succs.setdefault(a, []).append(b)
        preds.setdefault(b, []).append(a)
    for sweep in range(_SWEEPS):
        down = sweep % 2 == 0
        indices = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for i in indices:
            ref = layers[i - 1] if down else layers[i + 1]
            pos = {n: k for k, n in enumerate(ref)}
            neighbours = preds if down else succs
            current = layers[i]

            def key(item: tuple[int, str], pos: dict[str, int] = pos,
                    neighbours: dict[str, list[str]] = neighbours) -> tuple[float, int]:
                k, n = item
                ns = [pos[x] for x in neighbours.get(n, []) if x in pos]
                return (sum(ns) / len(ns) if ns else float(k), k)

            layers[i] = [n for _, n in sorted(enumerate(current), key=key)]


def _positions(layers: list[list[str]], edges: list[tuple[str, str]],
               chains: dict[tuple[str, str], list[str]], breadth: Callable[[str], float],
               gap: float, margin: float) -> dict[str, float]:
    """Start coordinate of every node across the flow: each layer in its order, no
    overlaps, as close as possible to its neighbours in the adjacent layer."""
    links = _segments(edges, chains)
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for a, b in links:
        succs.setdefault(a, []).append(b)
        preds.setdefault(b, []).append(a)
    pos: dict[str, float] = {}
    for nodes in layers:
        offset = 0.0
        for n in nodes:
            pos[n] = offset
            offset += breadth(n) + gap
    tallest = max((sum(breadth(n) + gap for n in nodes) for nodes in layers),
                  default=0.0)
    for nodes in layers:  # centre each layer in the tallest one to start with
        total = sum(breadth(n) + gap for n in nodes) - gap
        shift = (tallest - gap - total) / 2
        for n in nodes:
            pos[n] += shift
    for sweep in range(_SWEEPS):
        down = sweep % 2 == 0
        indices = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
        for i in indices:
            neighbours = preds if down else succs
            nodes = layers[i]
            wanted = []
            for n in nodes:
                ns = neighbours.get(n, [])
                centre = (sum(pos[x] + breadth(x) / 2 for x in ns) / len(ns)
                          if ns else pos[n] + breadth(n) / 2)
                wanted.append(centre - breadth(n) / 2)
            sizes = [breadth(n) for n in nodes]
            for n, p in zip(nodes, _fit_in_order(wanted, sizes, gap), strict=True):
                pos[n] = p
    low = min(pos.values(), default=0.0)
    return {n: p - low + margin for n, p in pos.items()}


def _fit_in_order(wanted: list[float], sizes: list[float], gap: float) -> list[float]:
    """Positions p_i minimising sum (p_i - wanted_i)^2 with p_{i+1} >= p_i + size_i + gap
    (pool-adjacent-violators on p_i minus the minimal offset)."""
    offsets = []
    total = 0.0
    for s in sizes:
        offsets.append(total)
        total += s + gap
    targets = [w - o for w, o in zip(wanted, offsets, strict=True)]
    pools: list[list[float]] = []  # [sum, count]
    for t in targets:
        pools.append([t, 1])
        while len(pools) > 1 and pools[-2][0] / pools[-2][1] > pools[-1][0] / pools[-1][1]:
            s, c = pools.pop()
            pools[-1][0] += s
            pools[-1][1] += c
    fitted: list[float] = []
    for s, c in pools:
        fitted.extend([s / c] * int(c))
    return [f + o for f, o in zip(fitted, offsets, strict=True)]


def _route_edges(out: Layout, graph: DrawGraph, top: Callable[[str], str],
                 back: set[tuple[str, str]], chains: dict[tuple[str, str], list[str]],
                 points: dict[str, tuple[float, float]], m: Metrics) -> None:
    lr = out.direction == LR
    for a, b in graph.edges:
        sa, sb = out.boxes[a], out.boxes[b]
        ta, tb = top(a), top(b)
        if a == b:
            kind = "self"
        elif ta == tb:
            kind = "inner"
        elif (ta, tb) in back or out.layer_of[ta] >= out.layer_of[tb]:
            kind = "back"
        else:
            kind = "forward"
        if kind == "forward":
            start = (sa.x + sa.w, sa.cy) if lr else (sa.cx, sa.y + sa.h)
            end = (sb.x, sb.cy) if lr else (sb.cx, sb.y)
            middle = [points[d] for d in chains.get((ta, tb), [])]
            out.edges.append(EdgeRoute(a, b, [start, *middle, end], kind))
        elif kind == "self":
            r = m.node_h / 2
            if lr:
                pts = [(sa.x + sa.w * 0.7, sa.y), (sa.x + sa.w * 0.7, sa.y - r),
                       (sa.x + sa.w * 0.3, sa.y - r), (sa.x + sa.w * 0.3, sa.y)]
            else:
                pts = [(sa.x + sa.w, sa.y + sa.h * 0.3), (sa.x + sa.w + r, sa.y + sa.h * 0.3),
                       (sa.x + sa.w + r, sa.y + sa.h * 0.7), (sa.x + sa.w, sa.y + sa.h * 0.7)]
            out.edges.append(EdgeRoute(a, b, pts, kind))
        else:  # back or inner: around the outside of the drawing's flow
            if lr:
                lane = max(sa.y + sa.h, sb.y + sb.h) + m.order_gap
                pts = [(sa.cx, sa.y + sa.h), (sa.cx, lane), (sb.cx, lane), (sb.cx, sb.y + sb.h)]
            else:
                lane = max(sa.x + sa.w, sb.x + sb.w) + m.order_gap
                pts = [(sa.x + sa.w, sa.cy), (lane, sa.cy), (lane, sb.cy), (sb.x + sb.w, sb.cy)]
            out.edges.append(EdgeRoute(a, b, pts, kind))
            if lr:
                out.height = max(out.height, lane + m.margin)
            else:
                out.width = max(out.width, lane + m.margin)
