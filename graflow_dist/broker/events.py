"""EventLog: the coordinator's event stream (submissions, cancellations, task reports).

Everything read from the stream is verified and decoded here, once: every event is sealed
with a MAC of the shared secret (`graflow_dist.wire.signing.seal`), so an entry written by
anyone without the secret, or one that does not decode, is handed to the coordinator as a
`DeadEvent` with the reason, and the coordinator's commit moves it to the dead-letter
stream (``{prefix}:events:dead``) while its cursor moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import ResponseError

from graflow_dist.broker.connection import is_wrong_type
from graflow_dist.broker.keys import EVENT_FIELD, Keyspace
from graflow_dist.errors import SignatureError, WireError, WrongTypeError
from graflow_dist.limits import DEFAULT_MAX_MESSAGE_BYTES
from graflow_dist.wire.messages import Event

# Entries kept in the dead-letter stream (approximately: XADD MAXLEN ~).
DEAD_EVENTS_KEPT = 10_000
# Bytes of a dead event's payload kept with it (enough to see what it was).
_DEAD_RAW_KEPT = 64 * 1024


@dataclass(frozen=True)
class DeadEvent:
    """A stream entry that is not a valid event."""

    entry_id: str
    reason: str
    raw: bytes


@dataclass(frozen=True)
class EventEntry:
    """One entry read from the stream: its id, what it holds, and its size in bytes."""

    entry_id: str
    event: Event | DeadEvent
    size: int


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

    def publish_command(self, event: Event) -> list[Any]:
        """The command that appends ``event`` (for a script or a commit)."""
        return ["XADD", self.keyspace.events, "*", EVENT_FIELD, event.encode()]

    def publish_all(self, events: list[Event]) -> None:
        """Append ``events`` in one transaction."""
        if not events:
            return
        pipe = self.client.pipeline(transaction=True)
        for event in events:
            self.publish(event, pipe)
        pipe.execute()

    def read(self, cursor: str, count: int, block_ms: int,
             max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[EventEntry]:
        """Up to ``count`` entries after ``cursor``, waiting up to ``block_ms``. An entry
        that is not a valid event signed with our secret, or is over ``max_bytes``, comes
        back as a `DeadEvent` saying why. `WrongTypeError` if the stream's key holds
        something else."""
        try:
            entries = self.client.xread({self.keyspace.events: cursor}, count=count,
                                        block=block_ms)
        except ResponseError as exc:
            if is_wrong_type(exc):
                raise WrongTypeError(f"the event stream {self.keyspace.events} is not a "
                                     "stream", {self.keyspace.events: "?"}) from None
            raise
        out: list[EventEntry] = []
        for _stream, items in entries or []:
            for raw_id, fields in items:
                entry_id = raw_id.decode()
                raw = fields.get(EVENT_FIELD.encode(), b"")
                size = sum(len(k) + len(v) for k, v in fields.items())
                try:
                    if size > max_bytes:
                        raise WireError(f"event {entry_id}: {size} bytes, over the "
                                        f"{max_bytes}-byte message limit")
                    event: Event | DeadEvent = Event.decode(raw, f"event {entry_id}")
                except (WireError, SignatureError) as exc:
                    event = DeadEvent(entry_id, str(exc), raw[:_DEAD_RAW_KEPT])
                out.append(EventEntry(entry_id, event, size))
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
