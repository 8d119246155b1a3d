"""Task handlers: how one task's function is executed (Graflow's ``TaskHandler``).

``@task(handler=...)`` takes a handler object or the name of a registered one
(`register_handler`; ``WorkflowEngine().register_handler`` registers for one engine).
The default, ``"direct"``, calls the function in the running process. A handler wraps
the call: inside ``execute_task`` call ``task.run()`` to run the task with the
arguments this execution resolved, and return its result; the engine (or the worker)
stores the returned value as the task's result.

Handlers travel with the workflow: a named handler registered in the submitting process
is pickled with the task that uses it, so cluster workers run it too. Keep credentials
out of handler objects (read them when ``execute_task`` runs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graflow_dist.errors import TaskHandlerError

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext

DEFAULT_HANDLER = "direct"


@dataclass
class TaskResult:
    """How a task execution ended (Graflow's record; results live in the channel)."""

    task_id: str
    success: bool
    error: Exception | None = None
    error_message: str | None = None
    duration: float = 0.0
    timestamp: float = 0.0


class TaskHandler(ABC):
    """Base class of task handlers."""

    def get_name(self) -> str:
        """The name the handler is registered under (default: its class name)."""
        return type(self).__name__

    @abstractmethod
    def execute_task(self, task: Any, context: ExecutionContext) -> Any:
        """Run ``task`` (call ``task.run()``) and return its result."""


_REGISTRY: dict[str, TaskHandler] = {}


def register_handler(name: str, handler: TaskHandler) -> None:
    """Make ``@task(handler=name)`` use ``handler`` in this process (and, as the task
    is pickled with it, on the cluster)."""
    if not isinstance(handler, TaskHandler):
        raise TaskHandlerError(
            f"register_handler({name!r}, ...): expected a TaskHandler instance, got "
            f"{type(handler).__name__}"
        )
    _REGISTRY[name] = handler


def registered_handler(name: str) -> TaskHandler | None:
    return _REGISTRY.get(name)


def check_handler(handler: Any, task_id: str) -> tuple[str, TaskHandler | None]:
    """``(handler_type, handler_object)`` for ``@task(handler=...)``."""
    if handler is None:
        return DEFAULT_HANDLER, None
    if isinstance(handler, TaskHandler):
        return handler.get_name(), handler
    if isinstance(handler, str) and handler:
        return handler, None
    raise TaskHandlerError(
        f"task {task_id!r}: handler must be a TaskHandler instance or the name of a "
        f"registered handler, got {handler!r}"
    )


def resolve_handler(task: Any, local: dict[str, TaskHandler] | None = None) -> TaskHandler:
    """The handler that runs ``task``: its own object, else its name looked up in
    ``local`` (one engine's registrations), then in this process's registry."""
    own = getattr(task, "handler", None)
    if own is not None:
        return own
    name = getattr(task, "handler_type", DEFAULT_HANDLER)
    found = (local or {}).get(name) or _REGISTRY.get(name)
    if found is None:
        known = ", ".join(sorted({*_REGISTRY, *(local or {})}))
        raise TaskHandlerError(
            f"task {task.task_id!r}: handler {name!r} is not registered in this process "
            f"(registered: {known}); call graflow_dist.core.handler.register_handler("
            f"{name!r}, handler) before the workflow is submitted or run, or pass the "
            "handler object: @task(handler=MyHandler())"
        )
    return found


__all__ = [
    "DEFAULT_HANDLER",
    "TaskHandler",
    "TaskResult",
    "check_handler",
    "register_handler",
    "registered_handler",
    "resolve_handler",
]
