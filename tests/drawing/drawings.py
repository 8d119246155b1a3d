"""Graphs to draw and an SVG reader, shared by the drawing tests."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.scheduler.specs import GraphShape, NodeShape

SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float

    def overlaps(self, other: Rect) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)

    def contains(self, other: Rect) -> bool:
        return (self.x <= other.x and self.y <= other.y
                and other.x + other.w <= self.x + self.w
                and other.y + other.h <= self.y + self.h)


@dataclass
class ParsedSvg:
    root: ET.Element
    nodes: dict[str, Rect]  # task boxes by data-node-id
    groups: dict[str, Rect]
    classes: dict[str, set[str]]
    texts: list[str]
    edges: list[tuple[str, str]]


def parse_svg(svg: str) -> ParsedSvg:
    root = ET.fromstring(svg)
    nodes: dict[str, Rect] = {}
    groups: dict[str, Rect] = {}
    classes: dict[str, set[str]] = {}
    for g in root.iter(f"{SVG}g"):
        node_id = g.get("data-node-id")
        if node_id is None:
            continue
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        box = Rect(*(float(rect.get(k)) for k in ("x", "y", "width", "height")))
        cls = set(g.get("class", "").split())
        classes[node_id] = cls
        (groups if "gf-group" in cls else nodes)[node_id] = box
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    edges = [(p.get("data-source"), p.get("data-target")) for p in root.iter(f"{SVG}path")
             if "gf-edge" in (p.get("class") or "")]
    return ParsedSvg(root, nodes, groups, classes, texts, edges)  # type: ignore[arg-type]


def diamond_workflow() -> WorkflowContext:
    with workflow("diamond") as wf:
        @task
        def fetch() -> int:
            return 1

        @task
        def transform_a(fetch: int) -> int:
            return fetch + 1

        @task
        def transform_b(fetch: int) -> int:
            return fetch + 2

        @task
        def audit() -> str:
            return "ok"

        @task
        def store() -> None:
            return None

        fetch >> (transform_a | transform_b) >> store
        fetch >> audit >> store
    return wf


def big_shape(n: int = 200, seed: int = 7) -> GraphShape:
    """A random DAG of ``n`` nodes: chains, fan-outs, joins, and parallel groups (group
    nodes count towards ``n``)."""
    rng = random.Random(seed)
    shape = GraphShape()
    plain: list[str] = []

    def edge(a: str, b: str) -> None:
        if b not in shape.nodes[a].successors:
            shape.nodes[a].successors.append(b)
            shape.nodes[b].predecessors.append(a)

    i = 0
    while len(shape.nodes) < n:
        if plain and rng.random() < 0.1 and len(shape.nodes) + 4 <= n:
            members = [f"member_{i}_{k}" for k in range(3)]
            for m in members:
                shape.add(NodeShape(m))
            group = f"ParallelGroup_{i}"
            shape.add(NodeShape(group, members=members))
            edge(rng.choice(plain[-12:]), group)
            plain.append(group)
        else:
            node = f"task_{i:03d}_{'x' * rng.randrange(0, 12)}"
            shape.add(NodeShape(node))
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                if plain:
                    edge(rng.choice(plain[-12:]), node)
            plain.append(node)
        i += 1
    return shape
