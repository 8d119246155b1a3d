"""Graphviz DOT text (no Graphviz needed to produce it): groups as clusters."""

from __future__ import annotations

from collections.abc import Mapping

from graflow_dist.drawing.model import DrawGraph


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(graph: DrawGraph, node_labels: Mapping[str, str] | None = None,
               node_colors: Mapping[str, str] | None = None, name: str = "workflow") -> str:
    labels, colors = dict(node_labels or {}), dict(node_colors or {})
    parent = graph.parent_group()
    clusters = {g: f"cluster_{i}" for i, g in enumerate(graph.groups)}
    lines = [f"digraph {_q(name)} {{", "  rankdir=LR; compound=true; nodesep=0.5; ranksep=1.0;",
             '  node [shape=box, style="rounded,filled", fillcolor="lightblue", '
             'fontname="monospace"];']

    def node_stmt(node: str, indent: str) -> str:
        attrs = [f"label={_q(labels.get(node, node))}"]
        if node in colors:
            attrs.append(f"fillcolor={_q(colors[node])}")
        return f"{indent}{_q(node)} [{', '.join(attrs)}];"

    def anchor(node: str) -> str:
        # An edge to a group ends at its first plain member, clipped at the cluster.
        while node in graph.groups and graph.groups[node]:
            node = graph.groups[node][0]
        return node

    def cluster(group: str, indent: str) -> None:
        lines.append(f"{indent}subgraph {clusters[group]} {{")
        lines.append(f'{indent}  label={_q(group)}; style="filled,dashed"; '
                     'fillcolor="#f3e5f5"; color="#4a148c";')
        for member in graph.groups[group]:
            if parent.get(member) != group:
                continue
            if member in graph.groups:
                cluster(member, indent + "  ")
            else:
                lines.append(node_stmt(member, indent + "  "))
        lines.append(f"{indent}}}")

    for group in graph.groups:
        if group not in parent:
            cluster(group, "  ")
    for node in graph.nodes:
        if node not in graph.groups and node not in parent:
            lines.append(node_stmt(node, "  "))
    for a, b in graph.edges:
        attrs = []
        if a in graph.groups:
            attrs.append(f"ltail={clusters[a]}")
        if b in graph.groups:
            attrs.append(f"lhead={clusters[b]}")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_q(anchor(a))} -> {_q(anchor(b))}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
