"""Mermaid flowchart text: parallel groups as subgraphs, edges to and from groups
attached to the subgraph."""

from __future__ import annotations

import re
from collections.abc import Mapping

from graflow_dist.drawing.model import DrawGraph

RESERVED_IDS = frozenset({
    "graph", "subgraph", "direction", "click", "class", "classDef", "style", "linkStyle",
    "fill", "stroke", "color", "end", "start", "TD", "TB", "BT", "RL", "LR", "flowchart",
})
STYLES = (
    "    classDef first fill:#e1f5fe,stroke:#01579b,stroke-width:2px;\n"
    "    classDef last fill:#fff3e0,stroke:#e65100,stroke-width:2px;\n"
    "    classDef parallelGroup fill:#f3e5f5,stroke:#4a148c,stroke-width:3px;\n"
    "    classDef default fill:#f9f9f9,stroke:#333,stroke-width:1px;\n"
)


def mermaid_ids(nodes: list[str]) -> dict[str, str]:
    """A distinct Mermaid-safe id per node (``a-b.c`` -> ``a-b_c``; clashes and
    keywords get a ``_N`` suffix)."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for node in nodes:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", node) or "_"
        candidate, n = base, 1
        while candidate in used or candidate in RESERVED_IDS:
            candidate = f"{base}_{n}"
            n += 1
        used.add(candidate)
        ids[node] = candidate
    return ids


def _label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def render_mermaid(graph: DrawGraph, title: str = "Graph", *, with_styles: bool = True,
                   node_colors: Mapping[str, str] | None = None) -> str:
    if not graph.nodes:
        return "graph TD;\n    EmptyGraph[Empty Graph];\n"
    ids = mermaid_ids(graph.nodes)
    parent = graph.parent_group()
    out = "---\nconfig:\n  flowchart:\n    curve: linear\n---\n" if with_styles else ""
    out += "graph TD;\n"
    if title != "Graph":
        out += f"    %% {title}\n"
    has_pred = {b for _, b in graph.edges}
    has_succ = {a for a, _ in graph.edges}
    plain = [n for n in graph.nodes if n not in graph.groups and n not in parent]
    first = next((n for n in plain if n not in has_pred), None)
    last = next((n for n in reversed(plain) if n not in has_succ), None)

    def node_line(node: str, indent: str) -> str:
        if node == first and with_styles:
            return f"{indent}{ids[node]}([{_label(node)}]):::first;\n"
        if node == last and with_styles:
            return f"{indent}{ids[node]}([{_label(node)}]):::last;\n"
        return f"{indent}{ids[node]}[{_label(node)}];\n"

    def subgraph(group: str, indent: str) -> str:
        text = f"{indent}subgraph {ids[group]}[{_label(' ' + group + ' ')}]\n"
        text += f"{indent}    direction TB\n"
        for member in graph.groups[group]:
            if parent.get(member) != group:
                continue
            if member in graph.groups:
                text += subgraph(member, indent + "    ")
            else:
                text += f"{indent}    {ids[member]}[{_label(member)}];\n"
        text += f"{indent}end\n"
        if with_styles:
            text += f"{indent}class {ids[group]} parallelGroup;\n"
        return text

    for group in graph.groups:
        if group not in parent:
            out += subgraph(group, "    ")
    for node in plain:
        out += node_line(node, "    ")
    for a, b in graph.edges:
        out += f"    {ids[a]} --> {ids[b]};\n"
    if with_styles:
        out += STYLES
        for node, color in (node_colors or {}).items():
            if node in ids:
                out += f"    classDef {ids[node]}_style fill:{color};\n"
                out += f"    class {ids[node]} {ids[node]}_style;\n"
    return out
