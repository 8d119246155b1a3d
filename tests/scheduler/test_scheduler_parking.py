"""Parked tasks: a task that waits for a person holds no worker, stays pending, survives
snapshots, and runs again once woken."""

from __future__ import annotations

import json

from graflow_dist.scheduler import RunStatus, Scheduler, TaskOutcome
from graflow_dist.wire.specs import frontier_from_dict

OK = TaskOutcome()


def new(shape) -> Scheduler:  # noqa: ANN001
    return Scheduler(shape, "sess", epoch="e")


def test_a_parked_task_holds_nothing_until_woken(shape_of, ready) -> None:
    sched = new(shape_of("ask>deploy"))
    tok = ready(sched.start())["ask"]
    decision = sched.park(tok, "fb1", deadline=100.0)
    assert not decision.stale and decision.end is None and decision.dispatch == []
    assert sched.waiting and not sched.inflight
    assert [s.task_id for s in sched.pending] == ["ask"]  # still pending, never completed
    assert sched.complete(tok, OK).stale  # the parked attempt cannot complete any more
    woken = sched.wake("fb1")
    (again,) = woken.dispatch
    assert again.task_id == "ask" and again.token != tok and again.attempt == 1
    assert not sched.waiting
    assert sched.wake("fb1").stale  # woken once
    assert set(ready(sched.complete(again.token, OK))) == {"deploy"}


def test_park_of_an_unknown_token_or_a_known_key_is_stale(shape_of, ready) -> None:
    sched = new(shape_of(nodes="a b"))
    tok = ready(sched.start())
    assert sched.park("nope", "fb").stale
    sched.park(tok["a"], "fb")
    assert sched.park(tok["b"], "fb").stale  # one task per wake key
    assert sched.wake("other").stale


def test_a_run_with_parked_tasks_is_not_finished_and_others_go_on(shape_of, ready) -> None:
    sched = new(shape_of(nodes="ask work"))
    tok = ready(sched.start())
    sched.park(tok["ask"], "fb")
    assert not sched.waiting  # `work` still runs
    assert sched.complete(tok["work"], OK).end is None
    assert sched.waiting


def test_the_deadline_asks_for_one_checkpoint_and_the_run_keeps_waiting(shape_of,
                                                                        ready) -> None:
    sched = new(shape_of("ask>deploy"))
    sched.park(ready(sched.start())["ask"], "fb", deadline=50.0)
    assert sched.next_due() == 50.0
    assert sched.expire_waits(49.0).checkpoint is None
    decision = sched.expire_waits(50.0)
    assert decision.checkpoint is not None
    assert decision.checkpoint.metadata["waiting_for"] == ["fb"]
    assert decision.end is None and sched.waiting
    assert sched.expire_waits(60.0).checkpoint is None  # once
    assert sched.next_due() is None
    assert sched.wake("fb").dispatch  # a late answer is still taken


def test_parked_tasks_survive_snapshot_and_restore(shape_of, ready) -> None:
    shape = shape_of("ask>deploy")
    sched = new(shape)
    sched.park(ready(sched.start())["ask"], "fb", deadline=70.0)
    snapshot = frontier_from_dict(json.loads(json.dumps(sched.snapshot().to_dict())), "test")
    restored = Scheduler.restore(shape, snapshot, epoch="r")
    assert restored.waiting and restored.resume().dispatch == []
    assert restored.next_due() == 70.0
    (again,) = restored.wake("fb").dispatch
    assert set(ready(restored.complete(again.token, OK))) == {"deploy"}


def test_a_resumed_checkpoint_runs_parked_tasks_again(shape_of, ready) -> None:
    shape = shape_of("ask>deploy")
    sched = new(shape)
    sched.park(ready(sched.start())["ask"], "fb")
    restored = Scheduler.restore(shape, sched.snapshot(), epoch="r")
    (again,) = restored.resume(reissue=True).dispatch  # it finds its answer, or parks again
    assert again.task_id == "ask" and not restored.parked


def test_terminate_and_cancel_end_a_waiting_run(shape_of, ready) -> None:
    sched = new(shape_of(nodes="ask other"))
    tok = ready(sched.start())
    sched.park(tok["ask"], "fb")
    end = sched.complete(tok["other"], TaskOutcome(terminate="enough")).end
    assert end is not None and end.status is RunStatus.TERMINATED
    assert sched.pending == [] and not sched.parked
    cancelled = new(shape_of(nodes="ask"))
    cancelled.park(ready(cancelled.start())["ask"], "fb")
    assert cancelled.cancel("no").end.status is RunStatus.CANCELLED
    assert cancelled.wake("fb").stale


def test_the_journal_records_parking_for_the_redis_frontier(shape_of, ready) -> None:
    sched = new(shape_of(nodes="ask"))
    tok = ready(sched.start())["ask"]
    sched.drain_journal()
    sched.park(tok, "fb", deadline=5.0)
    journal = sched.drain_journal()
    assert journal.parked_put["fb"].token == tok and not journal.pending_del
    sched.wake("fb")
    journal = sched.drain_journal()
    assert journal.parked_del == {"fb"} and tok in journal.pending_del
