"""Bad input reaching the cluster: unknown sessions, malformed queue messages, forged
graph blobs. Each fails clearly and leaves the cluster working."""

from __future__ import annotations

import os
import signal
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
import structlog

from graflow_dist import Client, parallel, task, workflow
from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.embedded.redis_server import RedisServer
from graflow_dist.errors import GraflowError, RunTimeoutError, UnknownSessionError
from graflow_dist.wire.messages import JOB_FUNC, WIRE_VERSION
from graflow_dist.wire.signing import dumps_signed

RUN_TIMEOUT_S = 60


def test_attaching_to_an_unknown_session_raises(client: Client) -> None:
    with pytest.raises(UnknownSessionError, match="no-such-session") as raised:
        client.attach("no-such-session")
    assert raised.value.session_id == "no-such-session"


MALFORMED_JOB_DATA = [
    pytest.param(b"\x00garbage: neither zlib nor msgpack\xff\xfe", id="garbage"),
    pytest.param(zlib.compress(msgpack.packb({"hello": "world"})), id="msgpack-map"),
    pytest.param(zlib.compress(msgpack.packb(["os.system", None, ["echo pwned"], {}])),
                 id="rq-shaped-foreign-function"),
    pytest.param(msgpack.packb([JOB_FUNC, None, [{"v": WIRE_VERSION + 1, "s": "x", "g": "y",
                                                   "specs": []}], {}]),
                 id="unknown-wire-version"),
]


def test_waiting_without_a_coordinator_says_so(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A run on a Redis no coordinator serves never ends: ``wait`` says why, once, when
    the run has not ended after a while (the CLI says so at once itself)."""
    monkeypatch.setattr("graflow_dist.client.UNPICKED_WARNING_S", 0.2)
    with workflow("no-coordinator") as wf:

        @task
        def only() -> int:
            return 1

    with RedisServer(dir=tmp_path / "redis") as server, Client(server.url) as client:
        run = client.submit(wf)
        with structlog.testing.capture_logs() as logs, pytest.raises(RunTimeoutError):
            run.wait(timeout=1.5)
        warnings = [e for e in logs if "no coordinator is running" in e["event"]]
        assert len(warnings) == 1 and warnings[0]["session"] == run.session_id
        assert "prefix 'graflow'" in warnings[0]["event"]
        asked = client.attach(run.session_id)
        assert asked.coordinator_missing()  # the caller tells the user: wait does not
        with structlog.testing.capture_logs() as logs, pytest.raises(RunTimeoutError):
            asked.wait(timeout=0.5)
        assert not [e for e in logs if "no coordinator" in e["event"]]


@pytest.mark.parametrize("data", MALFORMED_JOB_DATA)
def test_malformed_job_is_failed_and_the_worker_keeps_working(
    shared_cluster: LocalCluster,
    client: Client,
    raw_redis: redis.Redis,
    keyspace: Keyspace,
    wait_until: Callable[..., Any],
    read_worker_logs: Callable[[LocalCluster], str],
    data: bytes,
) -> None:
    queue = keyspace.queue_name
    job_id = f"bogus-{uuid.uuid4().hex}"
    raw_redis.hset(keyspace.rq_job(job_id), mapping={
        "data": data, "status": "queued", "origin": queue, "description": "not ours"})
    raw_redis.rpush(keyspace.rq_queue(queue), job_id)
    raw_redis.lpush(keyspace.wake(queue), 1)  # what an enqueue does to wake idle workers

    failed = keyspace.rq_failed(queue)
    wait_until(lambda: raw_redis.zscore(failed, job_id) is not None,
               f"job {job_id} in {failed}")
    job = {k.decode(): v.decode(errors="replace")
           for k, v in raw_redis.hgetall(keyspace.rq_job(job_id)).items()}
    assert job["status"] == "failed"
    assert job_id in job["exc_info"]
    assert job_id.encode() not in raw_redis.lrange(keyspace.rq_queue(queue), 0, -1)
    assert raw_redis.zscore(keyspace.leases, job_id) is None
    worker_name = job["worker_name"]
    assert int(raw_redis.hget(f"rq:worker:{worker_name}", "failed_job_count")) >= 1
    wait_until(lambda: any(job_id in line and "malformed job" in line
                           for line in read_worker_logs(shared_cluster).splitlines()),
               f"a worker log line about the malformed job {job_id}")
    # The worker that rejected it is still running and registered.
    rejecting_pid = int(worker_name.rsplit("-", 2)[-2])
    assert rejecting_pid in {w.pid for w in shared_cluster.workers if w.alive()}
    assert raw_redis.zscore(keyspace.workers, worker_name) is not None

    # The cluster still runs workflows.
    with workflow("after-malformed-job") as wf:

        def member(i: int) -> Any:
            @task(f"member_{i}")
            def run() -> int:
                return os.getppid()  # the worker service whose executor runs it

            return run

        @task(inject_context=True)
        def workers(ctx: Any) -> list[int]:
            return sorted({ctx.get_result(f"member_{i}") for i in range(16)})

        parallel(*[member(i) for i in range(16)]) >> workers

    run = client.submit(wf)
    assert set(run.wait(timeout=RUN_TIMEOUT_S)) <= {w.pid for w in shared_cluster.workers}
    assert all(w.alive() for w in shared_cluster.workers)


class TouchOnUnpickle:
    """Unpickling this creates a directory: proof that a blob was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("forgery", ["other-secret", "flipped-byte"])
def test_forged_code_blob_fails_the_run_without_unpickling(
    shared_cluster: LocalCluster,
    client: Client,
    raw_redis: redis.Redis,
    keyspace: Keyspace,
    tmp_path: Path,
    forgery: str,
) -> None:
    marker = tmp_path / "unpickled"
    with workflow("forged") as wf:

        @task(f"victim_{forgery.replace('-', '_')}")
        def victim() -> str:
            return "must not run"

    # Pause the workers so no job runs before the blob is replaced (a fresh run's first
    # job is queued by the client itself).
    for worker in shared_cluster.workers:
        worker.signal_group(signal.SIGSTOP)
    try:
        run = client.submit(wf)
        task_id = f"victim_{forgery.replace('-', '_')}"
        code = client.broker.runs.node_shapes(run.session_id, [task_id])[task_id].code
        key = keyspace.code(code)
        genuine = raw_redis.get(key)
        assert genuine is not None
        if forgery == "other-secret":
            forged = dumps_signed(TouchOnUnpickle(marker), secret=b"not the cluster's secret")
        else:
            flipped = bytearray(genuine)
            flipped[len(flipped) // 2] ^= 0x01
            forged = bytes(flipped)
        raw_redis.set(key, forged, keepttl=True)
    finally:
        for worker in shared_cluster.workers:
            worker.signal_group(signal.SIGCONT)

    with pytest.raises(GraflowError, match="signature does not verify") as raised:
        run.wait(timeout=RUN_TIMEOUT_S)
    assert f"graph {run.info()['graph_hash']}" in str(raised.value)
    assert run.status() == "failed"
    assert run.get_result(f"victim_{forgery.replace('-', '_')}") is None
    assert not marker.exists(), "a forged blob was unpickled"
    assert all(w.alive() for w in shared_cluster.workers)
