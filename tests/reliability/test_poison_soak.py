"""The poison soak: random garbage shaped like every kind of entry (the same keys and
fields, wrong values; now and then a key of the wrong type) written into a live
deployment of two coordinators and two workers while runs proceed. Afterwards every
service is still up with the same PID, a coordinator restarted then stays up, and new
runs complete. Runs whose own data was poisoned may fail; nothing else may."""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import msgpack
import redis

from graflow_dist import Client, TaskExecutionContext, parallel, task, workflow
from graflow_dist.broker.keys import EVENT_FIELD, JobField, Keyspace, RunField
from graflow_dist.errors import GraflowError
from graflow_dist.names import is_session_id
from graflow_dist.wire.messages import JOB_FUNC, WIRE_VERSION, Event, packb
from graflow_dist.wire.signing import seal
from reliability.harness import FaultCluster, wait_for

SEED = int(os.environ.get("GRAFLOW_DIST_POISON_SEED", "8"))
POISON_S = 15.0
RUN_TIMEOUT_S = 60.0


def fan_workflow(tag: str) -> Any:
    with workflow(f"soak-{tag}") as wf:

        def member(i: int) -> Any:
            @task(f"m{i}", inject_context=True)
            def run(ctx: TaskExecutionContext) -> int:
                ctx.get_channel().append("seen", i)
                time.sleep(0.02)
                return i

            return run

        @task(inject_context=True)
        def join(ctx: TaskExecutionContext) -> int:
            return sum(ctx.get_result(f"m{i}") for i in range(4))

        parallel(*[member(i) for i in range(4)]) >> join
    return wf


class Poisoner:
    """Writes garbage into every key of the deployment, shaped like its entries."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace, seed: int) -> None:
        self.r = client
        self.ks = keyspace
        self.rng = random.Random(seed)
        self.writes = 0

    def junk(self) -> Any:
        rng = self.rng
        return rng.choice([
            rng.randbytes(rng.randint(0, 40)), b"abc", b"-1", b"nan", b"inf", b"1e999",
            b"\xff\xfe", b"", b"*", b"../../x", str(rng.random()).encode(),
            packb({"v": WIRE_VERSION, "k": "done", "s": "abc", "o": [1]}),
            packb([JOB_FUNC, None, [{"v": 1, "s": "x", "g": "h",
                                     "specs": [["t", "e.1", "x", 1, 0, None, 0.0]]}], {}]),
            packb(["not-a-session:*", [5, None]]), msgpack.packb([1] * 3),
        ])

    def sessions(self) -> list[str]:
        found = [s.decode(errors="replace") for s in self.r.smembers(self.ks.active_runs)]
        return sorted(s for s in found if is_session_id(s)) or ["nobody"]

    def job_ids(self) -> list[str]:
        return sorted(j.decode(errors="replace") for j in self.r.hkeys(self.ks.jobmap)) \
            or ["nojob"]

    def once(self) -> None:
        rng, r, ks = self.rng, self.r, self.ks
        sid = rng.choice(self.sessions())
        run = ks.run(sid)
        job = rng.choice(self.job_ids())
        choice = rng.randrange(20)
        if choice == 0:  # unsigned, forged and malformed events
            body = rng.choice([self.junk(), Event("done", sid, token="e.1").encode()[36:],
                               Event("cancel", sid).encode(secret=b"x" * 40),
                               seal(packb({"v": 1, "k": "done", "s": sid, "fatal": "yes"}))])
            r.xadd(ks.events, {EVENT_FIELD: body})
        elif choice == 1:
            r.xadd(ks.events, {"other": self.junk()})
        elif choice == 2:
            r.hset(ks.jobmap, rng.choice([job, "ghost"]), self.junk())
        elif choice == 3:
            r.zadd(ks.leases, {rng.choice([job, "ghost"]): rng.choice(
                [0, -1e300, 1e300, time.time() - 100, time.time() + 1e6])})
        elif choice == 4:
            r.hset(ks.lease_owner, rng.choice([job, "ghost"]), self.junk())
        elif choice == 5:
            r.rpush(ks.rq_queue(ks.queue_name), rng.choice(["ghost", job, "x" * 300]))
            r.lpush(ks.wake(ks.queue_name), self.junk())
        elif choice == 6:
            field = rng.choice([JobField.DATA, JobField.SESSION, JobField.TASKS,
                                JobField.INCARNATION, JobField.LEASE_S, JobField.ORIGIN])
            r.hset(ks.rq_job(rng.choice([job, "ghost"])), field, self.junk())
        elif choice == 7:
            field = rng.choice([RunField.MAX_STEPS, RunField.STATUS, RunField.RUNNING,
                                RunField.INCARNATION, RunField.QUEUE, RunField.START_NODE,
                                RunField.CRASH_LIMIT, RunField.ERROR_DATA, RunField.STEPS])
            r.hset(run.meta, field, self.junk())
        elif choice == 8:
            key = rng.choice([run.shape, run.pending, run.cycles, run.groups, run.crashes,
                              run.dynamic])
            r.hset(key, rng.choice(["m1", "join", "ghost"]), self.junk())
        elif choice == 9:
            r.zadd(run.completed, {self.junk(): rng.random()})
            r.sadd(rng.choice([run.released, run.active]), self.junk())
        elif choice == 10:
            r.set(ks.cursor, self.junk())
        elif choice == 11:
            r.set(ks.commits, rng.choice([self.junk(), b"123456"]))
        elif choice == 12:
            r.set(rng.choice([ks.leader, ks.leader_epoch]), self.junk())
        elif choice == 13:
            r.sadd(ks.active_runs, self.junk())
            r.zadd(ks.all_runs, {self.junk(): rng.random()})
        elif choice == 14:
            r.zadd(ks.workers, {self.junk(): rng.random()})
        elif choice == 15:
            r.set(run.channel(rng.choice(["seen", "m1.__result__", "x"])), self.junk())
        elif choice == 16:
            r.xadd(run.ended, {b"status": self.junk()})
        elif choice == 17:
            blob = r.hget(run.meta, RunField.GRAPH_HASH)
            if blob and rng.random() < 0.3:
                r.set(ks.blob(blob.decode(errors="replace")), self.junk())
        elif choice == 18:
            r.zadd(ks.checkpoint_index, {self.junk(): 1})
            r.hset(ks.checkpoint("x"), "meta", self.junk())
        elif rng.random() < 0.5:  # now and then a key of the wrong type
            key = rng.choice([ks.jobmap, ks.leases, ks.lease_owner, ks.workers, run.meta,
                              run.pending, ks.active_runs])
            r.delete(key)
            r.set(key, b"planted")
        self.writes += 1


def test_poison_soak(make_cluster: Callable[..., FaultCluster]) -> None:
    cluster = make_cluster(workers=2, coordinators=2)
    pids = [s.pid for s in [*cluster.coordinators, *cluster.workers]]
    keyspace = Keyspace.from_env()
    poisoner = Poisoner(cluster.client, keyspace, SEED)
    stop = threading.Event()
    outcomes: dict[str, int] = {"completed": 0, "failed": 0}
    errors: list[BaseException] = []

    def submit_runs() -> None:
        with Client(cluster.url) as client:
            while not stop.is_set():
                try:
                    run = client.submit(fan_workflow("during"))
                    run.wait(timeout=5)
                    outcomes["completed"] += 1
                except GraflowError:
                    outcomes["failed"] += 1  # poisoned, or still going: both allowed
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append("".join(traceback.format_exception(exc)))
                    return

    submitter = threading.Thread(target=submit_runs, daemon=True)
    submitter.start()
    deadline = time.monotonic() + POISON_S
    while time.monotonic() < deadline:
        try:
            poisoner.once()
        except redis.ResponseError:
            pass  # the poisoner tripping over a key it planted itself
        time.sleep(0.002)
    stop.set()
    submitter.join(timeout=30)
    assert not errors, f"the client failed with something other than our error: {errors}"
    assert poisoner.writes > 300

    # Every service survived, same processes.
    assert [s.pid for s in [*cluster.coordinators, *cluster.workers]] == pids
    assert all(s.alive() for s in [*cluster.coordinators, *cluster.workers]), \
        cluster.log_text()[-3000:]
    assert_no_service_traceback(cluster)
    # The garbage did reach the services (and was handled, not ignored by luck).
    events = [record.get("event") for _path, record in cluster.logs()]
    assert "malformed event dead-lettered" in events
    assert "key of the wrong type quarantined" in events

    # A coordinator restarted afterwards takes over the poisoned state and stays up.
    old_leader = wait_for(cluster.leader, "a leader")
    old_leader.kill()
    fresh = cluster.add_coordinator()
    wait_for(lambda: cluster.leader() is not None and cluster.leader() is not old_leader,
             "a new leader", timeout_s=30)
    with Client(cluster.url) as client:
        for i in range(3):
            run = client.submit(fan_workflow(f"after-{i}"))
            assert run.wait(timeout=RUN_TIMEOUT_S) == 6
    assert fresh.alive()
    assert all(s.alive() for s in cluster.workers)
    assert all(c.alive() for c in cluster.coordinators if c is not old_leader)
    assert_no_service_traceback(cluster)


def assert_no_service_traceback(cluster: FaultCluster) -> None:
    """No exception escaped a service (a task that failed on poisoned channel data logs
    its own traceback: that is the task's failure, reported as designed)."""
    for path, record in cluster.logs():
        if record.get("event") != "task failed":
            assert "Traceback" not in str(record), f"{path}: {record}"
    raw = [line for line in cluster.log_text().splitlines() if not line.startswith("{")]
    assert not [line for line in raw if "Traceback" in line or "Error" in line], raw[-40:]
