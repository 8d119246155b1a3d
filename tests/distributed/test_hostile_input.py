"""Issue 8's cases on a live cluster, one test each: an attacker who can write to Redis
but does not know the secret, and damaged data. Each is refused with a clear reason and
the services keep running (same PIDs); the runs it did not touch complete."""

from __future__ import annotations

import os
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
from clusters import WORKER_OPTIONS, coordinator_options

import graflow_dist.broker.submission as submission_module
from graflow_dist import Client, TaskExecutionContext, task, workflow
from graflow_dist.broker.keys import EVENT_FIELD, Keyspace, RunField
from graflow_dist.core.context import ExecutionContext
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import (
    CheckpointWarning,
    GraflowError,
    InvalidNameError,
    PayloadTooLargeError,
)
from graflow_dist.wire.messages import DONE, JOB_FUNC, WIRE_VERSION, Batch, Event, packb
from graflow_dist.wire.signing import seal

RUN_TIMEOUT_S = 60


def _pids(cluster: LocalCluster) -> list[int]:
    return [s.pid for s in [*cluster.coordinators, *cluster.workers]]


def _all_alive(cluster: LocalCluster, pids: list[int]) -> None:
    assert _pids(cluster) == pids
    assert all(s.alive() for s in [*cluster.coordinators, *cluster.workers])


def slow_then_next(name: str, seconds: float) -> Any:
    """``first >> second``: ``first`` sleeps (so its dispatch token sits in Redis for
    a while) and returns "genuine"; ``second`` returns what it got."""
    with workflow(name) as wf:

        @task
        def first() -> str:
            time.sleep(seconds)
            return "genuine"

        @task
        def second(first: str) -> str:
            return f"second got {first}"

        first >> second
    return wf


def _pending_token(raw: redis.Redis, keyspace: Keyspace, session_id: str,
                   wait_until: Callable[..., Any]) -> str:
    pending = wait_until(lambda: raw.hgetall(keyspace.run(session_id).pending),
                         "a pending task")
    return msgpack.unpackb(next(iter(pending.values())))[1]


def test_a_forged_completion_is_dead_lettered_and_never_feeds_the_next_task(
    shared_cluster: LocalCluster, client: Client, raw_redis: redis.Redis,
    keyspace: Keyspace, wait_until: Callable[..., Any],
) -> None:
    pids = _pids(shared_cluster)
    run = client.submit(slow_then_next("forged-report", 1.5))
    token = _pending_token(raw_redis, keyspace, run.session_id, wait_until)
    forged = Event(DONE, run.session_id, token=token, task_id="first",
                   result=b"m" + msgpack.packb("forged"))
    body = forged.encode()[4 + 32:]  # what a writer without the secret can produce
    raw_redis.xadd(keyspace.events, {EVENT_FIELD: body})
    raw_redis.xadd(keyspace.events, {EVENT_FIELD: forged.encode(secret=b"k" * 40)})
    assert run.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    reasons = [d["reason"].decode() for d in client.broker.events.dead_letters(10)]
    assert any("unsigned message" in r for r in reasons), reasons
    assert any("does not verify" in r for r in reasons), reasons
    _all_alive(shared_cluster, pids)


def test_a_submission_event_carrying_a_malformed_run_falls_back_to_redis(
    shared_cluster: LocalCluster, client: Client, monkeypatch: pytest.MonkeyPatch,
    wait_until: Callable[..., Any],
) -> None:
    """A small run travels whole in its (signed) submission event; if what it carries
    does not decode, the coordinator reads the run from Redis, and it runs."""
    real = submission_module.started_body

    def broken(*args: Any) -> dict[str, Any]:
        body = real(*args)
        body["fr"]["session_id"] = "f" * 32
        return body

    monkeypatch.setattr(submission_module, "started_body", broken)
    pids = _pids(shared_cluster)
    run = client.submit(slow_then_next("malformed-submission", 0.0))
    assert run.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    log = Path(shared_cluster.coordinator.log_path)
    wait_until(lambda: "submission event unusable" in log.read_text(errors="replace")
               and run.session_id in log.read_text(errors="replace"), "the warning")
    _all_alive(shared_cluster, pids)


def test_a_signed_completion_whose_outcome_is_not_a_map_is_dead_lettered(
    shared_cluster: LocalCluster, client: Client, raw_redis: redis.Redis,
    keyspace: Keyspace,
) -> None:
    pids = _pids(shared_cluster)
    body = {"v": WIRE_VERSION, "k": "done", "s": "abc", "t": "e.1", "o": [1, 2]}
    raw_redis.xadd(keyspace.events, {EVENT_FIELD: seal(packb(body))})
    run = client.submit(slow_then_next("after-bad-outcome", 0.0))
    assert run.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    assert any(b"expected a map" in d["reason"] for d in client.broker.events.dead_letters(10))
    _all_alive(shared_cluster, pids)


BOMB_EXPANDED = 256 * 2**20


@pytest.fixture(scope="module")
def zlib_bomb() -> bytes:
    """256 MiB of zeros in ~260 KB (the issue's bomb was 4.2 GB in 2 MB)."""
    packer = zlib.compressobj(9)
    chunk = bytes(2**20)
    return b"".join(packer.compress(chunk) for _ in range(BOMB_EXPANDED // 2**20)) \
        + packer.flush()


@pytest.mark.parametrize("data", [
    pytest.param(lambda bomb: bomb, id="zlib-bomb"),
    pytest.param(lambda _b: packb([JOB_FUNC, None, [{"v": 1, "s": "x", "g": "h", "specs": [
        ["t", "e.1", "x", 1, 0, None, 0.0]]}], {}]), id="cycle-x"),
    pytest.param(lambda _b: packb([JOB_FUNC, None, [{"v": 1, "s": "x", "g": "h", "specs": [
        ["t", "e.1", None, 1, 0, None, 0.0]]}], {}]), id="cycle-none"),
    pytest.param(lambda _b: packb([JOB_FUNC, None, [{"v": 1, "s": "x", "g": "h", "specs": [
        ["t", "e.1", float("inf"), 1, 0, None, 0.0]]}], {}]), id="cycle-inf"),
    pytest.param(lambda _b: packb([JOB_FUNC, None, [{"v": 1, "s": "*", "g": "h",
                                                      "specs": []}], {}]), id="session-glob"),
])
def test_garbage_jobs_go_to_the_failed_registry_and_workers_keep_running(
    shared_cluster: LocalCluster, client: Client, raw_redis: redis.Redis,
    keyspace: Keyspace, wait_until: Callable[..., Any], zlib_bomb: bytes,
    data: Callable[[bytes], bytes],
) -> None:
    pids = _pids(shared_cluster)
    job_id = f"garbage-{uuid.uuid4().hex[:8]}"
    queue = keyspace.queue_name
    raw_redis.hset(keyspace.rq_job(job_id), mapping={"data": data(zlib_bomb), "origin": queue})
    raw_redis.rpush(keyspace.rq_queue(queue), job_id)
    raw_redis.lpush(keyspace.wake(queue), 1)
    wait_until(lambda: raw_redis.zscore(keyspace.rq_failed(queue), job_id) is not None,
               f"{job_id} in the failed registry")
    assert job_id.encode() in raw_redis.hget(keyspace.rq_job(job_id), "exc_info")
    run = client.submit(slow_then_next(f"after-{job_id}", 0.0))
    assert run.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    _all_alive(shared_cluster, pids)


def test_a_zlib_bomb_is_refused_without_being_decompressed(zlib_bomb: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(GraflowError, match="rq job bomb"):
            Batch.from_job_data(zlib_bomb, "bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"decoding the bomb took {peak} bytes"


@pytest.mark.parametrize("planted", ["jobmap", "leases", "lease_owner", "events", "workers"])
def test_deployment_keys_replaced_by_a_string_are_quarantined_while_runs_proceed(
    shared_cluster: LocalCluster, client: Client, raw_redis: redis.Redis,
    keyspace: Keyspace, wait_until: Callable[..., Any], planted: str,
) -> None:
    pids = _pids(shared_cluster)
    key = getattr(keyspace, planted)
    run = client.submit(slow_then_next(f"while-{planted}-planted", 0.5))
    # (replacing the stream before the coordinator read the submission would delete it)
    wait_until(lambda: run.status() == "running", "the run started")
    raw_redis.delete(key)
    raw_redis.set(key, "planted by someone else")
    assert run.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    again = client.submit(slow_then_next(f"after-{planted}-planted", 0.0))
    assert again.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    moved = wait_until(lambda: [k for k in raw_redis.scan_iter(
        match=keyspace.quarantine_head + "*") if k.decode().endswith(key)],
        f"{key} quarantined")
    assert raw_redis.get(moved[0]) == b"planted by someone else"
    _all_alive(shared_cluster, pids)


def test_a_session_id_that_is_a_glob_or_a_path_is_refused_at_the_edge(
    client: Client, raw_redis: redis.Redis,
) -> None:
    with workflow("victim") as wf:

        @task
        def only() -> int:
            return 1

    victim = client.submit(wf)
    assert victim.wait(timeout=RUN_TIMEOUT_S) == 1
    before = set(raw_redis.keys("*"))
    for hostile in ("*", "../../..", "a:b"):
        ctx = ExecutionContext(wf.graph, session_id=hostile)
        with pytest.raises(InvalidNameError, match="invalid session id"):
            client.submit(ctx)
        with pytest.raises(InvalidNameError, match="invalid session id"):
            client.attach(hostile)
    assert set(raw_redis.keys("*")) == before
    assert victim.get_result("only") == 1


def test_checkpoint_paths_outside_the_checkpoint_dir_are_refused(
    shared_cluster: LocalCluster, client: Client, tmp_path: Path,
) -> None:
    outside = tmp_path / "escaped"
    with RedisServer(dir=tmp_path / "other-redis") as other:
        for requested in ("../../escaped", str(outside), f"{other.url}/ck/stolen"):
            with workflow(f"escape-{uuid.uuid4().hex[:6]}") as wf:

                @task(inject_context=True)
                def escape(ctx: TaskExecutionContext, _path: str = requested) -> str:
                    ctx.checkpoint(path=_path)
                    return "done"

            run = client.submit(wf)
            with pytest.warns(CheckpointWarning, match="refused"):
                assert run.wait(timeout=RUN_TIMEOUT_S) == "done"
            info = run.info()  # noted with the run's end, not after it
            assert "refused" in info["checkpoint_error"], requested
            assert info["last_checkpoint"] is None
        with redis.Redis.from_url(other.url) as foreign:
            assert foreign.dbsize() == 0, "run data was copied to another Redis"
    assert not outside.exists() and not list(tmp_path.glob("**/*.pkl"))


def test_a_run_record_with_max_steps_abc_fails_that_run_only(
    cluster: LocalCluster, wait_until: Callable[..., Any],
) -> None:
    """The case that crashed every coordinator at start: the leader and a standby
    started afterwards both stay up; the damaged run fails with the field named."""
    pids = _pids(cluster)
    keyspace = Keyspace.from_env()
    raw = cluster.client
    with Client(cluster.url) as client:
        paused = client.submit(slow_then_next("damaged-record", 3.0))
        raw.hset(keyspace.run(paused.session_id).meta, RunField.MAX_STEPS, "abc")
        raw.sadd(keyspace.active_runs, "\xff not a session", "*")
        cluster.coordinator.kill()  # the standby loads the damaged record on takeover
        standby = cluster.add_coordinator()
        wait_until(lambda: cluster.leader() is standby, "the standby leading")
        with pytest.raises(GraflowError, match="max_steps"):
            paused.wait(timeout=RUN_TIMEOUT_S)
        fine = client.submit(slow_then_next("after-damaged-record", 0.0))
        assert fine.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    assert standby.alive() and all(w.alive() for w in cluster.workers)
    assert [w.pid for w in cluster.workers] == pids[1:]
    assert raw.smembers(keyspace.active_runs) <= {fine.session_id.encode()}


def test_an_active_run_whose_record_is_of_the_wrong_type_stops_no_takeover(
    cluster: LocalCluster, wait_until: Callable[..., Any],
) -> None:
    """Found by the poison soak: an active session (here "nan") whose record key holds a
    string made every takeover fail on reading its status, so no run progressed."""
    keyspace = Keyspace.from_env()
    raw = cluster.client
    raw.sadd(keyspace.active_runs, "nan")
    raw.set(keyspace.run("nan").meta, "planted")
    cluster.coordinator.kill()
    standby = cluster.add_coordinator()
    wait_until(lambda: cluster.leader() is standby, "the standby leading")
    with Client(cluster.url) as client:
        fine = client.submit(slow_then_next("beside-a-planted-record", 0.0))
        assert fine.wait(timeout=RUN_TIMEOUT_S) == "second got genuine"
    moved = [k for k in raw.scan_iter(match=keyspace.quarantine_head + "*")
             if k.decode().endswith(keyspace.run("nan").meta)]
    assert [raw.get(k) for k in moved] == [b"planted"]
    assert standby.alive()


def test_results_and_channel_values_over_the_limits_fail_their_task_cleanly(
    redis_url: str, tmp_path: Path,
) -> None:
    limits = {"GRAFLOW_DIST_MAX_RESULT_BYTES": str(2**20),
              "GRAFLOW_DIST_MAX_VALUE_BYTES": str(2**20)}
    with workflow("too-large") as big:

        @task
        def produce() -> bytes:
            return os.urandom(3 * 2**20)

        @task("fill", inject_context=True)
        def fill(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().set("blob", b"x" * (2 * 2**20))
            return "unreachable"

    with workflow("fits") as small:

        @task
        def tiny() -> int:
            return 7

    with LocalCluster(2, redis_url=redis_url, data_dir=str(tmp_path / "svc"),
                      worker_options=WORKER_OPTIONS, env=limits,
                      coordinator_options=coordinator_options(tmp_path)) as cluster, \
            Client(cluster.url) as client:
        pids = _pids(cluster)
        for start, what in (("produce", "the result of task 'produce'"),
                            ("fill", "key 'blob'")):
            run = client.submit(big, start_node=start)
            with pytest.raises(GraflowError, match="external storage") as raised:
                run.wait(timeout=RUN_TIMEOUT_S)
            assert what in str(raised.value) and f"task '{start}'" in str(raised.value)
            assert run.info()["failed"] == 1  # no retries: it would be as large again
        assert client.submit(small).wait(timeout=RUN_TIMEOUT_S) == 7
        _all_alive(cluster, pids)


@pytest.mark.slow
def test_a_600_mb_result_fails_its_task_and_wedges_no_worker(
    redis_url: str, tmp_path: Path,
) -> None:
    with workflow("huge") as huge:

        @task
        def enormous() -> bytes:
            return bytes(600 * 2**20)

    with workflow("after-huge") as after:

        @task
        def small() -> str:
            return "still working"

    with LocalCluster(2, redis_url=redis_url, data_dir=str(tmp_path / "svc"),
                      worker_options=WORKER_OPTIONS,
                      coordinator_options=coordinator_options(tmp_path)) as cluster, \
            Client(cluster.url) as client:
        pids = _pids(cluster)
        with pytest.raises(PayloadTooLargeError, match="enormous.*600.0 MiB"):
            client.submit(huge).wait(timeout=RUN_TIMEOUT_S)
        assert client.submit(after).wait(timeout=RUN_TIMEOUT_S) == "still working"
        _all_alive(cluster, pids)
