"""The one owner of the Redis protocol.

Every key and field name (`keys`), every Lua script (``lua/*.lua``, `scripts`), the run
store (`runs`, `record`, `frontier`), the event stream (`events`), jobs, leases and
their reaping (`jobs`), the leader lease (`leader`), worker registration (`workers`),
the coordinator's fenced commit (`commit`) and the web console's queries (`console`,
`task_states`). Client, coordinator, worker, CLI and web console talk to Redis only
through this package; anything read from Redis is decoded and validated here, once.
"""

from __future__ import annotations

import redis

from graflow_dist.broker.commit import Commit, apply
from graflow_dist.broker.connection import single_attempt_client
from graflow_dist.broker.console import ConsoleQueries
from graflow_dist.broker.events import EventLog
from graflow_dist.broker.feedback import FeedbackStore
from graflow_dist.broker.indexes import IndexPruner
from graflow_dist.broker.jobs import JobClaimer, LeaseReaper
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.leader import LeaderLease
from graflow_dist.broker.permissions import check_permissions
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.repair import KeyRepair, Quarantined
from graflow_dist.broker.runs import RunStore
from graflow_dist.broker.scripts import Scripts
from graflow_dist.broker.workers import WorkerRegistration, WorkerRegistry
from graflow_dist.limits import DEFAULT_MAX_MESSAGE_BYTES


class Broker:
    """Everything a service or client does with Redis, on one connection.

    Parameters
    ----------
    client:
        A redis-py client with bytes responses (see `graflow_dist.broker.connection`).
    keyspace:
        Key layout (default: from ``GRAFLOW_DIST_PREFIX``).
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace | None = None) -> None:
        self.client = client
        self.keyspace = keyspace or Keyspace.from_env()
        self.runs = RunStore(client, self.keyspace)
        self.events = EventLog(client, self.keyspace)
        self.leader = LeaderLease(client, self.keyspace)
        self.reaper = LeaseReaper(client, self.keyspace)
        self.workers = WorkerRegistry(client, self.keyspace)
        self.feedback = FeedbackStore(client, self.keyspace)
        self.console = ConsoleQueries(client, self.keyspace)
        self.repair = KeyRepair(client, self.keyspace)
        self._scripts = Scripts(client, self.keyspace)
        self.indexes = IndexPruner(self.keyspace, self._scripts)
        self._claim_client: redis.Redis | None = None

    def claimer(self, queue: str, worker: str, lease_s: float, rq_worker_key: str,
                max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> JobClaimer:
        """The job protocol for one worker. Its commands are sent once (redis-py does
        not retry them): a claim sent again after its reply was lost would take other
        jobs and leave the first ones held. The worker retries, then hands back what it
        holds unknowingly (`JobClaimer.held_jobs`)."""
        if self._claim_client is None:
            self._claim_client = single_attempt_client(self.client)
        return JobClaimer(self._claim_client, self.keyspace, queue, worker, lease_s,
                          rq_worker_key, max_message_bytes)

    def check_permissions(self, role: str, queue: str | None = None,
                          worker_name: str = "probe") -> None:
        """`PermissionDeniedError` if the Redis user lacks a command ``role`` needs (see
        `graflow_dist.broker.permissions`); nothing is written."""
        check_permissions(self.client, self.keyspace, role, queue, worker_name)

    def registration(self, name: str, queue: str, ttl_s: int) -> WorkerRegistration:
        return WorkerRegistration(self.client, self.keyspace, name, queue, ttl_s)

    def commit(self) -> Commit:
        return Commit(self.keyspace)

    def apply(self, commit: Commit, leader_id: str, expected_commits: int) -> int:
        """Apply ``commit`` fenced by the leader lease and the commit count (see
        `graflow_dist.broker.commit.apply`)."""
        return apply(self._scripts, self.keyspace, commit, leader_id, expected_commits)

    def queue_depth(self, queue: str) -> int:
        return int(self.client.llen(self.keyspace.rq_queue(queue)))

    def close(self) -> None:
        self.client.close()


__all__ = ["Broker", "Commit", "ConsoleQueries", "EventLog", "FeedbackStore", "JobClaimer",
           "KeyRepair", "Keyspace", "LeaderLease", "LeaseReaper", "Quarantined", "RunRecord",
           "RunStore", "WorkerRegistration", "WorkerRegistry"]
