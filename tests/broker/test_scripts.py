"""Every Lua script, run directly on the test redis-server, with every return code."""

from __future__ import annotations

import time

import msgpack
import pytest
import redis

from graflow_dist.broker import Broker
from graflow_dist.broker import commit as commit_module
from graflow_dist.broker.commit import Commit
from graflow_dist.broker.frontier import Deferred, load_run, shape_commands
from graflow_dist.broker.jobs import job_commands
from graflow_dist.broker.keys import REAPER, JobField, Keyspace, RunField
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.scripts import (
    MAX_COMMAND_ARGS,
    SCRIPT_NAMES,
    ApplyResult,
    ExpireResult,
    LeaderResult,
    LeaseResult,
    ReapResult,
    Scripts,
    header,
    source,
)
from graflow_dist.errors import (
    CommitTooLargeError,
    NotLeaderError,
    StaleStateError,
    WrongTypeError,
)
from graflow_dist.scheduler.events import RunStatus, TaskOutcome
from graflow_dist.scheduler.specs import GraphShape, NodeShape, TaskSpec
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.messages import DONE, Event

KS = Keyspace("gfscripts")
WORKER = "w1"
RQ_WORKER_KEY = "rq:worker:w1"


@pytest.fixture
def broker(redis_client: redis.Redis) -> Broker:
    return Broker(redis_client, KS)


@pytest.fixture
def scripts(redis_client: redis.Redis) -> Scripts:
    return Scripts(redis_client, KS)


def _enqueue(client: redis.Redis, session: str, tokens: list[str], *, incarnation: str = "i1",
             meta: bool = True, status: RunStatus = RunStatus.RUNNING) -> list[str]:
    record = RunRecord(session, status=status, graph_hash="g", queue=KS.queue_name,
                       incarnation=incarnation)
    if meta:
        client.hset(KS.run(session).meta, mapping=record.settings_meta())
    pipe = client.pipeline()
    cmds = job_commands(KS, record, [TaskSpec("t", tok) for tok in tokens], 1, 100)
    for cmd in cmds:
        pipe.execute_command(*cmd)
    pipe.execute()
    return [f"gf.{session}.{tok}" for tok in tokens]


def _claimer(broker: Broker, lease_s: float = 5.0, worker: str = WORKER):  # noqa: ANN202
    return broker.claimer(KS.queue_name, worker, lease_s, f"rq:worker:{worker}")


def test_every_script_compiles_and_has_its_constants(redis_client: redis.Redis) -> None:
    for name in SCRIPT_NAMES:
        src = source(name, KS)
        assert redis_client.script_load(src)
        body = src.split(header(KS))[1]
        for literal in ("'rq:", ":run:", ":meta'", "'gf_", "'status'", "'data'"):
            assert literal not in body, f"{name} spells a key or field itself: {literal}"
    assert f"local MAX_COMMAND_ARGS = {MAX_COMMAND_ARGS}" in header(KS)
    assert "local NOT_HELD = 0" in header(KS)  # enum aliases are defined too


# --- fenced_apply -----------------------------------------------------------------------


def _payload(commands: list[list[object]]) -> bytes:
    return b"".join(msgpack.packb(c, use_bin_type=False) for c in commands)


def test_fenced_apply_return_codes(redis_client: redis.Redis, scripts: Scripts) -> None:
    keys = [KS.leader, KS.commits]
    assert scripts.call("fenced_apply", keys, ["me", _payload([["SET", "a", "1"]]), 0]) \
        == ApplyResult.NOT_LEADER
    redis_client.set(KS.leader, "me")
    assert scripts.call("fenced_apply", keys, ["me", _payload([["SET", "a", "1"]]), 3]) \
        == ApplyResult.STATE_BEHIND
    too_long = ["RPUSH", "l", *["x"] * MAX_COMMAND_ARGS]
    assert scripts.call("fenced_apply", keys, ["me", _payload([["SET", "a", "1"], too_long]), 0]) \
        == ApplyResult.COMMAND_TOO_LONG
    assert redis_client.get("a") is None and redis_client.get(KS.commits) is None
    assert scripts.call("fenced_apply", keys, ["me", _payload([["SET", "a", "1"]]), 0]) == 0
    assert redis_client.get("a") == b"1" and redis_client.get(KS.commits) == b"1"
    # The same commit sent again (its reply lost): it landed, nothing is written twice.
    assert scripts.call("fenced_apply", keys, ["me", _payload([["INCR", "n"]]), 0]) \
        == ApplyResult.COMMITTED_BEFORE
    assert redis_client.get("n") is None and redis_client.get(KS.commits) == b"1"
    # A key of the wrong type: refused before anything is written (no half commit).
    with pytest.raises(WrongTypeError, match="a holds a string") as refused:
        scripts.call("fenced_apply", keys,
                     ["me", _payload([["SET", "b", "2"], ["LPUSH", "a", "x"]]), 1])
    assert refused.value.keys == {"a": "string"}
    assert redis_client.get("b") is None and redis_client.get(KS.commits) == b"1"
    # A command failing anyway (not a type: a value) is counted; the others apply.
    redis_client.set("n", "not a number")
    failed = scripts.call("fenced_apply", keys,
                          ["me", _payload([["INCR", "n"], ["SET", "b", "2"]]), 1])
    assert failed == 1 and redis_client.get("b") == b"2"


def test_apply_raises_the_named_errors(redis_client: redis.Redis, broker: Broker) -> None:
    commit = Commit(KS)
    commit.cursor("1-0")
    with pytest.raises(NotLeaderError):
        broker.apply(commit, "me", 0)
    redis_client.set(KS.leader, "me")
    with pytest.raises(StaleStateError):
        broker.apply(commit, "me", 7)
    commit.commands.append(["EVAL", *["x"] * (MAX_COMMAND_ARGS + 1)])  # not splittable
    with pytest.raises(CommitTooLargeError):
        broker.apply(commit, "me", 0)


def test_long_variadic_commands_are_split_and_applied(redis_client: redis.Redis,
                                                      broker: Broker) -> None:
    redis_client.set(KS.leader, "me")
    commit = Commit(KS)
    commit.commands.append(["RPUSH", "big", *range(5 * MAX_COMMAND_ARGS)])
    assert broker.apply(commit, "me", 0) == 0
    assert redis_client.llen("big") == 5 * MAX_COMMAND_ARGS


def test_a_commit_s_channel_values_land_exactly_and_indexed(redis_client: redis.Redis,
                                                             broker: Broker) -> None:
    redis_client.set(KS.leader, "me")
    keys = KS.run("s-values")
    values = {f"t{i}.__result__": bytes([i % 256]) * (i % 7) for i in range(MAX_COMMAND_ARGS)}
    redis_client.hset(keys.channel("t1.__result__"), "planted", "hash")  # overwritten
    commit = Commit(KS)
    commit.channel_values(keys, values)
    assert broker.apply(commit, "me", 0) == 0
    assert {k.decode() for k in redis_client.smembers(keys.channel_index)} == set(values)
    assert redis_client.mget([keys.channel(k) for k in values]) == list(values.values())


def test_a_large_commit_is_staged_in_pieces_and_applied_whole(
        redis_client: redis.Redis, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit_module, "STAGED_COMMIT_BYTES", 1000)
    redis_client.set(KS.leader, "me")
    commit = Commit(KS)
    commit.commands.append(["RPUSH", "big", *(f"item-{i}" for i in range(3000))])
    commit.commands.append(["SET", "small", "1"])
    assert len(commit.payload()) > 10_000  # staged in ten pieces or more
    assert broker.apply(commit, "me", 0) == 0
    assert redis_client.llen("big") == 3000 and redis_client.lindex("big", 2999) == b"item-2999"
    assert redis_client.get("small") == b"1"
    assert not redis_client.exists(KS.staged_commit("me"))


def test_a_staged_commit_that_arrived_incomplete_is_refused(redis_client: redis.Redis,
                                                            scripts: Scripts) -> None:
    redis_client.set(KS.leader, "me")
    payload = _payload([["SET", "a", "1"]])
    redis_client.set(KS.staged_commit("me"), payload[:-1])
    keys = [KS.leader, KS.commits, KS.staged_commit("me")]
    assert scripts.call("fenced_apply", keys, ["me", b"", 0, len(payload)]) \
        == ApplyResult.STAGED_INCOMPLETE
    assert redis_client.get("a") is None and redis_client.get(KS.commits) is None
    redis_client.set(KS.staged_commit("me"), payload)
    assert scripts.call("fenced_apply", keys, ["me", b"", 0, len(payload)]) == 0
    assert redis_client.get("a") == b"1" and not redis_client.exists(KS.staged_commit("me"))


def test_a_fan_out_s_commit_is_made_as_it_is_sent_and_reloads_whole(
        redis_client: redis.Redis, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit_module, "STAGED_COMMIT_BYTES", 50_000)
    members = [f"m{i}" for i in range(2500)]
    shape = GraphShape({"head": NodeShape("head", successors=["G"]),
                        "G": NodeShape("G", predecessors=["head"], members=members),
                        **{m: NodeShape(m) for m in members}})
    sched = Scheduler(shape, "big", epoch="e")
    record = RunRecord("big", status=RunStatus.RUNNING, graph_hash="g", queue=KS.queue_name)
    keys = KS.run("big")
    redis_client.hset(keys.meta, mapping=record.settings_meta())
    for cmd in shape_commands(keys.shape, shape):
        redis_client.execute_command(*cmd)
    redis_client.set(KS.leader, "me")
    for count, decision in enumerate([sched.start(), None]):
        if decision is None:
            (head,) = sched.inflight.values()
            decision = sched.complete(head.token, TaskOutcome())
        commit = Commit(KS)
        commit.frontier(keys, sched, sched.drain_journal())
        commit.jobs(record, decision.dispatch, 64, 2, shape)
        assert broker.apply(commit, "me", count) == 0
    assert any(isinstance(c, Deferred) for c in commit.commands)  # made while sent
    _record, _shape, loaded = load_run(redis_client, keys)
    assert {s.token for s in loaded.pending_tasks} == set(sched.inflight)
    assert redis_client.llen(KS.rq_queue(KS.queue_name)) == 1 + 2500 // 64 + 1
    assert not redis_client.exists(KS.staged_commit("me"))


# --- expire_run ----------------------------------------------------------------------------


def test_expire_run_expires_what_the_run_indexed_unless_submitted_again(
        redis_client: redis.Redis, broker: Broker) -> None:
    record = RunRecord("done", status=RunStatus.COMPLETED, graph_hash="gh", incarnation="i1")
    keys = KS.run("done")
    redis_client.hset(keys.meta, mapping=record.settings_meta())
    redis_client.sadd(keys.channel_index, "a", "never-written")
    redis_client.set(keys.channel("a"), "1")
    redis_client.set(keys.channel("unindexed"), "1")  # not the run's as far as we know
    redis_client.sadd(keys.feedback, "fb1")
    redis_client.hset(KS.feedback("fb1"), "request", "x")
    redis_client.zadd(KS.feedback_pending, {"fb1": 1.0})
    redis_client.set(KS.blob("gh"), "manifest")
    redis_client.set(KS.code("c1"), "blob")
    redis_client.zadd(KS.expiring_runs, {"done": 1.0, "other": 1.0})  # as its end left it
    again = RunRecord("done", incarnation="i2", graph_hash="gh")
    assert broker.runs.expire_many([(again, ["c1"])], 100) == [False]  # not this one
    assert redis_client.ttl(keys.channel("a")) == -1 and redis_client.ttl(keys.meta) == -1
    assert redis_client.zscore(KS.expiring_runs, "done") == 1.0  # looked at again later
    assert broker.runs.expire(record, 100, ["c1"]) is True
    assert redis_client.zrange(KS.expiring_runs, 0, -1) == [b"other"]
    for key in (keys.channel("a"), keys.meta, keys.channel_index, keys.feedback,
                KS.feedback("fb1"), KS.blob("gh"), KS.code("c1")):
        assert 0 < redis_client.ttl(key) <= 100, key
    assert redis_client.ttl(keys.channel("unindexed")) == -1
    assert redis_client.zscore(KS.feedback_pending, "fb1") is None


def test_expire_run_works_through_a_large_channel_index_in_bounded_calls(
        redis_client: redis.Redis, broker: Broker, scripts: Scripts) -> None:
    record = RunRecord("big", status=RunStatus.COMPLETED, incarnation="i1")
    keys = KS.run("big")
    redis_client.hset(keys.meta, mapping=record.settings_meta())
    names = [f"t{i}" for i in range(5000)]
    redis_client.sadd(keys.channel_index, *names)
    redis_client.mset({keys.channel(n): "1" for n in names})
    # One call expires a chunk and says where to go on; the index itself comes last.
    result, cursor = scripts.call(
        "expire_run", [keys.meta, keys.channel_index, keys.feedback, KS.expiring_runs],
        ["i1", 100, keys.channel_prefix, "0", 100, "big"])
    assert result == ExpireResult.MORE and cursor != b"0"
    assert 0 < sum(redis_client.ttl(keys.channel(n)) > 0 for n in names) < len(names)
    assert redis_client.ttl(keys.channel_index) == -1
    # Submitted again between two calls: the rest is live data, left alone.
    result, _ = scripts.call(
        "expire_run", [keys.meta, keys.channel_index, keys.feedback, KS.expiring_runs],
        ["i2", 100, keys.channel_prefix, cursor, 100, "big"])
    assert result == ExpireResult.RESUBMITTED
    assert broker.runs.expire(record, 100) is True  # calls until done
    assert all(0 < redis_client.ttl(keys.channel(n)) <= 100 for n in names)
    assert 0 < redis_client.ttl(keys.channel_index) <= 100


# --- prune_index ---------------------------------------------------------------------------


def test_index_entries_go_once_their_data_is_gone_a_bounded_number_per_call(
        redis_client: redis.Redis, broker: Broker) -> None:
    for i in range(7):
        redis_client.zadd(KS.all_runs, {f"s{i}": 100.0 + i})
    for live in ("s1", "s4"):  # still has its record
        redis_client.hset(KS.run(live).meta, RunField.STATUS, "running")
    redis_client.zadd(KS.all_runs, {"new": 500.0})  # too young to have expired
    redis_client.zadd(KS.feedback_index, {"gone": 100.0, "kept": 101.0})
    redis_client.hset(KS.feedback("kept"), "request", "{}")

    assert broker.indexes.prune(before=200.0, limit=3) == (3, True)  # s0, s2 and "gone"
    assert broker.indexes.prune(before=200.0, limit=3) == (2, True)  # on after s2: s3, s5
    assert broker.indexes.prune(before=200.0, limit=3) == (1, False)  # s6; then from the start
    assert redis_client.zrange(KS.all_runs, 0, -1) == [b"s1", b"s4", b"new"]
    assert redis_client.zrange(KS.feedback_index, 0, -1) == [b"kept"]
    assert broker.indexes.prune(before=200.0, limit=3) == (0, False)

    redis_client.delete(KS.all_runs)
    redis_client.set(KS.all_runs, "planted")
    with pytest.raises(WrongTypeError, match="prune_index"):
        broker.indexes.prune(before=200.0, limit=3)


# --- leader --------------------------------------------------------------------------------


def test_call_many_runs_a_script_per_call_in_one_round_trip_after_a_script_flush(
    redis_client: redis.Redis, scripts: Scripts
) -> None:
    scripts.call("extend", [KS.leases, KS.lease_owner], [5, WORKER])  # loaded by hash
    redis_client.script_flush()  # a Redis restart empties the script cache
    replies = scripts.call_many("extend", [([KS.leases, KS.lease_owner], [5, WORKER, "j1"]),
                                           ([KS.leases, KS.lease_owner], [5, WORKER])])
    assert replies == [[b"j1"], []]  # not held: named lost
    redis_client.set(KS.leases, "planted")
    with pytest.raises(WrongTypeError, match="extend"):
        scripts.call_many("extend", [([KS.leases, KS.lease_owner], [5, WORKER, "j1"])])


def test_leader_acquire_and_release(redis_client: redis.Redis, scripts: Scripts,
                                    broker: Broker) -> None:
    keys = [KS.leader, KS.leader_epoch]
    first, note = scripts.call("leader_acquire", keys, ["a", 5000])
    assert (first, note) == (1, b"")
    assert scripts.call("leader_acquire", keys, ["a", 5000]) == [first, b""]  # renewal
    assert scripts.call("leader_acquire", keys, ["b", 5000]) == [LeaderResult.NOT_ACQUIRED,
                                                                 b""]
    assert scripts.call("leader_release", [KS.leader], ["b"]) == LeaderResult.NOT_HELD
    assert scripts.call("leader_release", [KS.leader], ["a"]) == LeaderResult.RELEASED
    assert broker.leader.acquire("b", 5) == 2  # a new leader: a new fencing epoch
    assert broker.leader.holder() == "b"
    assert 4000 < redis_client.pttl(KS.leader) <= 5000


# --- claim / extend / finish / fail_job -------------------------------------------------------


def test_claim_an_empty_queue(redis_client: redis.Redis, broker: Broker) -> None:
    assert _claimer(broker).claim(3) == []
    assert redis_client.llen(KS.wake(KS.queue_name)) == 0


def test_claim_leases_jobs_and_reports_their_run_status(redis_client: redis.Redis,
                                                        broker: Broker) -> None:
    running = _enqueue(redis_client, "s1", ["e.1", "e.2"])
    expired = _enqueue(redis_client, "gone", ["e.3"], meta=False)
    superseded = _enqueue(redis_client, "s2", ["e.4"], incarnation="old")
    redis_client.hset(KS.run("s2").meta, RunField.INCARNATION, "new")
    redis_client.rpush(KS.rq_queue(KS.queue_name), "no-such-job")  # data missing: skipped
    redis_client.rpush(KS.rq_queue(KS.queue_name), "left-over")
    before = time.time()
    claimed = _claimer(broker).claim(5)
    assert [c.job_id for c in claimed] == [*running, *expired, *superseded]
    assert [c.run_status for c in claimed] == [RunStatus.RUNNING, RunStatus.RUNNING, None,
                                               RunStatus.SUPERSEDED]
    assert all(c.batch is not None and c.batch.specs[0].task_id == "t" for c in claimed)
    for job_id in running:
        assert before + 4 < redis_client.zscore(KS.leases, job_id) <= time.time() + 5
        assert redis_client.hget(KS.lease_owner, job_id) == WORKER.encode()
        assert redis_client.hget(KS.rq_job(job_id), JobField.STATUS) == b"started"
        assert redis_client.zscore(KS.rq_wip(KS.queue_name), f"{job_id}:{WORKER}") is not None
    assert redis_client.hget(KS.run("s1").meta, RunField.RUNNING) == b"2"
    assert not redis_client.exists(KS.run("gone").meta), "an expired run was recreated"
    assert redis_client.hget(RQ_WORKER_KEY, "state") == b"busy"
    # One job is left: the next idle worker is woken.
    assert redis_client.llen(KS.rq_queue(KS.queue_name)) == 1
    assert redis_client.lrange(KS.wake(KS.queue_name), 0, -1) == [b"1"]


def test_a_claimed_job_with_bad_data_comes_back_with_the_reason(redis_client: redis.Redis,
                                                                broker: Broker) -> None:
    redis_client.hset(KS.rq_job("bad"), mapping={JobField.DATA: b"\xc1"})
    redis_client.rpush(KS.rq_queue(KS.queue_name), "bad")
    [job] = _claimer(broker).claim(1)
    assert job.batch is None and "rq job bad" in job.error


def test_extend_renews_own_leases_and_names_lost_ones(redis_client: redis.Redis,
                                                      broker: Broker) -> None:
    mine, theirs = _enqueue(redis_client, "s1", ["e.1", "e.2"])
    claimer = _claimer(broker, lease_s=1.0)
    claimer.claim(1)
    _claimer(broker, worker="w2").claim(1)
    old = redis_client.zscore(KS.leases, mine)
    time.sleep(0.02)
    pipe = redis_client.pipeline()
    claimer.queue_extend([mine, theirs], pipe)
    [lost] = pipe.execute()
    assert lost == [theirs.encode()]
    assert redis_client.zscore(KS.leases, mine) > old


def test_finish_releases_only_an_owned_lease(redis_client: redis.Redis, broker: Broker) -> None:
    [job_id] = _enqueue(redis_client, "s1", ["e.1"])
    claimer = _claimer(broker)
    claimer.claim(1)
    assert not _claimer(broker, worker="w2").finish(job_id)  # LEASE_LOST: nothing changes
    assert redis_client.zscore(KS.leases, job_id) is not None
    assert claimer.finish(job_id)  # RELEASED
    for key in (KS.leases, KS.rq_wip(KS.queue_name)):
        assert redis_client.zcard(key) == 0
    assert not redis_client.exists(KS.rq_job(job_id))
    assert redis_client.hget(KS.run("s1").meta, RunField.RUNNING) == b"0"
    assert redis_client.hget(RQ_WORKER_KEY, "successful_job_count") == b"1"
    assert claimer.scripts.call("finish", [KS.leases, KS.lease_owner, KS.jobmap,
                                           RQ_WORKER_KEY], [job_id, WORKER]) \
        == LeaseResult.LEASE_LOST


def test_release_and_claim_reports_releases_and_claims_the_next_job_in_one_step(
    redis_client: redis.Redis, broker: Broker
) -> None:
    first, second = _enqueue(redis_client, "s1", ["e.1", "e.2"])
    claimer = _claimer(broker)
    claimer.claim(1)
    released, [claimed] = claimer.release_and_claim(
        [Event(DONE, "s1", token="e.1", task_id="t")], first)
    assert released and claimed.job_id == second and claimed.batch is not None
    assert redis_client.zscore(KS.leases, first) is None  # released...
    assert redis_client.hget(KS.lease_owner, second) == WORKER.encode()  # ...and held
    assert redis_client.hget(KS.run("s1").meta, RunField.RUNNING) == b"1"
    [entry] = broker.events.read("0-0", 10, 1)
    assert entry.event.token == "e.1"
    # Nothing left: the job is released, nothing claimed; a lease no longer ours is
    # said so, and the queue is still read.
    third, = _enqueue(redis_client, "s1", ["e.3"])
    assert not _claimer(broker, worker="w2").release_and_claim([], second)[0]
    assert redis_client.hget(KS.lease_owner, second) == WORKER.encode()
    assert claimer.release_and_claim([], second) == (True, [])
    assert redis_client.hget(KS.lease_owner, third) == b"w2"


def test_fail_job_moves_it_to_the_failed_registry(redis_client: redis.Redis,
                                                  broker: Broker) -> None:
    [job_id] = _enqueue(redis_client, "s1", ["e.1"])
    claimer = _claimer(broker)
    claimer.claim(1)
    args = [job_id, "w2", "why", "now"]
    keys = [KS.leases, KS.lease_owner, KS.jobmap, RQ_WORKER_KEY, KS.rq_failed(KS.queue_name)]
    assert claimer.scripts.call("fail_job", keys, args) == LeaseResult.LEASE_LOST
    assert claimer.scripts.call("fail_job", keys, [job_id, WORKER, "why", "now"]) \
        == LeaseResult.RELEASED
    assert redis_client.zscore(KS.rq_failed(KS.queue_name), job_id) > time.time() + 86400
    assert redis_client.hget(KS.rq_job(job_id), JobField.EXC_INFO) == b"why"
    assert redis_client.zscore(KS.leases, job_id) is None
    assert redis_client.hget(KS.run("s1").meta, RunField.RUNNING) == b"0"


# --- reap_mark / lease_grace ---------------------------------------------------------------


def test_reap_marks_expired_leases(redis_client: redis.Redis, broker: Broker) -> None:
    expired, live = _enqueue(redis_client, "s1", ["e.1", "e.2"])
    _claimer(broker, lease_s=0.01).claim(1)
    _claimer(broker, lease_s=30, worker="w2").claim(1)
    time.sleep(0.05)
    assert broker.reaper.reap("me") is None  # NOT_LEADER
    redis_client.set(KS.leader, "me")
    [job] = broker.reaper.reap("me")
    assert (job.job_id, job.owner, job.session_id, job.tokens) == (expired, WORKER, "s1",
                                                                    ["e.1"])
    assert redis_client.hget(KS.lease_owner, expired) == REAPER.encode()
    assert redis_client.zscore(KS.leases, expired) == 0
    assert redis_client.hget(KS.run("s1").meta, RunField.RUNNING) == b"1"  # only `live`
    # Marked once: a second pass returns it again (its re-dispatch was not committed),
    # without counting it twice.
    [again] = broker.reaper.reap("me")
    assert (again.job_id, again.owner) == (expired, REAPER)
    assert redis_client.hget(KS.run("s1").meta, RunField.RUNNING) == b"1"
    assert redis_client.hget(KS.lease_owner, live) == b"w2"


def test_reap_reports_an_unreadable_jobmap_entry(redis_client: redis.Redis,
                                                 broker: Broker) -> None:
    redis_client.set(KS.leader, "me")
    redis_client.zadd(KS.leases, {"j": 1})
    redis_client.hset(KS.jobmap, "j", b"\x01garbage")
    [job] = broker.reaper.reap("me")
    assert job.session_id is None and "jobmap entry of j" in job.error


def test_lease_grace(redis_client: redis.Redis, broker: Broker) -> None:
    short, reaped = _enqueue(redis_client, "s1", ["e.1", "e.2"])
    _claimer(broker, lease_s=0.01).claim(2)
    redis_client.hset(KS.lease_owner, reaped, REAPER)
    assert broker.reaper.grant_grace("me", 10.0) is None  # NOT_LEADER
    redis_client.set(KS.leader, "me")
    assert broker.reaper.scripts.call("lease_grace", [KS.leader, KS.leases, KS.lease_owner],
                                      ["nobody", 10]) == ReapResult.NOT_LEADER
    assert broker.reaper.grant_grace("me", 10.0) == 1  # the reaped lease is left alone
    # its own lease length (0.01 s, recorded by the claim), not the default
    assert redis_client.zscore(KS.leases, short) <= time.time() + 1


def test_jobs_carry_the_timeouts_of_their_own_tasks(redis_client: redis.Redis,
                                                    broker: Broker) -> None:
    record = RunRecord("s1", graph_hash="g", queue=KS.queue_name, incarnation="i1")
    redis_client.hset(KS.run("s1").meta, mapping=record.settings_meta())
    specs = [TaskSpec("slow", "e.1"), TaskSpec("plain", "e.2"), TaskSpec("other", "e.3")]
    pipe = redis_client.pipeline()
    # 6 ready tasks for one worker: jobs of 2 (see batch_size)
    specs += [TaskSpec(f"more{i}", f"e.{i}") for i in range(4, 7)]
    for cmd in job_commands(KS, record, specs, 2, 1, {"slow": 4.0, "other": 1.5,
                                                        "absent": 9.0}):
        pipe.execute_command(*cmd)
    pipe.execute()
    batches = [job.batch for job in _claimer(broker).claim(5)]
    assert [[s.task_id for s in b.specs] for b in batches if b] == [
        ["slow", "plain"], ["other", "more4"], ["more5", "more6"]]
    assert [b.timeouts for b in batches if b] == [{"slow": 4.0}, {"other": 1.5}, {}]


def test_run_statuses_in_one_round_trip(redis_client: redis.Redis, broker: Broker) -> None:
    _enqueue(redis_client, "live", ["e.1"])
    _enqueue(redis_client, "over", ["e.2"], status=RunStatus.CANCELLED)
    redis_client.hset(KS.run("odd").meta, RunField.STATUS, "???")
    assert broker.runs.statuses(["live", "over", "odd", "gone"]) == {
        "live": RunStatus.RUNNING, "over": RunStatus.CANCELLED, "odd": None, "gone": None}


# --- channel_push --------------------------------------------------------------------


def test_channel_push_applies_each_write_once_and_refuses_other_types(
        redis_client: redis.Redis, scripts: Scripts) -> None:
    run = KS.run("s1")
    keys = [run.channel("log"), run.channel_index, run.channel_write("w1")]
    assert scripts.call("channel_push", keys, ["log", "a", 0, "", 60]) == 1
    # Sent again (its reply lost): the mark says it landed; nothing is pushed twice.
    assert scripts.call("channel_push", keys, ["log", "a", 0, "", 60]) == 1
    # The next write deletes the mark of the one before (its reply came).
    other = [run.channel("log"), run.channel_index, run.channel_write("w2"),
             run.channel_write("w1")]
    assert scripts.call("channel_push", other, ["log", "z", 1, "30", 60]) == 2
    assert not redis_client.exists(run.channel_write("w1"))
    assert redis_client.lrange(run.channel("log"), 0, -1) == [b"z", b"a"]
    assert 0 < redis_client.ttl(run.channel("log")) <= 30
    assert 0 < redis_client.ttl(run.channel_write("w2")) <= 60
    assert redis_client.smembers(run.channel_index) == {b"log"}
    redis_client.set(run.channel("value"), "v")
    with pytest.raises(WrongTypeError, match="holds a string"):
        scripts.call("channel_push", [run.channel("value"), run.channel_index,
                                      run.channel_write("w3")], ["value", "b", 0, "", 60])
    assert redis_client.smembers(run.channel_index) == {b"log"}
    assert not redis_client.exists(run.channel_write("w3"))
