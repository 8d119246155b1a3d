"""The channel protocol: shared key/value state of one run.

`MemoryChannel` keeps it in process; `RedisChannel` keeps it in Redis so that every
task on every worker sees what any other task wrote. Both round-trip values exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

RESULT_SUFFIX = ".__result__"
DEFAULT_LOCK_TIMEOUT_S = 10.0


def result_key(task_id: str) -> str:
    """The channel key holding a task's return value."""
    return f"{task_id}{RESULT_SUFFIX}"


def iteration_key(task_id: str, cycle: int) -> str:
    """The channel key holding the data passed to run ``cycle`` (1-based) of a task."""
    return f"__iteration__.{task_id}.{cycle}"


class Channel(ABC):
    """Key/value state shared by the tasks of one run.

    Parameters
    ----------
    name:
        The channel's name; the run's session id.
    """

    backend: str = "abstract"

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def get(self, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store ``value``; with ``ttl`` seconds it disappears after that time."""

    @abstractmethod
    def delete(self, key: str) -> bool: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def keys(self) -> list[str]: ...

    @abstractmethod
    def clear(self) -> None: ...

    @abstractmethod
    def append(self, key: str, value: Any, ttl: int | None = None) -> int:
        """Append to the list at ``key`` (created if missing); returns its length."""

    @abstractmethod
    def prepend(self, key: str, value: Any, ttl: int | None = None) -> int: ...

    @abstractmethod
    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        """Add ``amount`` to the number at ``key`` (0 if missing) atomically."""

    @abstractmethod
    def lock(
        self, key: str, timeout: float = DEFAULT_LOCK_TIMEOUT_S
    ) -> AbstractContextManager[None]: ...

    def items(self) -> Iterator[tuple[str, Any]]:
        for key in self.keys():
            yield key, self.get(key)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """Values of the keys that exist (one round trip where the backend allows)."""
        return {k: self.get(k) for k in keys if self.exists(k)}

    def __contains__(self, key: str) -> bool:
        return self.exists(key)

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about this channel (never credentials)."""
        return {"channel": self.backend, "name": self.name}


def check_number(key: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"channel key {key!r} holds {type(value).__name__}, atomic_add needs a number"
        )
    return value
