"""WorkerRegistry: workers as RQ and graflow-dist see them (registration, heartbeats).

Each worker registers with RQ (so ``rq info`` and dashboards list it) and in our own
``{prefix}:workers`` sorted set (name -> last heartbeat), from which the coordinator
counts live workers to size batches.
"""

from __future__ import annotations

import time

import redis
from rq import Queue
from rq import Worker as RQWorker
from rq.worker_registration import clean_worker_registry

from graflow_dist.broker.jobs import JobClaimer
from graflow_dist.broker.keys import HASH, RQ_WORKERS, SET, ZSET, Keyspace
from graflow_dist.broker.scripts import refused
from graflow_dist.wire.messages import MsgpackSerializer
from graflow_dist.wire.task_records import WorkerStats

# A worker that has not beaten for this long is not counted as live.
LIVE_WORKER_WINDOW_S = 30.0


class WorkerRegistration:
    """One worker's registration: RQ's worker record plus ours.

    Parameters
    ----------
    client:
        Redis client.
    keyspace:
        Key layout.
    name:
        The worker's name, unique in the deployment.
    queue:
        The RQ queue it serves.
    ttl_s:
        How long RQ keeps the registration without a heartbeat.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace, name: str, queue: str,
                 ttl_s: int) -> None:
        self.client = client
        self.keyspace = keyspace
        self.name = name
        self.queue = queue
        self.rq = RQWorker([queue], name=name, connection=client, serializer=MsgpackSerializer,
                           worker_ttl=ttl_s)

    @property
    def rq_key(self) -> str:
        return self.rq.key

    def register(self, stats: WorkerStats | None = None) -> None:
        try:
            self.rq.register_birth()
        except ValueError:  # a stale registration with our name: replace it
            self.rq.register_death()
            self.rq.register_birth()
        self.rq.set_state("idle")
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.keyspace.workers, {self.name: time.time()})
        if stats is not None:
            pipe.hset(self.keyspace.worker_stats, self.name, stats.encode())
        pipe.execute()

    def unregister(self) -> None:
        self.rq.register_death()
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.keyspace.workers, self.name)
        pipe.hdel(self.keyspace.worker_stats, self.name)
        pipe.execute()

    def idle(self) -> None:
        self.rq.set_state("idle")

    def heartbeat(self, claimer: JobClaimer, job_ids: list[str],
                  stats: WorkerStats | None = None) -> list[str]:
        """Beat for RQ and for us, renewing the leases of ``job_ids`` (and refreshing
        the worker's ``stats``); returns the jobs this worker no longer holds."""
        pipe = self.client.pipeline(transaction=False)
        self.rq.heartbeat(pipeline=pipe)
        pipe.zadd(self.keyspace.workers, {self.name: time.time()})
        if stats is not None:
            pipe.hset(self.keyspace.worker_stats, self.name, stats.encode())
        if job_ids:
            claimer.queue_extend(job_ids, pipe)
        results = pipe.execute()
        if not job_ids:
            return []
        return [j.decode(errors="replace") for j in refused(results[-1], "extend") or []]

    def keys(self) -> dict[str, str]:
        """The keys this registration writes, with the type each holds."""
        return {self.rq_key: HASH, self.keyspace.workers: ZSET, RQ_WORKERS: SET,
                f"{RQ_WORKERS}:{self.queue}": SET}


class WorkerRegistry:
    """The workers of a deployment, as the coordinator and tools count them."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace

    def live_count(self, window_s: float = LIVE_WORKER_WINDOW_S) -> int:
        return int(self.client.zcount(self.keyspace.workers, time.time() - window_s, "+inf"))

    def names(self) -> list[str]:
        return [n.decode(errors="replace") for n in self.client.zrange(self.keyspace.workers,
                                                                       0, -1)]

    def heartbeats(self) -> dict[str, float]:
        """Worker name -> time of its last heartbeat."""
        return {n.decode(errors="replace"): s for n, s in
                self.client.zrange(self.keyspace.workers, 0, -1, withscores=True)}

    def forget_lost(self, silent_s: float) -> list[str]:
        """Forget the workers silent for over ``silent_s`` seconds (killed, their node
        lost: they never unregistered), so the list does not grow with every worker
        that ever ran. Returns their names."""
        cutoff = time.time() - silent_s
        names = self.client.zrangebyscore(self.keyspace.workers, "-inf", cutoff)
        if names:
            pipe = self.client.pipeline(transaction=False)
            pipe.zremrangebyscore(self.keyspace.workers, "-inf", cutoff)
            pipe.hdel(self.keyspace.worker_stats, *names)
            pipe.execute()
            # RQ's registry of the prefix's queue too (an RQ worker's own maintenance
            # does this; ours never run it): entries whose worker hash expired
            clean_worker_registry(Queue(self.keyspace.queue_name, connection=self.client))
        return [n.decode(errors="replace") for n in names]
