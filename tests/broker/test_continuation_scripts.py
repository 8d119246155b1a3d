"""The report script's 'continue' mode (local continuation), every return code, and the
chain a job carries."""

from __future__ import annotations

import time

import pytest
import redis

from graflow_dist.broker import Broker
from graflow_dist.broker.jobs import decode_jobmap, iter_job_commands, job_commands
from graflow_dist.broker.keys import REAPER, Keyspace, RunField
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.scripts import LeaseResult
from graflow_dist.errors import WrongTypeError
from graflow_dist.scheduler.continuation import continuation_token
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.specs import GraphShape, NodeShape, TaskSpec
from graflow_dist.wire.messages import DONE, Batch, Event

KS = Keyspace("gfcont")
WORKER = "w1"
CODE = "c" * 32


@pytest.fixture
def broker(redis_client: redis.Redis) -> Broker:
    return Broker(redis_client, KS)


def _enqueue(client: redis.Redis, session: str, token: str) -> str:
    record = RunRecord(session, status=RunStatus.RUNNING, graph_hash="g", queue=KS.queue_name,
                       incarnation="i1")
    client.hset(KS.run(session).meta, mapping=record.settings_meta())
    pipe = client.pipeline()
    for cmd in job_commands(KS, record, [TaskSpec("a", token)], 1, 100):
        pipe.execute_command(*cmd)
    pipe.execute()
    return f"gf.{session}.{token}"


def _claimer(broker: Broker, worker: str = WORKER, lease_s: float = 5.0):  # noqa: ANN202
    return broker.claimer(KS.queue_name, worker, lease_s, f"rq:worker:{worker}")


def _done(token: str, task: str = "a") -> Event:
    return Event(DONE, "s1", token=token, task_id=task, worker=WORKER, result=b"r")


def test_continue_records_the_proposal_with_the_lease_held(redis_client: redis.Redis,
                                                           broker: Broker) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    claimer = _claimer(broker)
    claimer.claim(1)
    earlier = Event(DONE, "s1", token="e.0", task_id="z")
    proposal = TaskSpec("b", continuation_token())
    assert claimer.continue_with([earlier], _done("e.1"), proposal, job_id) \
        == LeaseResult.CONTINUED
    # The job stays ours, and its tokens now include the proposal's: a reaper would
    # re-dispatch it like any task of the job.
    assert redis_client.hget(KS.lease_owner, job_id) == WORKER.encode()
    assert decode_jobmap(redis_client.hget(KS.jobmap, job_id), job_id) == \
        ("s1", ["e.1", proposal.token])
    entries = broker.events.read("0-0", 10, 1)
    assert [e.event.token for e in entries] == ["e.0", "e.1"]  # earlier reports first
    assert entries[1].event.continuation == proposal
    assert entries[1].event.result == b"r"
    # Sent again (a lost reply): the token is not added twice.
    assert claimer.continue_with([], _done("e.1"), proposal, job_id) == LeaseResult.CONTINUED
    assert decode_jobmap(redis_client.hget(KS.jobmap, job_id), job_id)[1] == \
        ["e.1", proposal.token]
    # The continued task's own completion continues again, then releases the job.
    second = TaskSpec("c", continuation_token())
    assert claimer.continue_with([], _done(proposal.token, "b"), second, job_id) \
        == LeaseResult.CONTINUED
    assert claimer.send([_done(second.token, "c")], release=job_id)
    assert redis_client.hget(KS.jobmap, job_id) is None
    assert redis_client.zscore(KS.leases, job_id) is None


def test_continue_without_the_lease_sends_the_plain_report(redis_client: redis.Redis,
                                                           broker: Broker) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    _claimer(broker).claim(1)
    redis_client.hset(KS.lease_owner, job_id, REAPER)  # reaped while we ran
    before = redis_client.hget(KS.jobmap, job_id)
    proposal = TaskSpec("b", continuation_token())
    assert _claimer(broker).continue_with([], _done("e.1"), proposal, job_id) \
        == LeaseResult.LEASE_LOST
    [entry] = broker.events.read("0-0", 10, 1)
    assert entry.event.token == "e.1" and entry.event.continuation is None
    assert redis_client.hget(KS.jobmap, job_id) == before  # the reaper's view, unchanged
    assert redis_client.hget(KS.lease_owner, job_id) == REAPER.encode()


def test_continue_of_a_job_without_a_readable_entry_releases_it(redis_client: redis.Redis,
                                                                broker: Broker) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    claimer = _claimer(broker)
    claimer.claim(1)
    redis_client.hset(KS.jobmap, job_id, b"\xc1not msgpack")
    proposal = TaskSpec("b", continuation_token())
    assert claimer.continue_with([], _done("e.1"), proposal, job_id) == LeaseResult.RELEASED
    [entry] = broker.events.read("0-0", 10, 1)
    assert entry.event.continuation is None
    assert redis_client.zscore(KS.leases, job_id) is None
    assert redis_client.hget(KS.jobmap, job_id) is None


@pytest.mark.parametrize("change", ["cancelled", "resubmitted", "expired"])
def test_no_continuation_into_a_run_that_is_over_or_submitted_again(
        redis_client: redis.Redis, broker: Broker, change: str) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    claimer = _claimer(broker)
    claimer.claim(1)
    meta = KS.run("s1").meta
    if change == "cancelled":
        redis_client.hset(meta, RunField.STATUS, RunStatus.CANCELLED.value)
    elif change == "resubmitted":
        redis_client.hset(meta, RunField.INCARNATION, "i2")
    else:
        redis_client.delete(meta)
    proposal = TaskSpec("b", continuation_token())
    assert claimer.continue_with([], _done("e.1"), proposal, job_id) == LeaseResult.RELEASED
    [entry] = broker.events.read("0-0", 10, 1)
    assert entry.event.token == "e.1" and entry.event.continuation is None
    assert redis_client.zscore(KS.leases, job_id) is None


def test_continue_writes_nothing_when_a_key_has_the_wrong_type(redis_client: redis.Redis,
                                                               broker: Broker) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    claimer = _claimer(broker)
    claimer.claim(1)
    redis_client.delete(KS.events)
    redis_client.set(KS.events, "not a stream")
    before = redis_client.hget(KS.jobmap, job_id)
    with pytest.raises(WrongTypeError):
        claimer.continue_with([], _done("e.1"), TaskSpec("b", continuation_token()), job_id)
    assert redis_client.hget(KS.jobmap, job_id) == before


def test_a_continued_job_is_reaped_with_the_proposed_token(redis_client: redis.Redis,
                                                           broker: Broker) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    claimer = _claimer(broker, lease_s=0.05)
    claimer.claim(1)
    proposal = TaskSpec("b", continuation_token())
    assert claimer.continue_with([], _done("e.1"), proposal, job_id) == LeaseResult.CONTINUED
    time.sleep(0.1)  # the worker died
    redis_client.set(KS.leader, "me")
    [job] = broker.reaper.reap("me")
    assert (job.job_id, job.tokens) == (job_id, ["e.1", proposal.token])


def test_a_successor_run_ahead_is_recorded_with_its_report_and_the_job_ends(
        redis_client: redis.Redis, broker: Broker) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    _enqueue(redis_client, "s2", "e.9")  # the next job, claimed in the same step
    claimer = _claimer(broker)
    claimer.claim(1)
    proposal = TaskSpec("b", continuation_token())
    earlier = Event(DONE, "s1", token="e.0", task_id="z")
    held, [next_job] = claimer.ran_ahead([earlier], _done("e.1"), proposal,
                                         [_done(proposal.token, "b")], job_id, 1)
    assert held and next_job.job_id == "gf.s2.e.9"
    entries = broker.events.read("0-0", 10, 1)
    # The earlier report, the proposal, then the successor's completion: the
    # coordinator adopts the proposal before it reads the successor's report.
    assert [e.event.token for e in entries] == ["e.0", "e.1", proposal.token]
    assert entries[1].event.continuation == proposal
    assert redis_client.hget(KS.jobmap, job_id) is None  # released
    assert redis_client.zscore(KS.leases, job_id) is None
    assert redis_client.hget(KS.lease_owner, "gf.s2.e.9") == WORKER.encode()


@pytest.mark.parametrize("change", ["cancelled", "reaped"])
def test_a_successor_run_ahead_that_cannot_be_recorded_is_dropped(
        redis_client: redis.Redis, broker: Broker, change: str) -> None:
    job_id = _enqueue(redis_client, "s1", "e.1")
    claimer = _claimer(broker)
    claimer.claim(1)
    if change == "cancelled":
        redis_client.hset(KS.run("s1").meta, RunField.STATUS, RunStatus.CANCELLED.value)
    else:
        redis_client.hset(KS.lease_owner, job_id, REAPER)
    proposal = TaskSpec("b", continuation_token())
    held, claimed = claimer.ran_ahead([], _done("e.1"), proposal,
                                      [_done(proposal.token, "b")], job_id)
    assert held is (change == "cancelled") and claimed == []
    # The plain completion only: the coordinator dispatches the successor itself.
    [entry] = broker.events.read("0-0", 10, 1)
    assert entry.event.token == "e.1" and entry.event.continuation is None
    if change == "cancelled":
        assert redis_client.zscore(KS.leases, job_id) is None
    else:
        assert redis_client.hget(KS.lease_owner, job_id) == REAPER.encode()


def _chain_shape(n: int) -> GraphShape:
    names = [f"t{i}" for i in range(n)]
    shape = GraphShape()
    for i, name in enumerate(names):
        shape.add(NodeShape(name, successors=names[i + 1:i + 2],
                            predecessors=names[max(0, i - 1):i], code=CODE,
                            timeout=5.0 if i == 2 else None))
    return shape


def test_a_job_carries_the_plain_chain_after_its_last_task(redis_client: redis.Redis) -> None:
    record = RunRecord("s1", status=RunStatus.RUNNING, graph_hash="g", queue=KS.queue_name,
                       incarnation="i1")
    shape = _chain_shape(6)
    cmds = job_commands(KS, record, [TaskSpec("t0", "e.1")], 1, 1, shape=shape,
                        cycles={"t2": 3}, max_continuation=3)
    data = next(c[c.index("data") + 1] for c in cmds if c[0] == "HSET" and "data" in c)
    batch = Batch.from_job_data(data, "j")
    assert batch.chain == [("t1", 0), ("t2", 3), ("t3", 0)]  # bounded by max_continuation
    assert batch.code == {f"t{i}": CODE for i in range(4)}
    assert batch.timeouts == {"t2": 5.0}  # the continued tasks' deadlines too
    off = job_commands(KS, record, [TaskSpec("t0", "e.1")], 1, 1, shape=shape)
    data = next(c[c.index("data") + 1] for c in off if c[0] == "HSET" and "data" in c)
    assert Batch.from_job_data(data, "j").chain == []


def test_a_job_holding_a_whole_group_carries_the_chain_after_it() -> None:
    record = RunRecord("s1", status=RunStatus.RUNNING, graph_hash="g", queue=KS.queue_name,
                       incarnation="i1")
    shape = GraphShape()
    shape.add(NodeShape("g", successors=["j"], members=["x", "y", "z"]))
    for member in "xyz":
        shape.add(NodeShape(member, code=CODE))
    shape.add(NodeShape("j", predecessors=["g"], code=CODE, timeout=3.0))
    group = [TaskSpec(m, f"e.{i}", group="g") for i, m in enumerate("xyz")]

    def batches(max_batch: int) -> list[Batch]:
        cmds = iter_job_commands(KS, record, group, max_batch, 1, shape=shape,
                                 cycles={"j": 2}, max_continuation=8, ready=100)
        return [Batch.from_job_data(c[c.index("data") + 1], "j")
                for c in cmds if c[0] == "HSET" and "data" in c]

    [whole] = batches(64)
    assert whole.chain == [("j", 2)] and whole.code["j"] == CODE
    assert whole.timeouts == {"j": 3.0}
    split = batches(2)  # the group over two jobs: neither knows the other's results
    assert [len(b.specs) for b in split] == [2, 1] and all(b.chain == [] for b in split)
