"""The SVG drawing: every task visible, nothing overlapping, groups around their
members, states as CSS classes, the same picture from a workflow or its GraphShape."""

from __future__ import annotations

import itertools

import pytest
from drawings import big_shape, parse_svg

from graflow_dist.drawing import NODE_STATES, DrawGraph, render_svg, state_class
from graflow_dist.drawing.svg import element_id
from graflow_dist.errors import GraphError
from graflow_dist.scheduler.specs import GraphShape
from graflow_dist.utils.graph import draw_svg


def assert_readable(svg: str, shape: GraphShape) -> None:
    parsed = parse_svg(svg)
    groups = {n: s.members for n, s in shape.nodes.items() if s.members is not None}
    tasks = [n for n in shape.nodes if n not in groups]
    assert sorted(parsed.nodes) == sorted(tasks)
    assert sorted(parsed.groups) == sorted(groups)
    for node_id in shape.nodes:  # every id is readable text
        assert node_id in parsed.texts
    for a, b in itertools.combinations(parsed.nodes, 2):
        assert not parsed.nodes[a].overlaps(parsed.nodes[b]), (a, b)

    def inside(group: str) -> set[str]:
        found = set(groups[group])
        for member in groups[group]:
            if member in groups:
                found |= inside(member)
        return found

    for group, members in groups.items():
        box = parsed.groups[group]
        for member in members:
            inner = parsed.nodes.get(member) or parsed.groups[member]
            assert box.contains(inner), (group, member)
        for other, rect in parsed.nodes.items():
            if other not in inside(group):
                assert not box.overlaps(rect), (group, other)
    for a, b in itertools.combinations(parsed.groups, 2):
        ga, gb = parsed.groups[a], parsed.groups[b]
        assert not ga.overlaps(gb) or ga.contains(gb) or gb.contains(ga), (a, b)
    expected = {(a, b) for a, s in shape.nodes.items() for b in s.successors}
    assert set(parsed.edges) == expected
    width, height = float(parsed.root.get("width")), float(parsed.root.get("height"))
    for rect in [*parsed.nodes.values(), *parsed.groups.values()]:
        assert 0 <= rect.x and rect.x + rect.w <= width
        assert 0 <= rect.y and rect.y + rect.h <= height


@pytest.mark.parametrize("direction", ["LR", "TB"])
def test_small_workflow_is_readable(diamond, direction) -> None:
    svg = draw_svg(diamond, direction=direction)
    assert_readable(svg, diamond.graph.shape())


def test_sources_come_first_and_sinks_last(diamond) -> None:
    parsed = parse_svg(draw_svg(diamond))
    fetch, store = parsed.nodes["fetch"], parsed.nodes["store"]
    group = parsed.groups["ParallelGroup_1"]
    assert fetch.x + fetch.w < group.x and group.x + group.w < store.x
    assert fetch.x + fetch.w < parsed.nodes["audit"].x < store.x
    top = parse_svg(draw_svg(diamond, direction="TB"))
    assert top.nodes["fetch"].y + top.nodes["fetch"].h < top.groups["ParallelGroup_1"].y


@pytest.mark.parametrize("direction", ["LR", "TB"])
def test_two_hundred_nodes_are_readable(direction) -> None:
    shape = big_shape(200)
    assert len(shape.nodes) == 200
    assert any(s.members for s in shape.nodes.values())
    svg = render_svg(DrawGraph.from_shape(shape), direction=direction)
    assert_readable(svg, shape)


def test_a_workflow_and_its_shape_draw_the_same_picture(diamond) -> None:
    from_workflow = draw_svg(diamond)
    assert draw_svg(diamond.graph) == from_workflow
    assert draw_svg(diamond.graph.shape()) == from_workflow
    round_tripped = GraphShape.from_dict(diamond.graph.shape().to_dict())  # as Redis holds it
    assert draw_svg(round_tripped) == from_workflow


def test_drawing_is_deterministic() -> None:
    shape = big_shape(120, seed=3)
    assert render_svg(DrawGraph.from_shape(shape)) == render_svg(
        DrawGraph.from_shape(big_shape(120, seed=3)))


def test_states_become_css_classes_a_page_can_swap(diamond) -> None:
    states = {"fetch": "done", "transform_a": "running", "transform_b": "retrying",
              "audit": "dead_lettered", "store": "pending", "ParallelGroup_1": "running"}
    parsed = parse_svg(draw_svg(diamond, states))
    for node_id, state in states.items():
        assert state_class(state) in parsed.classes[node_id]
    style = parsed.root.find("{http://www.w3.org/2000/svg}style")
    assert style is not None
    for state in NODE_STATES:  # the default stylesheet colours every state
        assert f".{state_class(state)}" in style.text
    bare = parse_svg(draw_svg(diamond, include_style=False))
    assert bare.root.find("{http://www.w3.org/2000/svg}style") is None
    assert all(not any(c.startswith("gf-state-") for c in cls) for cls in bare.classes.values())


def test_bad_states_are_refused_with_the_node_and_the_choices(diamond) -> None:
    with pytest.raises(GraphError, match="unknown node state 'busy'.*pending, ready"):
        draw_svg(diamond, {"fetch": "busy"})
    with pytest.raises(GraphError, match="'nope', which is not a node"):
        draw_svg(diamond, {"nope": "done"})


def test_odd_task_ids_are_escaped_and_element_ids_stay_unique() -> None:
    from graflow_dist.scheduler.specs import NodeShape

    ids = ['a<b>&"c"', "a_b", "a b", "a-b", "ünï"]
    shape = GraphShape({n: NodeShape(n) for n in ids})
    for a, b in zip(ids, ids[1:], strict=False):
        shape.nodes[a].successors.append(b)
        shape.nodes[b].predecessors.append(a)
    svg = render_svg(DrawGraph.from_shape(shape))
    assert_readable(svg, shape)
    element_ids = [element_id(n) for n in ids]
    assert len(set(element_ids)) == len(ids)
    assert all(e.replace("-", "").replace("_", "").isalnum() and e.isascii()
               for e in element_ids)


def test_loops_and_nested_groups_are_drawn() -> None:
    from graflow_dist.scheduler.specs import NodeShape

    shape = GraphShape()
    for n in ["a", "b", "c", "x", "y", "z"]:
        shape.add(NodeShape(n))
    shape.add(NodeShape("inner", members=["x", "y"]))
    shape.add(NodeShape("outer", members=["inner", "z"]))
    for a, b in [("a", "outer"), ("outer", "b"), ("b", "c"), ("c", "a")]:  # c -> a loops
        shape.nodes[a].successors.append(b)
        shape.nodes[b].predecessors.append(a)
    svg = render_svg(DrawGraph.from_shape(shape))
    assert_readable(svg, shape)
    assert "gf-edge-back" in svg
