"""LeaderLease: which coordinator drives the runs, fenced by an epoch."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import redis
from redis.exceptions import WatchError

from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.scripts import LeaderResult, Scripts

_STREAM_ID = re.compile(rb"\d{1,20}-\d{1,20}")
_COUNT = re.compile(rb"\d{1,18}")
START_CURSOR = "0-0"


@dataclass
class CommittedState:
    """What the last commit left: the last applied event id and the commit count.
    ``damaged`` describes values someone else wrote (repaired by `LeaderLease.repair`)."""

    cursor: str = START_CURSOR
    commits: int = 0
    damaged: list[str] = field(default_factory=list)
    raw_cursor: bytes | None = None
    raw_commits: bytes | None = None


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
        self.note = ""  # what the last `acquire` repaired, for the caller's log

    def acquire(self, candidate: str, lease_s: float) -> int:
        """Take or renew the lease: the fencing epoch, or 0 while another holds it.
        A lease or epoch someone else wrote is repaired; `note` then says how."""
        epoch, note = self.scripts.call("leader_acquire",
                                        [self.keyspace.leader, self.keyspace.leader_epoch],
                                        [candidate, int(lease_s * 1000)])
        self.note = note.decode(errors="replace") if isinstance(note, bytes) else str(note)
        return int(epoch) if epoch != LeaderResult.NOT_ACQUIRED else 0

    def release(self, holder: str) -> bool:
        return self.scripts.call("leader_release", [self.keyspace.leader],
                                 [holder]) == LeaderResult.RELEASED

    def announce(self, candidate: str) -> None:
        """Record that ``candidate`` is alive (leading or standing by), for tools."""
        self.client.zadd(self.keyspace.coordinators, {candidate: time.time()})

    def withdraw(self, candidate: str) -> None:
        self.client.zrem(self.keyspace.coordinators, candidate)

    def forget_silent(self, silent_s: float) -> int:
        """Forget the coordinators silent for over ``silent_s`` seconds (killed: they
        never withdrew); returns how many."""
        return int(self.client.zremrangebyscore(self.keyspace.coordinators, "-inf",
                                                time.time() - silent_s))

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

    def committed_state(self) -> CommittedState:
        """The last applied event id and the number of commits, as Redis holds them
        (values that are not an event id / a count are reported in ``damaged``)."""
        cursor, commits = self.client.mget(self.keyspace.cursor, self.keyspace.commits)
        state = CommittedState(raw_cursor=cursor, raw_commits=commits)
        if cursor is not None:
            if _STREAM_ID.fullmatch(cursor):
                state.cursor = cursor.decode()
            else:
                state.damaged.append(f"the event cursor {cursor[:40]!r} is not an event id; "
                                     "events are read again from the start of the stream "
                                     "(duplicates are dropped by their tokens)")
        if commits is not None:
            if _COUNT.fullmatch(commits):
                state.commits = int(commits)
            else:
                state.damaged.append(f"the commit counter {commits[:40]!r} is not a count; "
                                     "it starts over")
        return state

    def repair(self, holder: str, state: CommittedState) -> bool:
        """Reset the damaged values of ``state`` (cursor to the stream's start, counter
        to 0), only while ``holder`` holds the lease and the values are still those seen;
        False if anything changed meanwhile (look again)."""
        ks = self.keyspace
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(ks.leader, ks.cursor, ks.commits)
                if pipe.get(ks.leader) != holder.encode():
                    return False
                if (pipe.get(ks.cursor), pipe.get(ks.commits)) != (state.raw_cursor,
                                                                   state.raw_commits):
                    return False
                pipe.multi()
                pipe.set(ks.cursor, state.cursor)
                pipe.set(ks.commits, state.commits)
                pipe.execute()
            except WatchError:
                return False
        return True

    def server_run_id(self) -> str | None:
        """Redis's run id: a new one means it restarted (maybe behind our back)."""
        return self.client.info("server").get("run_id")
