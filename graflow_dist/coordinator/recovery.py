"""What a coordinator does about Redis data it did not write.

Anyone who can write to Redis can leave values no coordinator wrote: a cursor that is
no event id, a commit counter that is no count, members of the active set that are no
session id, keys of the wrong type. None of them may stop the coordinator: they are
repaired or moved aside with a log line, and a run whose own keys were damaged fails
(with the reason) instead of being driven on half its state.
"""

from __future__ import annotations

from typing import Any

from graflow_dist.broker import Broker
from graflow_dist.broker.leader import CommittedState
from graflow_dist.errors import GraflowError, NotLeaderError, WireError, WrongTypeError


class Recovery:
    """Repairs for one coordinator.

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
        self._damaged: dict[str, str] = {}  # session -> why: fail it at the next load

    def committed_state(self, leader_id: str) -> CommittedState:
        """The cursor and commit count to continue from, repaired if damaged
        (`NotLeaderError` if they changed meanwhile: take over again)."""
        state = self.broker.leader.committed_state()
        if state.damaged:
            for problem in state.damaged:
                self.log.error("coordinator state repaired", problem=problem)
            if not self.broker.leader.repair(leader_id, state):
                raise NotLeaderError("the committed state changed while it was repaired")
        return state

    def active_sessions(self) -> list[str]:
        """The active runs; members of the active set that are no session id are
        dropped (logged)."""
        session_ids, invalid = self.broker.runs.active_ids()
        if invalid:
            self.log.error("active-run entries that are no session id dropped",
                           entries=[repr(m[:60]) for m in invalid[:10]], count=len(invalid))
            self.broker.runs.forget_active(invalid)
        return session_ids

    def quarantine(self, exc: WrongTypeError, sessions: list[str]) -> int:
        """Move the keys of the wrong type aside (those ``exc`` names, else every key of
        the deployment and of ``sessions``); runs whose keys moved are marked damaged.
        Returns how many keys moved."""
        self.log.error("keys of the wrong type found", error=str(exc))
        keyspace = self.broker.keyspace
        expected = dict(keyspace.key_types())
        for session_id in sessions:
            expected.update(keyspace.run(session_id).key_types())
        head = keyspace.run_key_head
        moved = self.broker.repair.repair(exc, expected)
        for q in moved:
            self.log.error("key of the wrong type quarantined", key=q.key, held=q.held,
                           moved_to=q.moved_to)
            if q.key.startswith(head):
                session_id = q.key[len(head):].rpartition(":")[0]
                self._damaged[session_id] = f"its key {q.key} held a {q.held}"
        return len(moved)

    def damage_of(self, session_id: str) -> WrongTypeError | None:
        """The error to fail ``session_id`` with, if its keys were quarantined."""
        damage = self._damaged.pop(session_id, None)
        if damage is None:
            return None
        return WrongTypeError(f"run {session_id!r}: stored state damaged ({damage})")

    def forget_damage(self) -> None:
        self._damaged.clear()

    def fail_run(self, session_id: str, exc: Exception) -> None:
        """A run whose stored state cannot be loaded ends as failed (so its waiters
        return); its keys of the wrong type are quarantined first."""
        self.log.error("cannot load run", session=session_id,
                       error=f"{type(exc).__name__}: {exc}")
        error = exc if isinstance(exc, GraflowError) else WireError(
            f"{type(exc).__name__}: {exc}")
        for q in self.broker.runs.fail(session_id, error,
                                       recreate=isinstance(exc, WrongTypeError)):
            self.log.error("key of the wrong type quarantined", key=q.key, held=q.held,
                           moved_to=q.moved_to)
