"""Property tests: random DAGs, completed in random orders, with and without a
snapshot/restore in the middle."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from graflow_dist.scheduler import (
    Decision,
    GraphShape,
    GroupPolicySpec,
    NodeShape,
    RunStatus,
    Scheduler,
    TaskOutcome,
    TaskSpec,
)
from graflow_dist.wire.specs import frontier_from_dict

OK = TaskOutcome()


@st.composite
def dags(draw: st.DrawFn) -> GraphShape:
    """Nodes n0..n(k-1) with random edges ni -> nj (i < j); some nodes are parallel
    groups with 1 to 3 members of their own (members carry no edges, as with ``|``)."""
    size = draw(st.integers(1, 9))
    names = [f"n{i}" for i in range(size)]
    shape = GraphShape({n: NodeShape(n) for n in names})
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    for i, j in draw(st.lists(st.sampled_from(pairs), unique=True) if pairs else st.just([])):
        shape.node(names[i]).successors.append(names[j])
        shape.node(names[j]).predecessors.append(names[i])
    for name in names:
        if draw(st.booleans()) and draw(st.booleans()):  # about a quarter are groups
            members = [f"{name}.m{k}" for k in range(draw(st.integers(1, 3)))]
            shape.node(name).members = members
            shape.node(name).policy = GroupPolicySpec()
            for member in members:
                shape.add(NodeShape(member))
    return shape


def task_nodes(shape: GraphShape) -> set[str]:
    """The nodes that are executed as tasks (a group runs through its members)."""
    return {n for n, s in shape.nodes.items() if not s.is_group}


@dataclass
class Trace:
    """What a driver observed: dispatches, completions, and ordering violations."""

    dispatched: Counter[str] = field(default_factory=Counter)
    ran: Counter[str] = field(default_factory=Counter)
    completed: set[str] = field(default_factory=set)
    early_starts: list[tuple[str, str]] = field(default_factory=list)


class Driver:
    """Drives a scheduler like a runner with many workers: any in-flight task may be
    the next to finish, as chosen by hypothesis."""

    def __init__(self, sched: Scheduler, trace: Trace) -> None:
        self.sched = sched
        self.trace = trace
        self.inflight: list[TaskSpec] = []
        self.end = None

    def apply(self, decision: Decision) -> None:
        self.trace.completed.update(decision.completed)
        for spec in decision.dispatch:
            self.trace.dispatched[spec.task_id] += 1
            node = spec.group or spec.task_id
            for pred in self.sched.shape.node(node).predecessors:
                if pred not in self.trace.completed:
                    self.trace.early_starts.append((spec.task_id, pred))
        self.inflight.extend(decision.dispatch)
        self.end = decision.end or self.end

    def step(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.inflight) - 1), label="next to finish")
        spec = self.inflight.pop(index)
        self.trace.ran[spec.task_id] += 1
        self.apply(self.sched.complete(spec.token, OK))

    def run(self, data: st.DataObject, max_completions: int | None = None) -> None:
        done = 0
        while self.end is None and (max_completions is None or done < max_completions):
            assert self.inflight, "the run stalled with nothing in flight"
            self.step(data)
            done += 1


def copy_shape(shape: GraphShape) -> GraphShape:
    return GraphShape.from_dict(json.loads(json.dumps(shape.to_dict())))


@settings(max_examples=300, deadline=None)
@given(shape=dags(), data=st.data())
def test_random_dag_runs_every_node_once_after_its_predecessors(
    shape: GraphShape, data: st.DataObject
) -> None:
    tasks = task_nodes(shape)
    trace = Trace()
    driver = Driver(Scheduler(shape, "prop"), trace)
    driver.apply(driver.sched.start())
    driver.run(data)

    assert driver.end is not None and driver.end.status is RunStatus.COMPLETED
    assert driver.end.error is None
    assert trace.early_starts == []
    assert trace.ran == Counter(dict.fromkeys(tasks, 1))
    assert trace.dispatched == trace.ran
    assert set(driver.sched.completed) == set(shape.nodes)
    assert driver.sched.steps == len(tasks)
    assert driver.sched.pending == []


@settings(max_examples=300, deadline=None)
@given(shape=dags(), data=st.data())
def test_snapshot_and_restore_at_a_random_point_runs_the_same_tasks(
    shape: GraphShape, data: st.DataObject
) -> None:
    tasks = task_nodes(shape)
    before = Trace()
    original = Driver(Scheduler(shape, "prop", epoch="one"), before)
    original.apply(original.sched.start())
    cut = data.draw(st.integers(0, len(tasks)), label="completions before the snapshot")
    original.run(data, max_completions=cut)

    as_json = json.dumps(original.sched.snapshot().to_dict())
    snapshot = frontier_from_dict(json.loads(as_json), "snapshot")
    ran_before = set(before.ran)

    # The original run carries on...
    original.run(data)
    # ...and a restored copy of it, in its own random order, must do the same work.
    after = Trace(completed=set(snapshot.completed_tasks))
    restored = Driver(Scheduler.restore(copy_shape(shape), snapshot, epoch="two"), after)
    restored.apply(restored.sched.resume())
    restored.run(data)

    assert original.end.status is RunStatus.COMPLETED
    assert restored.end is not None and restored.end.status is RunStatus.COMPLETED
    assert after.early_starts == []
    assert ran_before.isdisjoint(after.ran)
    assert Counter(ran_before) + after.ran == Counter(dict.fromkeys(tasks, 1))
    assert set(restored.sched.completed) == set(original.sched.completed) == set(shape.nodes)
    assert restored.sched.steps == original.sched.steps == len(tasks)
