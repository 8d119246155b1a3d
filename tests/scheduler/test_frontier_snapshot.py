"""FrontierSnapshot: the scheduler's state as plain data, and restoring from it."""

from __future__ import annotations

import json

import pytest

from graflow_dist.errors import CycleLimitExceededError, UnknownTaskError
from graflow_dist.scheduler import (
    CheckpointRequest,
    FrontierSnapshot,
    GraphShape,
    GroupPolicySpec,
    NextTask,
    NodeShape,
    RetrySettings,
    RunStatus,
    Scheduler,
    TaskOutcome,
    TaskSpec,
)
from graflow_dist.wire.specs import frontier_from_dict

OK = TaskOutcome()


def through_json(snapshot: FrontierSnapshot) -> FrontierSnapshot:
    return frontier_from_dict(json.loads(json.dumps(snapshot.to_dict())), "snapshot")


def copy_shape(shape: GraphShape) -> GraphShape:
    return GraphShape.from_dict(json.loads(json.dumps(shape.to_dict())))


def test_snapshot_lists_pending_specs_in_dispatch_order(shape_of) -> None:
    sched = Scheduler(shape_of("a>c b>c", nodes="z"), "s", epoch="e")
    started = [s.task_id for s in sched.start().dispatch]
    snap = sched.snapshot()
    assert sorted(started) == ["a", "b", "z"]
    assert [s.task_id for s in snap.pending_tasks] == started
    assert all(isinstance(s, TaskSpec) for s in snap.pending_tasks)
    assert snap.session_id == "s" and snap.steps == 0 and snap.completed_tasks == []


def test_restored_scheduler_continues_identically(shape_of) -> None:
    shape = shape_of("a>b a>c b>d c>d d>e")
    original = Scheduler(shape, "s", epoch="e")
    tokens = {s.task_id: s.token for s in original.start().dispatch}
    tokens.update({s.task_id: s.token for s in original.complete(tokens["a"], OK).dispatch})
    original.complete(tokens["b"], OK)

    snap = through_json(original.snapshot())
    restored = Scheduler.restore(copy_shape(shape), snap, epoch="e")
    assert [s.task_id for s in restored.resume().dispatch] == ["c"]
    assert restored.snapshot().to_dict() == original.snapshot().to_dict()

    for sched in (original, restored):
        d = sched.complete(tokens["c"], OK)  # the token survived the round trip
        d = sched.complete(d.dispatch[0].token, OK)
        end = sched.complete(d.dispatch[0].token, OK)
        assert end.end.status is RunStatus.COMPLETED
    assert restored.snapshot().to_dict() == original.snapshot().to_dict()
    assert list(restored.completed) == ["a", "b", "c", "d", "e"]
    assert restored.steps == 5


def test_new_epoch_tokens_do_not_collide_with_restored_ones(shape_of) -> None:
    sched = Scheduler(shape_of("a>b"), "s", epoch="old")
    sched.start()
    restored = Scheduler.restore(sched.shape, sched.snapshot(), epoch="new")
    (a,) = restored.resume().dispatch
    assert a.token.startswith("old.")
    (b,) = restored.complete(a.token, OK).dispatch
    assert b.token.startswith("new.")


def test_restore_keeps_future_retries_delayed(shape_of) -> None:
    shape = shape_of(nodes="a", retry={"a": RetrySettings(1, initial_interval=10.0)})
    sched = Scheduler(shape, "s", epoch="e")
    sched.fail(sched.start().dispatch[0].token, "flaky", now=100.0)
    snap = through_json(sched.snapshot())
    assert snap.pending_tasks[0].not_before == pytest.approx(110.0)

    early = Scheduler.restore(shape, snap)
    assert early.resume().dispatch == [] and early.end is None
    assert [s.attempt for s in early.release_due(110.0)] == [2]

    # A retry that never got dispatched stays delayed until the driver releases it, even
    # when it is already due (a coordinator taking over must enqueue it, not assume it).
    late = Scheduler.restore(shape, snap)
    assert late.resume().dispatch == [] and late.next_due() == pytest.approx(110.0)
    assert [s.task_id for s in late.release_due(111.0)] == ["a"]


def test_restore_of_a_finished_frontier_completes_at_once(shape_of) -> None:
    sched = Scheduler(shape_of(nodes="a"), "s")
    sched.complete(sched.start().dispatch[0].token, OK)
    restored = Scheduler.restore(sched.shape, sched.snapshot())
    decision = restored.resume()
    assert decision.dispatch == []
    assert decision.end.status is RunStatus.COMPLETED


def test_restore_refuses_pending_task_unknown_to_the_graph(shape_of) -> None:
    snap = FrontierSnapshot("s", pending_tasks=[TaskSpec("ghost", "e.1")])
    with pytest.raises(UnknownTaskError, match="'ghost'"):
        Scheduler.restore(shape_of(nodes="a"), snap)


def test_group_progress_survives_restore(shape_of) -> None:
    shape = shape_of("g>d", groups={"g": ["x", "y"]}, policies={"g": GroupPolicySpec()})
    sched = Scheduler(shape, "s", epoch="e")
    specs = {s.task_id: s for s in sched.start().dispatch}
    sched.complete(specs["x"].token, OK)
    restored = Scheduler.restore(copy_shape(shape), through_json(sched.snapshot()))
    assert [s.task_id for s in restored.resume().dispatch] == ["y"]
    decision = restored.complete(specs["y"].token, OK)
    assert [s.task_id for s in decision.dispatch] == ["d"]
    assert "g" in restored.completed


def test_cycle_counts_survive_restore(shape_of) -> None:
    shape = shape_of(nodes="loop", max_cycles={"loop": 3})
    sched = Scheduler(shape, "s")
    spec = sched.start().dispatch[0]
    spec = sched.complete(spec.token, TaskOutcome(iterate=True)).dispatch[0]
    restored = Scheduler.restore(shape, through_json(sched.snapshot()))
    assert restored.cycle_counts == {"loop": 1}
    (again,) = restored.resume().dispatch
    assert again.cycle == 1
    third = restored.complete(again.token, TaskOutcome(iterate=True)).dispatch[0]
    decision = restored.complete(third.token, TaskOutcome(iterate=True))
    assert isinstance(decision.end.error, CycleLimitExceededError)


def test_dynamic_nodes_travel_in_the_shape(shape_of) -> None:
    sched = Scheduler(shape_of(nodes="a"), "s")
    outcome = TaskOutcome(next_tasks=[NextTask("dyn", shape=NodeShape("dyn"))])
    sched.complete(sched.start().dispatch[0].token, outcome)
    shape = copy_shape(sched.shape)
    restored = Scheduler.restore(shape, through_json(sched.snapshot()))
    (dyn,) = restored.resume().dispatch
    assert restored.complete(dyn.token, OK).end.status is RunStatus.COMPLETED


def test_task_outcome_round_trips_through_json() -> None:
    outcome = TaskOutcome(
        iterate=True,
        next_tasks=[NextTask("n", goto=True, shape=NodeShape("n", successors=["m"])),
                    NextTask("m"),
                    NextTask("g", shape=NodeShape("g", members=["x"], successors=["j"]),
                             nodes=(NodeShape("x"), NodeShape("j", predecessors=["g"])))],
        terminate=None,
        cancel="why",
        checkpoint=CheckpointRequest("p", {"k": [1, 2]}),
    )
    back = TaskOutcome.from_dict(json.loads(json.dumps(outcome.to_dict())))
    assert back == outcome
    assert TaskOutcome.from_dict(TaskOutcome().to_dict()) == TaskOutcome()


def test_graph_shape_round_trips_with_policies_and_retries(shape_of) -> None:
    shape = shape_of(
        "a>g",
        groups={"g": ["x", "y"]},
        policies={"g": GroupPolicySpec("critical", critical_tasks=("x",))},
        retry={"a": RetrySettings(3, initial_interval=0.5, jitter=True)},
        max_cycles={"a": 7},
    )
    assert copy_shape(shape) == shape


def test_task_spec_ignores_unknown_fields() -> None:
    spec = TaskSpec("a", "e.1", cycle=2, attempt=3, group="g", not_before=1.5)
    data = {**spec.to_dict(), "added_in_a_later_release": True}
    assert TaskSpec.from_dict(data) == spec
