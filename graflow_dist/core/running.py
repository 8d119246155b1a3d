"""The task call the current thread is executing, so ``task.run()`` inside a handler
runs it with the arguments its execution resolved."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_current: ContextVar[tuple[Any, Callable[[], Any]] | None] = ContextVar(
    "graflow_dist_current_call", default=None
)


@contextmanager
def running_call(task: Any, call: Callable[[], Any]) -> Iterator[None]:
    token = _current.set((task, call))
    try:
        yield
    finally:
        _current.reset(token)


def current_call(task: Any) -> Callable[[], Any] | None:
    """The prepared call of ``task`` if a handler is running it now."""
    entry = _current.get()
    return entry[1] if entry is not None and entry[0] is task else None
