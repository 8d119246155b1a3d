"""LeaseWatch: the leader's view of the workers' leases and of how many workers live."""

from __future__ import annotations

import time
from typing import Any

from graflow_dist.broker import Broker
from graflow_dist.broker.jobs import DEFAULT_LEASE_S, ReapedJob
from graflow_dist.errors import NotLeaderError

_WORKER_COUNT_REFRESH_S = 1.0


class LeaseWatch:
    """Expired leases to take back, and grace for all of them after a Redis outage
    (nobody could renew a lease meanwhile, so healthy workers must not be reaped).

    Parameters
    ----------
    broker:
        The coordinator's broker.
    log:
        Its bound logger.
    """

    def __init__(self, broker: Broker, log: Any) -> None:
        self.broker = broker
        self.log = log
        self.live_workers = 1
        self._workers_at = 0.0
        self._suspect = False  # leases could not be renewed for a while
        self._redis_run_id: str | None = None

    def outage(self) -> None:
        """Redis was unreachable: grant grace before the next reap."""
        self._suspect = True

    def standby(self) -> None:
        """Not the leader: the leader gives the grace, not us."""
        self._suspect = False

    def expired(self, leader_id: str) -> list[ReapedJob]:
        """The jobs whose lease expired, marked as reaped (`NotLeaderError` if no
        longer the leader)."""
        if time.monotonic() >= self._workers_at:
            self.live_workers = max(1, self.broker.workers.live_count())
            self._workers_at = time.monotonic() + _WORKER_COUNT_REFRESH_S
        # A restart that the client's own retries hid still starved every heartbeat:
        # notice it by the server's run id.
        run_id = self.broker.leader.server_run_id()
        if self._redis_run_id is not None and run_id != self._redis_run_id:
            self._suspect = True
        self._redis_run_id = run_id
        if self._suspect:
            extended = self.broker.reaper.grant_grace(leader_id, DEFAULT_LEASE_S)
            if extended is None:
                raise NotLeaderError("lease grace refused")
            self._suspect = False
            self.log.info("leases renewed after a redis outage", leases=extended)
        reaped = self.broker.reaper.reap(leader_id)
        if reaped is None:
            raise NotLeaderError("reap refused")
        return reaped
