"""MemoryChannel: the in-process channel (its data goes into checkpoints)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from graflow_dist.channels.base import DEFAULT_LOCK_TIMEOUT_S, Channel, check_number


class MemoryChannel(Channel):
    """A dict with TTLs, safe to share between threads."""

    backend = "memory"

    def __init__(self, name: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.data: dict[str, Any] = dict(data or {})
        self.ttl_data: dict[str, float] = {}
        self._mutex = threading.RLock()
        self._locks: dict[str, threading.Lock] = {}

    def __getstate__(self) -> dict[str, Any]:
        with self._mutex:
            self._purge()
            return {"name": self.name, "data": dict(self.data), "ttl_data": dict(self.ttl_data)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["data"])  # type: ignore[misc]
        self.ttl_data = dict(state.get("ttl_data", {}))

    def _purge(self) -> None:
        now = time.time()
        for key in [k for k, exp in self.ttl_data.items() if exp <= now]:
            self.data.pop(key, None)
            self.ttl_data.pop(key, None)

    def _expire(self, key: str, ttl: int | None) -> None:
        if ttl is None:
            self.ttl_data.pop(key, None)
        else:
            self.ttl_data[key] = time.time() + ttl

    def get(self, key: str, default: Any = None) -> Any:
        with self._mutex:
            self._purge()
            return self.data.get(key, default)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        with self._mutex:
            self.data[key] = value
            self._expire(key, ttl)

    def delete(self, key: str) -> bool:
        with self._mutex:
            self._purge()  # an expired key is already gone, as in Redis
            self.ttl_data.pop(key, None)
            return self.data.pop(key, _MISSING) is not _MISSING

    def exists(self, key: str) -> bool:
        with self._mutex:
            self._purge()
            return key in self.data

    def keys(self) -> list[str]:
        with self._mutex:
            self._purge()
            return list(self.data)

    def clear(self) -> None:
        with self._mutex:
            self.data.clear()
            self.ttl_data.clear()

    def _push(self, key: str, value: Any, ttl: int | None, front: bool) -> int:
        with self._mutex:
            self._purge()
            current = self.data.get(key)
            items = list(current) if isinstance(current, list) else []
            if current is not None and not isinstance(current, list):
                raise TypeError(f"channel key {key!r} holds {type(current).__name__}, not a list")
            items.insert(0, value) if front else items.append(value)
            self.data[key] = items
            if ttl is not None:
                self._expire(key, ttl)
            return len(items)

    def append(self, key: str, value: Any, ttl: int | None = None) -> int:
        return self._push(key, value, ttl, front=False)

    def prepend(self, key: str, value: Any, ttl: int | None = None) -> int:
        return self._push(key, value, ttl, front=True)

    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        with self._mutex:
            self._purge()
            total = check_number(key, self.data.get(key, 0)) + amount
            self.data[key] = total
            return total

    @contextmanager
    def lock(self, key: str, timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
        with self._mutex:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=timeout):
            raise TimeoutError(f"channel lock {key!r} not acquired within {timeout} s")
        try:
            yield
        finally:
            lock.release()

    def describe(self) -> dict[str, Any]:
        return {"channel": "memory", "name": self.name}


_MISSING = object()
