"""WorkflowEngine: runs a workflow in this process, driving the pure scheduler."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from graflow_dist.channels.base import result_key
from graflow_dist.coordination.coordinator import CoordinationBackend
from graflow_dist.coordination.executor import in_process_coordinator
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext, use_engine
from graflow_dist.core.dynamic import adopt
from graflow_dist.core.handler import TaskHandler, check_handler
from graflow_dist.core.invoke import Invocation, invoke_task
from graflow_dist.core.time_limit import call_with_time_limit
from graflow_dist.core.waiting import Waiting, stop_waiting
from graflow_dist.errors import (
    FeedbackTimeoutError,
    GraflowError,
    ParallelGroupError,
    TaskTimeoutError,
)
from graflow_dist.scheduler.events import Decision, RunEnd
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.scheduler.state import Scheduler

# Backends whose ready members run as one batch.
TOGETHER = (CoordinationBackend.THREADING, CoordinationBackend.REDIS)


class WorkflowEngine:
    """Runs tasks in ready order in the calling thread (the ready members of a group
    with ``backend="threading"`` together, in threads).

    ``execute`` starts a new context or continues a restored one (after
    ``CheckpointManager.resume_from_checkpoint``) and returns the last executed task's
    result. A failed, cancelled or step-limited run raises the matching
    `WorkflowError` subclass; the context keeps the frontier for inspection. A run left
    with only tasks that wait for human feedback stops with status ``waiting``, writes
    a checkpoint and returns None (Graflow's behaviour); ``execute`` continues it.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, TaskHandler] = {}

    def register_handler(self, handler_type: str, handler: TaskHandler) -> None:
        """Make ``@task(handler=handler_type)`` use ``handler`` in runs of this engine."""
        check_handler(handler, f"<handler {handler_type!r}>")
        self._handlers[handler_type] = handler

    def execute(self, context: ExecutionContext, start_task_id: str | None = None) -> Any:
        name = workflow_name(context)
        hooks = TracerHooks(context)
        context.tracer.on_workflow_start(name, context)
        try:
            scheduler, first = self._scheduler_for(context, start_task_id)
            context.attach_scheduler(scheduler)
            ready: deque[TaskSpec] = deque(first.dispatch)
            hooks.dispatched(first)
            end = first.end
            failures: dict[str, BaseException] = {}  # tasks whose latest attempt raised
            waiting: list[Waiting] = []
            own_graph = False  # the workflow's graph is shared: dynamic nodes go into a copy
            try:
                while end is None:
                    if not ready:
                        if waiting and scheduler.next_due() is None:
                            break  # nothing left but tasks waiting for people
                        ready.extend(self._wait_for_retries(scheduler))
                        continue
                    batch = self._take_batch(context, scheduler, ready)
                    for spec, invocation in self._run_batch(context, scheduler, batch):
                        if invocation.parked is not None:  # a parking manager in process
                            request = invocation.parked
                            invocation.error = FeedbackTimeoutError(request.feedback_id,
                                                                    request.timeout)
                        if isinstance(invocation.error, FeedbackTimeoutError):
                            waiting.append(Waiting(spec, invocation.error))
                            continue
                        if invocation.ok and invocation.new_tasks and not own_graph:
                            context.graph, own_graph = context.graph.copy(), True
                        decision = self._apply(context, scheduler, spec, invocation, failures)
                        ready.extend(decision.dispatch)
                        hooks.dispatched(decision)
                        if decision.checkpoint is not None:
                            self._write_checkpoint(context, decision)
                        end = decision.end
                        if end is not None:
                            break
            finally:
                context.frontier = scheduler.snapshot()
                context.attach_scheduler(None)
            if end is None:
                return stop_waiting(context, waiting)
            return self._finish(context, end, failures)
        finally:
            context.tracer.on_workflow_end(name, context, result=context.last_result)

    @staticmethod
    def _scheduler_for(
        context: ExecutionContext, start_task_id: str | None
    ) -> tuple[Scheduler, Decision]:
        shape = context.graph.shape(context.default_max_cycles)
        if context.frontier is not None:
            scheduler = Scheduler.restore(shape, context.frontier, max_steps=context.max_steps)
            first = scheduler.resume()
            return scheduler, first
        scheduler = Scheduler(shape, context.session_id, max_steps=context.max_steps)
        start = start_task_id or context.start_node
        return scheduler, scheduler.start([start] if start else None)

    @staticmethod
    def _take_batch(
        context: ExecutionContext, scheduler: Scheduler, ready: deque[TaskSpec]
    ) -> list[TaskSpec]:
        """The next spec, with the other ready members of its group if the group runs
        them together (``backend="threading"``); specs no longer in flight are dropped."""
        while ready:
            spec = ready.popleft()
            if spec.token in scheduler.inflight:
                break
        else:
            return []
        if spec.group is None or _backend_of(context, spec.group) not in TOGETHER:
            return [spec]
        batch = [spec]
        for other in list(ready):
            if other.group == spec.group and other.token in scheduler.inflight:
                ready.remove(other)
                batch.append(other)
        return batch

    def _run_batch(
        self, context: ExecutionContext, scheduler: Scheduler, batch: list[TaskSpec]
    ) -> list[tuple[TaskSpec, Invocation]]:
        if not batch:
            return []

        def run(spec: TaskSpec) -> tuple[TaskSpec, Invocation]:
            task = context.graph.get_node(spec.task_id)
            timeout = scheduler.shape.node(spec.task_id).timeout
            if timeout is None:
                return spec, invoke_task(task, context, spec, handlers=self._handlers)
            invocation, expired = call_with_time_limit(
                timeout, lambda: invoke_task(task, context, spec, handlers=self._handlers))
            if not expired:
                assert invocation is not None
                return spec, invocation
            error = TaskTimeoutError(spec.task_id, timeout, spec.attempt, context.session_id)
            if invocation is None:  # interrupted before invoke_task could tell the tracer
                context.tracer.on_task_end(task, context, None, error)
            return spec, Invocation(error=error, error_text=error.cause, timed_out=timeout)

        group_id = batch[0].group
        if group_id is None:
            return [run(batch[0])]
        coordinator = in_process_coordinator(context.graph.get_node(group_id), context)
        return coordinator.run_members(batch, run)

    @staticmethod
    def _apply(
        context: ExecutionContext,
        scheduler: Scheduler,
        spec: TaskSpec,
        invocation: Invocation,
        failures: dict[str, BaseException],
    ) -> Decision:
        if invocation.timed_out is not None:
            failures.pop(spec.task_id, None)  # the run's own TaskTimeoutError says it all
            return scheduler.timed_out(spec.token, invocation.timed_out, now=time.time())
        if invocation.ok:
            failures.pop(spec.task_id, None)
            adopt(context.graph, invocation.new_tasks)
            context.set_result(spec.task_id, invocation.result)
            context.last_result = invocation.result
            return scheduler.complete(spec.token, invocation.outcome)
        assert invocation.error is not None
        failures[spec.task_id] = invocation.error
        return scheduler.fail(
            spec.token,
            invocation.error_text,
            now=time.time(),
            error=invocation.error if invocation.fatal else None,
            retryable=not invocation.fatal,
        )

    @staticmethod
    def _wait_for_retries(scheduler: Scheduler) -> list[TaskSpec]:
        due_at = scheduler.next_due()
        if due_at is None:  # nothing in flight and nothing delayed: cannot happen
            raise GraflowError("engine: no runnable task while the run is unfinished")
        time.sleep(max(0.0, due_at - time.time()))
        return scheduler.release_due(time.time())

    @staticmethod
    def _write_checkpoint(context: ExecutionContext, decision: Decision) -> None:
        request = decision.checkpoint
        assert request is not None
        CheckpointManager.create_checkpoint(
            context, path=request.path, metadata=request.metadata
        )
        context.clear_checkpoint_request()

    @staticmethod
    def _finish(
        context: ExecutionContext, end: RunEnd | None, failures: dict[str, BaseException]
    ) -> Any:
        assert end is not None
        context.status = end.status
        if end.error is not None:
            error = end.error
            cause = _cause_of(error, failures)
            if error is cause:
                raise error
            raise error from cause
        return context.last_result


def _backend_of(context: ExecutionContext, group_id: str) -> CoordinationBackend | None:
    return getattr(context.graph.get_node(group_id), "backend", None)


def workflow_name(context: ExecutionContext) -> str:
    """The name tracers see: the workflow's, else one made from the session id."""
    return str(context.config.get("workflow") or f"workflow_{context.session_id[:8]}")


class TracerHooks:
    """Tells the context's tracer which tasks became ready and which parallel groups
    started and finished, from the scheduler's decisions."""

    def __init__(self, context: ExecutionContext) -> None:
        self.context = context
        self.tracer = context.tracer
        self.open_groups: set[str] = set()

    def dispatched(self, decision: Decision) -> None:
        ctx, graph = self.context, self.context.graph
        for spec in decision.dispatch:
            group = spec.group
            if group is not None and group not in self.open_groups:
                self.open_groups.add(group)
                self.tracer.on_parallel_group_start(group, graph.get_node(group).member_ids,
                                                    ctx)
            self.tracer.on_task_queued(graph.get_node(spec.task_id), ctx)
        for node_id in decision.completed:
            if node_id in self.open_groups:
                self.open_groups.discard(node_id)
                members = graph.get_node(node_id).member_ids
                results = {m: ctx.get_result(m) for m in members
                           if ctx.channel.exists(result_key(m))}
                self.tracer.on_parallel_group_end(node_id, members, ctx, results)


def _cause_of(error: Exception, failures: dict[str, BaseException]) -> BaseException | None:
    """The task exception behind a run's error, if one is: a failed group's first
    failed member, or the failed task itself (never an earlier, recovered failure)."""
    if isinstance(error, ParallelGroupError):
        return next((failures[t] for t in error.failed if t in failures), None)
    task_id = getattr(error, "task_id", None)
    return failures.get(task_id) if task_id is not None else None


use_engine(WorkflowEngine)
