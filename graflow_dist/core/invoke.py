"""Running one task function: argument resolution, context injection, outcome capture.

Shared by the in-process engine and the distributed worker, so a task behaves the
same wherever it runs.
"""

from __future__ import annotations

import inspect
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from types import FunctionType
from typing import Any

from graflow_dist.channels.base import iteration_key, result_key
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.dynamic import DynamicNode, DynamicScope
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.handler import TaskHandler, resolve_handler
from graflow_dist.core.handlers.direct import DirectTaskHandler
from graflow_dist.core.running import running_call
from graflow_dist.core.task import TaskWrapper, use_standalone_runner
from graflow_dist.errors import (
    CycleLimitExceededError,
    GraflowError,
    TaskHandlerError,
    WorkflowError,
)
from graflow_dist.hitl.parking import TaskParked
from graflow_dist.hitl.types import FeedbackRequest
from graflow_dist.scheduler.events import TaskOutcome
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.trace.base import Tracer
from graflow_dist.trace.scope import enter_task, exit_task

# Errors a retry cannot fix: the run fails with them as they are.
FATAL_ERRORS: tuple[type[BaseException], ...] = (CycleLimitExceededError, TaskHandlerError)

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass
class Invocation:
    """What running a task produced."""

    result: Any = None
    outcome: TaskOutcome = field(default_factory=TaskOutcome)
    error: BaseException | None = None
    error_text: str = ""
    traceback: str = ""
    new_tasks: dict[str, DynamicNode] = field(default_factory=dict)
    parked: FeedbackRequest | None = None  # the task waits for this request's answer
    timed_out: float | None = None  # the timeout it ran past (the engine's time limit)

    @property
    def ok(self) -> bool:
        return self.error is None and self.parked is None

    @property
    def fatal(self) -> bool:
        return isinstance(self.error, FATAL_ERRORS)


def _parameter_names(func: Any) -> tuple[str, ...]:
    """Names a task's arguments can be given by keyword."""
    if (type(func) is FunctionType and not hasattr(func, "__wrapped__")
            and not hasattr(func, "__signature__")):
        # A plain function: read its code (tasks built in a loop are each a new
        # function, so a cache by function would miss; inspect costs ~20 us a call).
        code = func.__code__
        return code.co_varnames[code.co_posonlyargcount:
                                code.co_argcount + code.co_kwonlyargcount]
    return _signature_names(func)


@lru_cache(maxsize=4096)
def _signature_names(func: Any) -> tuple[str, ...]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in params if p.kind in _KEYWORD_KINDS)


def _arguments(
    task: TaskWrapper, task_ctx: TaskExecutionContext
) -> tuple[list[Any], dict[str, Any]]:
    channel = task_ctx.get_channel()
    args: list[Any] = [task_ctx] if task.inject_context else []
    if task_ctx.cycle_count > 1:
        data = channel.get(iteration_key(task.task_id, task_ctx.cycle_count))
        if data is not None:
            args.append(data)
    names = _parameter_names(task.func)[len(args):]
    kwargs: dict[str, Any] = {}
    if task.resolve_keyword_args and names:
        wanted = [n for n in names if n not in task.bound_kwargs]
        lookups = [result_key(n) for n in wanted] + wanted
        found = channel.get_many(lookups)
        for name in wanted:
            if result_key(name) in found:
                kwargs[name] = found[result_key(name)]
            elif name in found:
                kwargs[name] = found[name]
    kwargs.update(task.bound_kwargs)
    return args, kwargs


def describe_error(error: BaseException) -> str:
    if isinstance(error, GraflowError):
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def invoke_task(
    task: Any,
    ctx: ExecutionContext,
    spec: TaskSpec | None,
    *,
    worker_id: str | None = None,
    handlers: dict[str, TaskHandler] | None = None,
) -> Invocation:
    """Run ``task`` once under ``spec`` through its handler (``handlers``: names
    registered with one engine); never raises for errors of the task itself. The
    context's tracer sees the start and the end of the run."""
    task_ctx = TaskExecutionContext(task.task_id, ctx, spec, worker_id)
    tracer = ctx.tracer
    dynamic = DynamicScope(task.task_id, task_ctx.spec.cycle).__enter__()
    scope = enter_task(task_ctx)
    try:
        tracer.on_task_start(task, ctx)
        if not isinstance(task, TaskWrapper):
            raise WorkflowError(f"node {task.task_id!r} is a {type(task).__name__}, not a task")
        handler = resolve_handler(task, handlers)
        args, kwargs = _arguments(task, task_ctx)
        if type(handler) is DirectTaskHandler:
            result = task.func(*args, **kwargs)
        else:
            with running_call(task, lambda: task.func(*args, **kwargs)):
                result = handler.execute_task(task, ctx)
    except TaskParked as parked:  # waits for a person: the worker reports it parked
        tracer.on_task_end(task, ctx, None, None)
        return Invocation(outcome=task_ctx.outcome, parked=parked.request)
    except Exception as exc:  # a task's own failure, reported, never propagated here
        tracer.on_task_end(task, ctx, None, exc)
        return Invocation(
            outcome=task_ctx.outcome,
            error=exc,
            error_text=describe_error(exc),
            traceback=traceback.format_exc(),
        )
    finally:
        exit_task(scope)
        dynamic.__exit__()
    tracer.on_task_end(task, ctx, result, None)
    _report_dynamic_tasks(tracer, task.task_id, task_ctx.outcome)
    return Invocation(result=result, outcome=task_ctx.outcome, new_tasks=task_ctx.new_tasks)


def _report_dynamic_tasks(tracer: Tracer, task_id: str, outcome: TaskOutcome) -> None:
    if outcome.iterate:
        tracer.on_dynamic_task_added(task_id, parent_task_id=task_id, is_iteration=True)
    for added in outcome.next_tasks:
        for shape in added.new_shapes():  # new tasks, not a jump to an existing one
            tracer.on_dynamic_task_added(shape.node_id, parent_task_id=task_id,
                                         metadata={"goto": added.goto})


def run_alone(task: TaskWrapper) -> Any:
    """Run ``task`` once on its own, in a throwaway context (``task()``): it fails
    like the plain function would."""
    graph = TaskGraph()
    graph.add_node(task)
    invocation = invoke_task(task, ExecutionContext(graph), None)
    if invocation.error is not None:
        raise invocation.error
    return invocation.result


use_standalone_runner(run_alone)
