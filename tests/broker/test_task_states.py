"""Node states for the console, derived from frontiers the real scheduler produced."""

from __future__ import annotations

from graflow_dist.broker.task_states import progress_counts, task_states
from graflow_dist.scheduler import GraphShape, GroupPolicySpec, NodeShape, RetrySettings
from graflow_dist.scheduler.events import TaskOutcome
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire import task_records
from graflow_dist.wire.task_records import TaskRecord


def chain_with_group(retry_b: int = 0) -> GraphShape:
    """a >> (b | c) >> d"""
    shape = GraphShape()
    for node_id in ("a", "b", "c", "d"):
        shape.add(NodeShape(node_id))
    shape.add(NodeShape("g", members=["b", "c"]))
    shape.node("b").retry = RetrySettings(max_retries=retry_b, initial_interval=30.0)
    shape.node("a").successors.append("g")
    shape.node("g").predecessors.append("a")
    shape.node("g").successors.append("d")
    shape.node("d").predecessors.append("g")
    shape.node("g").policy = GroupPolicySpec()
    return shape


def tokens(decision) -> dict[str, str]:  # noqa: ANN001
    return {s.task_id: s.token for s in decision.dispatch}


def test_states_follow_a_run_from_ready_to_done() -> None:
    shape = chain_with_group()
    sched = Scheduler(shape, "s1")
    first = tokens(sched.start())
    states = task_states(shape, sched.snapshot(), {}, set(), run_active=True)
    assert states == {"a": "ready", "b": "pending", "c": "pending", "d": "pending",
                      "g": "pending"}

    states = task_states(shape, sched.snapshot(), {}, {first["a"]}, run_active=True)
    assert states["a"] == "running"

    fan = tokens(sched.complete(first["a"], TaskOutcome()))
    states = task_states(shape, sched.snapshot(), {}, {fan["b"]}, run_active=True)
    assert states == {"a": "done", "b": "running", "c": "ready", "d": "pending",
                      "g": "running"}

    sched.complete(fan["b"], TaskOutcome())
    last = tokens(sched.complete(fan["c"], TaskOutcome()))
    sched.complete(last["d"], TaskOutcome())
    states = task_states(shape, sched.snapshot(), {}, set(), run_active=False)
    assert set(states.values()) == {"done"}
    assert progress_counts(states, shape) == {"done": 4}


def test_a_failure_with_a_retry_left_is_retrying_then_failed_when_it_is_out() -> None:
    shape = chain_with_group(retry_b=1)
    sched = Scheduler(shape, "s2")
    a = tokens(sched.start())["a"]
    fan = tokens(sched.complete(a, TaskOutcome()))
    sched.fail(fan["b"], "boom", now=100.0)
    records = {"b": TaskRecord("b", task_records.RETRYING)}
    states = task_states(shape, sched.snapshot(), records, set(), run_active=True)
    assert states["b"] == "retrying"  # delayed by its backoff

    (again,) = sched.release_due(1e12)
    decision = sched.fail(again.token, "boom again", now=200.0)
    assert decision.end is None  # the group still waits for c
    records = {"b": TaskRecord("b", task_records.FAILED, attempts=2)}
    states = task_states(shape, sched.snapshot(), records, set(), run_active=True)
    assert states["b"] == "failed"
    assert states["c"] == "ready"


def test_a_dead_lettered_task_stays_pending_and_shows_as_dead_lettered() -> None:
    shape = chain_with_group()
    sched = Scheduler(shape, "s3", crash_limit=2)
    a = tokens(sched.start())["a"]
    lost = tokens(sched.crash(a, "lease expired", worker="w1"))["a"]
    states = task_states(shape, sched.snapshot(), {}, set(), run_active=True)
    assert states["a"] == "retrying"  # re-dispatched after a lost worker
    decision = sched.crash(lost, "lease expired", worker="w2")
    assert decision.end is not None
    records = {"a": TaskRecord("a", task_records.DEAD_LETTERED, attempts=2)}
    states = task_states(shape, sched.snapshot(), records, set(), run_active=False)
    assert states["a"] == "dead_lettered"
    assert states["b"] == "pending"
