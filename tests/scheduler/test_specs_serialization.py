"""Scheduler data survives JSON and msgpack unchanged."""

from __future__ import annotations

import json
from dataclasses import asdict

import msgpack

from graflow_dist.scheduler.specs import GroupPolicySpec, NodeShape, RetrySettings, TaskSpec


def test_node_shape_round_trips_and_matches_its_fields() -> None:
    shape = NodeShape("g", successors=["d"], predecessors=["a"], members=["b", "c"],
                      policy=GroupPolicySpec("critical", critical_tasks=("b",)), max_cycles=3,
                      retry=RetrySettings(2, 0.5, 3.0, 9.0, True))
    data = shape.to_dict()
    expected = asdict(shape)
    expected["policy"]["critical_tasks"] = ["b"]
    assert data == expected
    assert NodeShape.from_dict(json.loads(json.dumps(data))) == shape
    assert NodeShape.from_dict(msgpack.unpackb(msgpack.packb(data))) == shape
    plain = NodeShape("t")
    assert NodeShape.from_dict(plain.to_dict()) == plain


def test_task_spec_round_trips_and_ignores_unknown_fields() -> None:
    spec = TaskSpec("t", "e.1", cycle=2, attempt=3, crashes=1, group="G", not_before=1.5)
    assert TaskSpec.from_dict({**spec.to_dict(), "future_field": 1}) == spec
