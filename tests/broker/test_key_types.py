"""Keys someone else wrote: every script refuses a key of the wrong type before writing
anything, `KeyRepair` moves such keys aside, and damaged coordinator state (leader
lease, epoch, cursor, commit counter) is repaired, never obeyed."""

from __future__ import annotations

import msgpack
import pytest
import redis
from test_scripts import KS, RQ_WORKER_KEY, WORKER, _claimer, _enqueue  # noqa: I001

from graflow_dist.broker import Broker
from graflow_dist.broker.jobs import job_commands
from graflow_dist.broker.keys import RunField
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.scripts import LeaseResult, Scripts
from graflow_dist.errors import WrongTypeError
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.wire.messages import DONE, Event


@pytest.fixture
def broker(redis_client: redis.Redis) -> Broker:
    return Broker(redis_client, KS)


def _snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key with its serialized value (what "nothing was written" compares)."""
    return {key: client.dump(key) for key in sorted(client.keys("*"))}


def _script_calls() -> list[tuple[str, list[str], list[object]]]:
    q = KS.queue_name
    return [
        ("claim", [KS.rq_queue(q), KS.leases, KS.lease_owner, KS.wake(q), RQ_WORKER_KEY],
         [5, WORKER, 3, "now"]),
        ("extend", [KS.leases, KS.lease_owner], [5, WORKER, "j"]),
        ("finish", [KS.leases, KS.lease_owner, KS.jobmap, RQ_WORKER_KEY], ["j", WORKER]),
        ("fail_job", [KS.leases, KS.lease_owner, KS.jobmap, RQ_WORKER_KEY, KS.rq_failed(q)],
         ["j", WORKER, "why", "now"]),
        ("report", [KS.events, KS.leases, KS.lease_owner, KS.jobmap, RQ_WORKER_KEY,
                    KS.rq_failed(q)], ["release", "j", WORKER, "", "now", 0, 0, b"event"]),
        ("report", [KS.events, KS.leases, KS.lease_owner, KS.jobmap, RQ_WORKER_KEY,
                    KS.rq_failed(q), KS.rq_queue(q), KS.wake(q)],
         ["claim", "j", WORKER, "", "now", 5, 1, b"event"]),
        ("reap_mark", [KS.leader, KS.leases, KS.lease_owner, KS.jobmap], ["me", 10]),
        ("lease_grace", [KS.leader, KS.leases, KS.lease_owner], ["me", 10]),
        ("leader_acquire", [KS.leader, KS.leader_epoch], ["me", 5000]),
        ("fenced_apply", [KS.leader, KS.commits],
         ["me", msgpack.packb([["SET", "x", "1"]]), 0]),
    ]


@pytest.mark.parametrize("call", _script_calls(),
                         ids=lambda c: f"report-{c[2][0]}" if c[0] == "report" else c[0])
def test_every_script_refuses_each_of_its_keys_of_the_wrong_type_writing_nothing(
    redis_client: redis.Redis, call: tuple[str, list[str], list[object]]
) -> None:
    name, keys, args = call
    scripts = Scripts(redis_client, KS)
    _enqueue(redis_client, "s1", ["e.1"])
    for key in keys:
        kept = redis_client.dump(key)
        redis_client.delete(key)
        if KS.expected_type(key) == "string":
            redis_client.hset(key, "planted", "x")
        else:
            redis_client.set(key, "planted")
        before = _snapshot(redis_client)
        with pytest.raises(WrongTypeError, match=name) as refused:
            scripts.call(name, keys, args)
        assert key in refused.value.keys
        assert _snapshot(redis_client) == before, f"{name} wrote despite {key}"
        redis_client.delete(key)
        if kept is not None:
            redis_client.restore(key, 0, kept)


def test_claim_skips_a_job_key_of_the_wrong_type_and_reports_it(
    redis_client: redis.Redis, broker: Broker
) -> None:
    [good] = _enqueue(redis_client, "s1", ["e.1"])
    redis_client.lpush(KS.rq_queue(KS.queue_name), "planted")
    redis_client.set(KS.rq_job("planted"), "not a hash")
    planted, claimed = _claimer(broker).claim(2)
    assert (planted.job_id, planted.batch, planted.wrong_type) == ("planted", None, "string")
    assert claimed.job_id == good and claimed.batch is not None
    assert redis_client.zscore(KS.leases, "planted") is None  # not held: nothing to run
    [moved] = broker.repair.quarantine([KS.rq_job("planted")])
    assert (moved.key, moved.held) == (KS.rq_job("planted"), "string")
    assert moved.moved_to.startswith(KS.quarantine_head)
    assert redis_client.get(moved.moved_to) == b"not a hash"
    assert 0 < redis_client.ttl(moved.moved_to) <= 7 * 86400


def test_counters_overwritten_with_text_do_not_fail_the_scripts(
    redis_client: redis.Redis, broker: Broker
) -> None:
    [job_id] = _enqueue(redis_client, "s1", ["e.1"])
    redis_client.hset(KS.run("s1").meta, RunField.RUNNING, "abc")
    redis_client.hset(KS.rq_job(job_id), "gf_tasks", "1e999")
    redis_client.hset(RQ_WORKER_KEY, "successful_job_count", "lots")
    claimer = _claimer(broker)
    [claimed] = claimer.claim(1)
    assert claimed.run_status is RunStatus.RUNNING
    assert claimer.finish(job_id)
    assert redis_client.hget(RQ_WORKER_KEY, "successful_job_count") == b"1"


def test_report_appends_events_and_releases_the_job_in_one_step(
    redis_client: redis.Redis, broker: Broker
) -> None:
    [job_id] = _enqueue(redis_client, "s1", ["e.1"])
    claimer = _claimer(broker)
    claimer.claim(1)
    event = Event(DONE, "s1", token="e.1", task_id="t")
    redis_client.set(KS.events, "planted")
    with pytest.raises(WrongTypeError):
        claimer.send([event], release=job_id)
    assert redis_client.zscore(KS.leases, job_id) is not None, "released without its report"
    broker.repair.quarantine([KS.events])
    assert claimer.send([event], release=job_id)
    [(entry_id, event_read)] = [(e.entry_id, e.event) for e in broker.events.read("0-0", 10, 1)]
    assert event_read == event
    assert claimer.send([], still_held=job_id) is False  # released: no longer ours
    assert LeaseResult.HELD == LeaseResult.RELEASED == 1


def test_sweep_moves_every_deployment_key_of_the_wrong_type(
    redis_client: redis.Redis, broker: Broker
) -> None:
    expected = KS.key_types()
    for key in expected:
        redis_client.hset(key, "x", "y") if expected[key] != "hash" \
            else redis_client.set(key, "x")
    moved = broker.repair.sweep()
    assert {q.key for q in moved} == set(expected)
    assert not any(redis_client.exists(k) for k in expected)
    assert broker.repair.sweep() == []


def test_a_leader_lease_without_expiry_is_replaced_and_a_bad_epoch_starts_over(
    redis_client: redis.Redis, broker: Broker
) -> None:
    redis_client.set(KS.leader, "squatter")  # no TTL: never written by a coordinator
    redis_client.set(KS.leader_epoch, "not a count")
    assert broker.leader.acquire("me", 5) == 1
    assert "no expiry" in broker.leader.note or "epoch" in broker.leader.note
    assert broker.leader.holder() == "me"
    assert 0 < redis_client.pttl(KS.leader) <= 5000
    redis_client.set(KS.leader, "other", px=5000)  # a real lease is respected
    assert broker.leader.acquire("me", 5) == 0 and broker.leader.note == ""


@pytest.mark.parametrize(("cursor", "commits"), [(b"garbage", b"3"), (b"5-0", b"many"),
                                                  (b"\xff", b"-1"), (b"1-1-1", b"1e3")])
def test_damaged_cursor_and_commit_counter_are_repaired_by_the_leader(
    redis_client: redis.Redis, broker: Broker, cursor: bytes, commits: bytes
) -> None:
    redis_client.mset({KS.cursor: cursor, KS.commits: commits})
    state = broker.leader.committed_state()
    assert state.damaged
    assert not broker.leader.repair("me", state)  # not the leader: nothing changes
    assert redis_client.get(KS.cursor) == cursor
    broker.leader.acquire("me", 5)
    assert broker.leader.repair("me", state)
    again = broker.leader.committed_state()
    assert not again.damaged
    assert (again.cursor, again.commits) == (state.cursor, state.commits)


def test_jobs_of_a_commit_go_through_after_a_planted_queue_is_quarantined(
    redis_client: redis.Redis, broker: Broker
) -> None:
    redis_client.set(KS.leader, "me", px=5000)
    redis_client.set(KS.rq_queue(KS.queue_name), "planted")
    record = RunRecord("s1", graph_hash="g", queue=KS.queue_name, incarnation="i")
    commit = broker.commit()
    commit.commands += job_commands(KS, record, [TaskSpec("t", "e.1")], 1, 1)
    with pytest.raises(WrongTypeError) as refused:
        broker.apply(commit, "me", 0)
    assert redis_client.get(KS.commits) is None and not redis_client.exists(KS.jobmap)
    broker.repair.quarantine(refused.value.keys)
    assert broker.apply(commit, "me", 0) == 0
    assert redis_client.llen(KS.rq_queue(KS.queue_name)) == 1


def test_quarantine_moves_each_key_once_even_when_two_processes_repair(
    redis_client: redis.Redis, broker: Broker
) -> None:
    redis_client.set(KS.jobmap, "planted")
    other = Broker(redis.Redis(connection_pool=redis_client.connection_pool), KS)
    first = broker.repair.quarantine([KS.jobmap])
    second = other.repair.quarantine([KS.jobmap])
    assert len(first) == 1 and second == []
