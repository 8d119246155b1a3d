"""Keys someone else overwrote with another type: found, moved aside, reported.

A Redis command on a key of the wrong type fails (WRONGTYPE), and inside a Lua script
that is a script error after whatever the script already wrote. So every script checks
the types of its keys before writing (and refuses, see `RefusedResult`), and the
services hand what they find to `KeyRepair`, which moves the offending keys to
``{prefix}:quarantine:...`` (kept a week for inspection) so that work goes on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.scripts import Scripts
from graflow_dist.errors import WrongTypeError

_CHUNK = 200


@dataclass(frozen=True)
class Quarantined:
    """A key moved aside: it held ``held`` and is now ``moved_to``."""

    key: str
    held: str
    moved_to: str

    def __str__(self) -> str:
        return f"{self.key} (a {self.held}) moved to {self.moved_to}"


class KeyRepair:
    """Finds keys of the wrong type and quarantines them.

    Parameters
    ----------
    client:
        Redis client (bytes responses).
    keyspace:
        Key layout (knows which type each key of ours holds).
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace
        self.scripts = Scripts(client, keyspace)

    def wrong(self, expected: dict[str, str]) -> dict[str, str]:
        """The keys of ``expected`` (key -> type) that hold another type (key -> type)."""
        keys = list(expected)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        found: dict[str, str] = {}
        for key, held in zip(keys, pipe.execute(), strict=True):
            held = held.decode() if isinstance(held, bytes) else str(held)
            if held != "none" and held != expected[key]:
                found[key] = held
        return found

    def quarantine(self, keys: Iterable[str]) -> list[Quarantined]:
        """Move those of ``keys`` (ours, by name) that hold the wrong type."""
        typed = {k: t for k in keys if (t := self.keyspace.expected_type(k)) is not None}
        return self.quarantine_typed(typed)

    def quarantine_typed(self, expected: dict[str, str]) -> list[Quarantined]:
        """Move those keys of ``expected`` (key -> the type it must hold) that hold
        another type."""
        moved: list[Quarantined] = []
        items = list(expected.items())
        for start in range(0, len(items), _CHUNK):
            chunk = items[start:start + _CHUNK]
            stamp = f"{int(time.time())}.{uuid.uuid4().hex[:8]}"
            raw = self.scripts.call("quarantine", [k for k, _t in chunk],
                                    [stamp, *(t for _k, t in chunk)])
            for i in range(0, len(raw), 3):
                key, held, target = (w.decode(errors="replace") for w in raw[i:i + 3])
                moved.append(Quarantined(key, held, target))
        return moved

    def repair(self, error: WrongTypeError, fallback: dict[str, str]) -> list[Quarantined]:
        """Quarantine what ``error`` names; if it names no key of ours (a WRONGTYPE
        reply names none), check every key of ``fallback`` (key -> type)."""
        known = [k for k in error.keys if self.keyspace.expected_type(k) is not None]
        return self.quarantine(known) if known else self.quarantine_typed(fallback)

    def sweep(self, queue: str | None = None, sessions: Iterable[str] = ()) -> list[Quarantined]:
        """Check every key of the deployment (and of ``queue`` and the runs
        ``sessions``) and quarantine those of the wrong type: what a service does after
        a WRONGTYPE reply that named no key."""
        expected = dict(self.keyspace.key_types(queue))
        for session_id in sessions:
            expected.update(self.keyspace.run(session_id).key_types())
        return self.quarantine_typed(expected)

    def wrong_type_error(self, what: str, expected: dict[str, str]) -> WrongTypeError:
        """The error for a WRONGTYPE reply while reading ``expected``'s keys, naming
        those of the wrong type."""
        found = self.wrong(expected)
        shown = ", ".join(f"{k} holds a {t}" for k, t in found.items()) or "a key changed"
        return WrongTypeError(f"{what}: keys of the wrong type ({shown})", found)
