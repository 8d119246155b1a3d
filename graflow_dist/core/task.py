"""Executables: a task (`TaskWrapper`), a chain (`SequentialTask`) and a
`ParallelGroup`, with the ``>>`` and ``|`` operators that wire them into a workflow."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from graflow_dist.coordination.coordinator import (
    CoordinationBackend,
    check_backend_config,
    resolve_backend,
)
from graflow_dist.core.graph import TaskGraph, base_shape
from graflow_dist.core.handler import (
    DEFAULT_HANDLER,
    TaskHandler,
    check_handler,
    registered_handler,
)
from graflow_dist.core.handlers.group_policy import (
    AtLeastNGroupPolicy,
    BestEffortGroupPolicy,
    CriticalGroupPolicy,
    GroupPolicy,
    StrictGroupPolicy,
    policy_spec,
)
from graflow_dist.core.retry import RetryPolicy
from graflow_dist.core.running import current_call
from graflow_dist.core.scope import GraphScope, current_scope, get_current_scope
from graflow_dist.scheduler.specs import (
    DEFAULT_MAX_CYCLES,
    GroupPolicySpec,
    NodeShape,
    RetrySettings,
)

# How a task runs on its own (`task()` outside any run): provided by
# graflow_dist.core.invoke, which needs the contexts that sit above this module.
_run_alone: Callable[[TaskWrapper], Any] | None = None


def use_standalone_runner(runner: Callable[[TaskWrapper], Any]) -> None:
    global _run_alone
    _run_alone = runner


class Executable:
    """Something that can stand on either side of ``>>`` and ``|``."""

    task_id: str

    @property
    def leftmost(self) -> Executable:
        return self

    @property
    def rightmost(self) -> Executable:
        return self

    def _ensure_registered(self, wf: GraphScope) -> None:
        wf.graph.add_node(self, skip_if_exists=True)

    def node_shape(self, graph: TaskGraph | None,
                   default_max_cycles: int = DEFAULT_MAX_CYCLES) -> NodeShape:
        """The scheduler's view of this node (no user code)."""
        return base_shape(self.task_id, graph, default_max_cycles)

    def __rshift__(self, other: Executable) -> SequentialTask:
        wf = current_scope()
        left, right = self.rightmost, other.leftmost
        left._ensure_registered(wf)
        right._ensure_registered(wf)
        wf.graph.add_edge(left.task_id, right.task_id)
        return SequentialTask([*_flatten(self), *_flatten(other)])

    def __lshift__(self, other: Executable) -> SequentialTask:
        return other >> self

    def __or__(self, other: Executable) -> ParallelGroup:
        if isinstance(other, ParallelGroup) and not isinstance(self, ParallelGroup):
            return other.__ror__(self)
        return ParallelGroup([self.leftmost, other.leftmost])


def checked_timeout(timeout: float | None, task_id: str) -> float | None:
    """A task's timeout in seconds: None (no limit of its own) or a finite number > 0."""
    if timeout is None:
        return None
    if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
            or not math.isfinite(timeout) or timeout <= 0):
        raise ValueError(f"task {task_id!r}: timeout must be a number of seconds > 0 "
                         f"(or None for no limit), got {timeout!r}")
    return float(timeout)


def _flatten(ex: Executable) -> list[Executable]:
    return list(ex.tasks) if isinstance(ex, SequentialTask) else [ex]


class TaskWrapper(Executable):
    """A task: a plain function plus its scheduling settings.

    Calling it with no arguments runs the function (outside any workflow); calling it
    with keyword arguments creates a new task instance with those arguments bound
    (``task_id=`` names it), as in Graflow; the instance keeps the task's settings
    (``timeout`` included).
    """

    timeout: float | None = None  # also for tasks pickled before timeouts existed

    def __init__(
        self,
        task_id: str,
        func: Callable[..., Any],
        *,
        inject_context: bool = False,
        resolve_keyword_args: bool = True,
        max_cycles: int | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | None = None,
        bound_kwargs: dict[str, Any] | None = None,
        register_to_context: bool = True,
        handler: str | TaskHandler | None = None,
    ) -> None:
        self._task_id = task_id
        self.timeout = checked_timeout(timeout, task_id)
        self.func = func
        self.handler_type, self.handler = check_handler(handler, task_id)
        self.inject_context = inject_context
        self.resolve_keyword_args = resolve_keyword_args
        self.max_cycles = max_cycles
        self.retry_policy = retry_policy
        self.max_retries = retry_policy.max_retries if retry_policy else (max_retries or 0)
        self._bound_kwargs = dict(bound_kwargs or {})
        for attr in ("__name__", "__doc__", "__module__", "__qualname__"):
            if hasattr(func, attr):
                setattr(self, attr, getattr(func, attr))
        if register_to_context:
            wf = get_current_scope()
            if wf is not None:
                wf.graph.add_node(self)

    @property
    def task_id(self) -> str:  # type: ignore[override]
        return self._task_id

    @property
    def name(self) -> str:
        return self._task_id

    @property
    def bound_kwargs(self) -> dict[str, Any]:
        return dict(self._bound_kwargs)

    def node_shape(self, graph: TaskGraph | None,
                   default_max_cycles: int = DEFAULT_MAX_CYCLES) -> NodeShape:
        shape = base_shape(self.task_id, graph, default_max_cycles)
        shape.max_cycles = self.effective_max_cycles(default_max_cycles)
        if self.retry_policy is not None:
            shape.retry = self.retry_policy.settings()
        elif self.max_retries:
            shape.retry = RetrySettings(max_retries=self.max_retries)
        shape.timeout = self.timeout
        return shape

    def effective_max_cycles(self, default: int = DEFAULT_MAX_CYCLES) -> int:
        return self.max_cycles if self.max_cycles is not None else default

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(
                f"task {self.task_id!r}: call it with keyword arguments to create a bound "
                f"task instance, or call {self.task_id}.func(...) to run the plain function"
            )
        if kwargs:
            task_id = kwargs.pop("task_id", None) or f"{self.task_id}_{uuid.uuid4().hex[:8]}"
            return self._copy(task_id, {**self._bound_kwargs, **kwargs})
        return self.run()

    def renamed(self, task_id: str) -> TaskWrapper:
        """The same task (function, bound arguments, settings) under another id."""
        return self._copy(task_id, self._bound_kwargs, register_to_context=False)

    def _copy(self, task_id: str, bound_kwargs: dict[str, Any], *,
              register_to_context: bool = True) -> TaskWrapper:
        """This task's function and settings under ``task_id`` with ``bound_kwargs``."""
        return TaskWrapper(
            task_id,
            self.func,
            inject_context=self.inject_context,
            resolve_keyword_args=self.resolve_keyword_args,
            max_cycles=self.max_cycles,
            max_retries=self.max_retries,
            retry_policy=self.retry_policy,
            timeout=self.timeout,
            bound_kwargs=bound_kwargs,
            register_to_context=register_to_context,
            handler=self.handler or self.handler_type,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if state.get("handler") is None and self.handler_type != DEFAULT_HANDLER:
            # A named handler registered here travels with the task to other processes.
            state["handler"] = registered_handler(self.handler_type)
        return state

    def run(self) -> Any:
        """Run the task: inside a handler, this execution's call with its resolved
        arguments; otherwise the function once on its own, in a throwaway context."""
        call = current_call(self)
        if call is not None:
            return call()
        assert _run_alone is not None, "graflow_dist.core.invoke is not loaded"
        return _run_alone(self)

    def __repr__(self) -> str:
        return f"TaskWrapper({self.task_id})"


def _do_nothing() -> None:
    return None


class Task(TaskWrapper):
    """A task that does nothing: a named start, join or end point of a graph built by
    hand (Graflow's ``Task``)."""

    def __init__(self, task_id: str, register_to_context: bool = True) -> None:
        super().__init__(task_id, _do_nothing, register_to_context=register_to_context)
        self.__name__ = task_id
        self.__qualname__ = f"Task.{task_id}"

    def __repr__(self) -> str:
        return f"Task({self.task_id})"


class SequentialTask(Executable):
    """The value of ``a >> b``: a chain whose id is its first task's."""

    def __init__(self, tasks: Iterable[Executable]) -> None:
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("a chain needs at least one task")

    @property
    def task_id(self) -> str:  # type: ignore[override]
        return self.tasks[0].task_id

    @property
    def leftmost(self) -> Executable:
        return self.tasks[0].leftmost

    @property
    def rightmost(self) -> Executable:
        return self.tasks[-1].rightmost

    def _ensure_registered(self, wf: GraphScope) -> None:
        for t in self.tasks:
            t._ensure_registered(wf)

    def __repr__(self) -> str:
        return " >> ".join(repr(t) for t in self.tasks)


class ParallelGroup(Executable):
    """Tasks that run in parallel, then join: ``(b | c) >> d`` runs d once, after the
    group's policy is satisfied by its members' outcomes."""

    def __init__(self, tasks: Iterable[Executable], name: str | None = None) -> None:
        members: list[Executable] = []
        for t in tasks:
            if isinstance(t, ParallelGroup) and not t._has_edges():
                members.extend(t.tasks)
                t._unregister()
            else:
                members.append(t.leftmost)
        self.tasks = members
        self.policy = GroupPolicySpec()
        self.backend: CoordinationBackend | None = None
        self.backend_config: dict[str, Any] = {}
        self.redis_client: Any = None  # backend="redis": the cluster, in this process only
        wf = current_scope()
        self._wf = wf
        self._task_id = name or wf.next_group_name()
        wf.graph.add_node(self)
        for member in self.tasks:
            member._ensure_registered(wf)

    @property
    def task_id(self) -> str:  # type: ignore[override]
        return self._task_id

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_wf"] = None  # the defining workflow stays on the client
        state["redis_client"] = None  # a live connection stays in its process
        return state

    def node_shape(self, graph: TaskGraph | None,
                   default_max_cycles: int = DEFAULT_MAX_CYCLES) -> NodeShape:
        shape = base_shape(self.task_id, graph, default_max_cycles)
        shape.members = self.member_ids
        shape.policy = self.policy
        return shape

    @property
    def member_ids(self) -> list[str]:
        return [t.task_id for t in self.tasks]

    def _has_edges(self) -> bool:
        graph = self._wf.graph
        return graph.has_node(self.task_id) and bool(
            graph.successors(self.task_id) or graph.predecessors(self.task_id)
        )

    def _unregister(self) -> None:
        if self._wf.graph.get_node_or_none(self.task_id) is self:
            self._wf.graph.remove_node(self.task_id)

    def set_group_name(self, name: str) -> ParallelGroup:
        self._wf.graph.rename_node(self.task_id, name)
        self._task_id = name
        return self

    def with_execution(
        self,
        backend: str | CoordinationBackend | None = None,
        backend_config: dict[str, Any] | None = None,
        policy: str | GroupPolicy = "strict",
    ) -> ParallelGroup:
        """Set the group's policy: ``"strict"`` (every member must succeed),
        ``"best_effort"`` (failures are tolerated), `AtLeastNGroupPolicy(n)` or
        `CriticalGroupPolicy([...])`; and how an in-process run runs its members:
        ``backend="direct"`` (default: one after another), ``"threading"`` (at the same
        time; ``backend_config={"thread_count": n}``) or ``"redis"`` (on a cluster's
        workers: ``backend_config={"redis_client": redis.Redis(...)}`` or
        ``{"redis_url": URL}``; a run submitted to a cluster runs every group there).
        A backend or config left out keeps the one set before."""
        if backend is not None:
            self.backend = resolve_backend(backend)
        if backend_config is not None:
            self.backend_config.update(check_backend_config(self.backend, backend_config))
            if backend_config.get("redis_client") is not None:
                self.redis_client = backend_config["redis_client"]
        self.policy = policy_spec(policy, self.member_ids)
        return self

    def __or__(self, other: Executable) -> ParallelGroup:
        if isinstance(other, ParallelGroup) and (other._has_edges() or self._has_edges()):
            return ParallelGroup([self, other])
        if isinstance(other, ParallelGroup):
            other._unregister()
            for t in other.tasks:
                self.tasks.append(t)
            return self
        member = other.leftmost
        member._ensure_registered(self._wf)
        self.tasks.append(member)
        return self

    def __ror__(self, other: Executable) -> ParallelGroup:
        member = other.leftmost
        member._ensure_registered(self._wf)
        self.tasks.insert(0, member)
        return self

    def __repr__(self) -> str:
        return f"ParallelGroup({self.task_id}: {' | '.join(self.member_ids)})"


def chain(*tasks: Executable) -> Executable:
    """``chain(a, b, c)`` is ``a >> b >> c``."""
    if not tasks:
        raise ValueError("chain requires at least one task")
    result: Executable = SequentialTask([tasks[0]]) if len(tasks) == 1 else tasks[0]
    for t in tasks[1:]:
        result = result >> t
    return result


def parallel(*tasks: Executable) -> ParallelGroup:
    """``parallel(a, b, c)`` is ``a | b | c``."""
    if len(tasks) < 2:
        raise ValueError("parallel requires at least two tasks")
    return ParallelGroup(tasks)


__all__ = [
    "AtLeastNGroupPolicy",
    "BestEffortGroupPolicy",
    "CriticalGroupPolicy",
    "Executable",
    "GroupPolicy",
    "ParallelGroup",
    "SequentialTask",
    "StrictGroupPolicy",
    "Task",
    "TaskWrapper",
    "chain",
    "parallel",
]
