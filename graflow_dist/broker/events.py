"""EventLog: the coordinator's event stream (submissions, cancellations, task reports).

Everything read from the stream is decoded here, once: an entry that does not decode is
handed to the coordinator as a `DeadEvent` with the reason, and the coordinator's commit
moves it to the dead-letter stream (``{prefix}:events:dead``) while its cursor moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from graflow_dist.broker.keys import EVENT_FIELD, Keyspace
from graflow_dist.errors import WireError
from graflow_dist.wire.messages import Event

# Entries kept in the dead-letter stream (approximately: XADD MAXLEN ~).
DEAD_EVENTS_KEPT = 10_000


@dataclass(frozen=True)
class DeadEvent:
    """A stream entry that is not a valid event."""

    entry_id: str
    reason: str
    raw: bytes


class EventLog:
    """Publish and read events of one deployment.

    Parameters
    ----------
    client:
        Redis client (bytes responses).
    keyspace:
        Key layout.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace

    def publish(self, event: Event, pipe: Any = None) -> None:
        """Append ``event``; queued on ``pipe`` if given."""
        (pipe or self.client).xadd(self.keyspace.events, {EVENT_FIELD: event.encode()})

    def publish_all(self, events: list[Event]) -> None:
        """Append ``events`` in one transaction."""
        if not events:
            return
        pipe = self.client.pipeline(transaction=True)
        for event in events:
            self.publish(event, pipe)
        pipe.execute()

    def read(self, cursor: str, count: int, block_ms: int
             ) -> list[tuple[str, Event | DeadEvent]]:
        """Up to ``count`` entries after ``cursor``, waiting up to ``block_ms``."""
        entries = self.client.xread({self.keyspace.events: cursor}, count=count, block=block_ms)
        out: list[tuple[str, Event | DeadEvent]] = []
        for _stream, items in entries or []:
            for raw_id, fields in items:
                entry_id = raw_id.decode()
                raw = fields.get(EVENT_FIELD.encode(), b"")
                try:
                    out.append((entry_id, Event.decode(raw, f"event {entry_id}")))
                except WireError as exc:
                    out.append((entry_id, DeadEvent(entry_id, str(exc), raw)))
        return out

    def dead_letter_command(self, dead: DeadEvent) -> list[Any]:
        """The command (for a commit) that keeps ``dead`` for inspection."""
        return ["XADD", self.keyspace.dead_events, "MAXLEN", "~", DEAD_EVENTS_KEPT, "*",
                "entry", dead.entry_id, "reason", dead.reason[:2000], EVENT_FIELD, dead.raw]

    def dead_letters(self, count: int = 100) -> list[dict[str, bytes]]:
        """The newest entries of the dead-letter stream (newest first)."""
        return [{k.decode(): v for k, v in fields.items()}
                for _id, fields in self.client.xrevrange(self.keyspace.dead_events,
                                                         count=count)]
