"""The task execution running in this thread, for tracers that need more than the
hooks pass (attempt, cycle, worker): set by `graflow_dist.core.invoke`."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

_current: ContextVar[Any] = ContextVar("graflow_dist_current_task", default=None)


def current_task_context() -> Any:
    """The `TaskExecutionContext` of the task running now, or None."""
    return _current.get()


def enter_task(task_ctx: Any) -> Token[Any]:
    return _current.set(task_ctx)


def exit_task(token: Token[Any]) -> None:
    _current.reset(token)
