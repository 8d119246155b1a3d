"""``@task``: turn a function into a workflow task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from graflow_dist.core.handler import TaskHandler
from graflow_dist.core.retry import RetryPolicy
from graflow_dist.core.task import TaskWrapper


@overload
def task(id_or_func: Callable[..., Any]) -> TaskWrapper: ...


@overload
def task(
    id_or_func: str | None = None,
    *,
    id: str | None = None,
    inject_context: bool = False,
    resolve_keyword_args: bool = True,
    max_cycles: int | None = None,
    max_retries: int | None = None,
    retry_policy: RetryPolicy | None = None,
    handler: str | TaskHandler | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], TaskWrapper]: ...


def task(
    id_or_func: str | Callable[..., Any] | None = None,
    *,
    id: str | None = None,  # noqa: A002 - Graflow's parameter name
    inject_context: bool = False,
    resolve_keyword_args: bool = True,
    max_cycles: int | None = None,
    max_retries: int | None = None,
    retry_policy: RetryPolicy | None = None,
    handler: str | TaskHandler | None = None,
    timeout: float | None = None,
) -> TaskWrapper | Callable[[Callable[..., Any]], TaskWrapper]:
    """Declare a task: ``@task``, ``@task("id")`` or ``@task(id=..., inject_context=...,
    max_cycles=..., max_retries=..., retry_policy=..., handler=..., timeout=...)``.

    The task id is the function's name unless given. Inside ``with workflow(...)`` the
    task joins that workflow's graph as soon as it is declared. ``handler`` is a
    `TaskHandler` or the name of a registered one (see `graflow_dist.core.handler`).
    ``timeout`` (seconds) bounds each run of the task: past it the run fails with
    `TaskTimeoutError` and is retried per the task's retry policy. A worker kills and
    replaces the process running it (so even code that never yields stops); the
    in-process engine interrupts it (see `graflow_dist.core.time_limit` for what it
    cannot interrupt).
    """

    def decorate(func: Callable[..., Any]) -> TaskWrapper:
        task_id = id or (id_or_func if isinstance(id_or_func, str) else None) or func.__name__
        return TaskWrapper(
            task_id,
            func,
            inject_context=inject_context,
            resolve_keyword_args=resolve_keyword_args,
            max_cycles=max_cycles,
            max_retries=max_retries,
            retry_policy=retry_policy,
            handler=handler,
            timeout=timeout,
        )

    if callable(id_or_func) and not isinstance(id_or_func, str):
        return decorate(id_or_func)
    return decorate
