"""LeaderLease: which coordinator drives the runs, fenced by an epoch."""

from __future__ import annotations

import time

import redis

from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.scripts import LeaderResult, Scripts


class LeaderLease:
    """The coordinator leader lease of a deployment.

    Parameters
    ----------
    client:
        Redis client.
    keyspace:
        Key layout.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace
        self.scripts = Scripts(client, keyspace)

    def acquire(self, candidate: str, lease_s: float) -> int:
        """Take or renew the lease: the fencing epoch, or 0 while another holds it."""
        epoch = self.scripts.call("leader_acquire",
                                  [self.keyspace.leader, self.keyspace.leader_epoch],
                                  [candidate, int(lease_s * 1000)])
        return int(epoch) if epoch != LeaderResult.NOT_ACQUIRED else 0

    def release(self, holder: str) -> bool:
        return self.scripts.call("leader_release", [self.keyspace.leader],
                                 [holder]) == LeaderResult.RELEASED

    def announce(self, candidate: str) -> None:
        """Record that ``candidate`` is alive (leading or standing by), for tools."""
        self.client.zadd(self.keyspace.coordinators, {candidate: time.time()})

    def withdraw(self, candidate: str) -> None:
        self.client.zrem(self.keyspace.coordinators, candidate)

    def coordinators(self) -> dict[str, float]:
        """Coordinator id -> when it last tried or renewed the lease."""
        return {n.decode(errors="replace"): s for n, s in
                self.client.zrange(self.keyspace.coordinators, 0, -1, withscores=True)}

    def epoch(self) -> int:
        raw = self.client.get(self.keyspace.leader_epoch)
        try:
            return int(raw or 0)
        except ValueError:
            return 0

    def holder(self) -> str | None:
        raw = self.client.get(self.keyspace.leader)
        return None if raw is None else raw.decode(errors="replace")

    def committed_state(self) -> tuple[str, int]:
        """``(last applied event id, number of commits)`` as Redis holds them."""
        cursor, commits = self.client.mget(self.keyspace.cursor, self.keyspace.commits)
        try:
            count = int(commits or 0)
        except ValueError:
            count = 0
        return (cursor.decode(errors="replace") if cursor else "0-0"), count

    def server_run_id(self) -> str | None:
        """Redis's run id: a new one means it restarted (maybe behind our back)."""
        return self.client.info("server").get("run_id")
