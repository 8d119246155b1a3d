"""Graph shapes from compact edge strings, for the pure scheduler tests (a module of
its own: test modules import it by a name no other test directory uses, where
``from conftest import`` would find whichever conftest was imported first)."""

from __future__ import annotations

from graflow_dist.scheduler import (
    Decision,
    GraphShape,
    GroupPolicySpec,
    NodeShape,
    RetrySettings,
)


def build_shape(
    edges: str = "",
    *,
    nodes: str = "",
    groups: dict[str, list[str]] | None = None,
    policies: dict[str, GroupPolicySpec] | None = None,
    retry: dict[str, RetrySettings] | None = None,
    max_cycles: dict[str, int] | None = None,
) -> GraphShape:
    """``build_shape("a>b b>c", groups={"g": ["x", "y"]})``: nodes come from the edges,
    ``nodes`` (space separated), the groups and their members."""
    shape = GraphShape()

    def ensure(node_id: str) -> NodeShape:
        if node_id not in shape.nodes:
            shape.add(NodeShape(node_id))
        return shape.node(node_id)

    for node_id in nodes.split():
        ensure(node_id)
    for group, members in (groups or {}).items():
        node = ensure(group)
        node.members = list(members)
        node.policy = (policies or {}).get(group, GroupPolicySpec())
        for member in members:
            ensure(member)
    for edge in edges.split():
        source, target = edge.split(">")
        ensure(source).successors.append(target)
        ensure(target).predecessors.append(source)
    for node_id, settings in (retry or {}).items():
        ensure(node_id).retry = settings
    for node_id, limit in (max_cycles or {}).items():
        ensure(node_id).max_cycles = limit
    return shape


def dispatched(decision: Decision) -> dict[str, str]:
    """Task id -> dispatch token of the specs a decision made ready."""
    return {spec.task_id: spec.token for spec in decision.dispatch}
