"""GraphScope: where tasks are wired while they are defined (``with workflow(...)``,
or a running task's `DynamicScope`), and which scope is current.

`graflow_dist.core.workflow.WorkflowContext` is the scope users open; the executables
of `graflow_dist.core.task` register into whatever scope is current. Tasks wired
outside any ``with`` block go to a process-wide default scope, a `WorkflowContext` once
`graflow_dist.core.workflow` is loaded (it registers itself with `use_default_scope`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token

from graflow_dist.core.graph import TaskGraph

DEFAULT_SCOPE_NAME = "default"


class GraphScope:
    """A named graph that ``>>``, ``|`` and ``@task`` add to while it is current."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.graph = TaskGraph()
        self._group_counter = 0
        self._tokens: list[Token[GraphScope | None]] = []

    def __enter__(self) -> GraphScope:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    def next_group_name(self) -> str:
        self._group_counter += 1
        return f"ParallelGroup_{self._group_counter}"


_current: ContextVar[GraphScope | None] = ContextVar("graflow_dist_scope", default=None)
_default: GraphScope | None = None
_default_factory: Callable[[str], GraphScope] = GraphScope


def use_default_scope(factory: Callable[[str], GraphScope]) -> None:
    """Make ``factory(name)`` build the default scope (`WorkflowContext` does this)."""
    global _default_factory
    _default_factory = factory


def get_current_scope() -> GraphScope | None:
    return _current.get()


def current_scope() -> GraphScope:
    """The current scope, or the process-wide default one."""
    global _default
    scope = _current.get()
    if scope is not None:
        return scope
    if _default is None:
        _default = _default_factory(DEFAULT_SCOPE_NAME)
    return _default


def suspend_scope() -> Token[GraphScope | None]:
    """While tasks run, tasks they create are dynamic, not members of a workflow."""
    return _current.set(None)


def restore_scope(token: Token[GraphScope | None]) -> None:
    _current.reset(token)
