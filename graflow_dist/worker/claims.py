"""JobClaimer: the worker's side of the queue protocol.

A job leaves ``rq:queue:<q>`` only inside the CLAIM script, which records its lease in
the same atomic step: there is no window in which a crash loses a job. An idle worker
blocks on a one-element wake list that every enqueue refreshes.
"""

from __future__ import annotations

import time

import redis

from graflow_dist.wire.keyspace import Keyspace
from graflow_dist.wire.scripts import Scripts

DEFAULT_IDLE_WAIT_S = 1.0


class JobClaimer:
    """Claims, renews and releases jobs for one worker.

    Parameters
    ----------
    client:
        Redis client.
    keyspace:
        Key layout.
    queue:
        The RQ queue name.
    worker:
        This worker's name (lease owner).
    lease_s:
        Lease length; renewed by the heartbeat.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace, queue: str, worker: str,
                 lease_s: float, rq_worker_key: str) -> None:
        self.client = client
        self.keyspace = keyspace
        self.queue = queue
        self.worker = worker
        self.lease_s = lease_s
        self.rq_worker_key = rq_worker_key
        self.scripts = Scripts(client)

    def claim(self, max_jobs: int = 1) -> list[tuple[str, bytes, str]]:
        """Claim up to ``max_jobs`` jobs: ``(job id, data, status of its run)``."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000Z"
        raw = self.scripts.call(
            "claim",
            [self.keyspace.rq_queue(self.queue), self.keyspace.leases,
             self.keyspace.lease_owner, self.keyspace.wake(self.queue), self.rq_worker_key],
            [self.lease_s, self.worker, max_jobs, stamp, self.keyspace.prefix],
        )
        return [(raw[i].decode(), raw[i + 1], raw[i + 2].decode())
                for i in range(1, len(raw), 3)]

    def wait_for_work(self, timeout_s: float = DEFAULT_IDLE_WAIT_S) -> bool:
        """Block until an enqueue wakes us; False after ``timeout_s`` without one."""
        return self.client.blpop([self.keyspace.wake(self.queue)], timeout=timeout_s) is not None

    def extend(self, job_ids: list[str], pipe: redis.client.Pipeline | None = None) -> list[str]:
        """Renew leases; returns the jobs this worker no longer holds."""
        if not job_ids:
            return []
        lost = self.scripts.call(
            "extend", [self.keyspace.leases, self.keyspace.lease_owner],
            [self.lease_s, self.worker, *job_ids], pipe,
        )
        return [j.decode() for j in lost] if isinstance(lost, list) else []

    def finish(self, job_id: str, pipe: redis.client.Pipeline) -> None:
        """Queue the release of a finished job's lease on ``pipe``."""
        self.scripts.call(
            "finish",
            [self.keyspace.leases, self.keyspace.lease_owner, self.keyspace.jobmap,
             self.rq_worker_key],
            [job_id, self.worker, self.keyspace.prefix], pipe,
        )

    def fail_job(self, job_id: str, reason: str, pipe: redis.client.Pipeline) -> None:
        """Queue on ``pipe``: move a job we cannot even read to rq's failed registry
        (kept for inspection) and release its lease."""
        now = time.time()
        pipe.hset(self.keyspace.rq_job(job_id), mapping={
            "status": "failed", "exc_info": reason[:2000],
            "ended_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000000Z",
        })
        pipe.zadd(self.keyspace.rq_failed(self.queue), {job_id: now + 365 * 24 * 3600})
        pipe.zrem(self.keyspace.leases, job_id)
        pipe.hdel(self.keyspace.lease_owner, job_id)
        pipe.hdel(self.keyspace.jobmap, job_id)
        pipe.hincrby(self.rq_worker_key, "failed_job_count", 1)
