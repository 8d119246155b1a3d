"""WorkflowEngine: runs a workflow in this process, driving the pure scheduler."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from graflow_dist.channels.base import result_key
from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.invoke import invoke_task
from graflow_dist.errors import GraflowError, ParallelGroupError
from graflow_dist.scheduler.events import Decision, RunEnd
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.scheduler.state import Scheduler


class WorkflowEngine:
    """Runs tasks one at a time, in ready order, in the calling thread.

    ``execute`` starts a new context or continues a restored one (after
    ``CheckpointManager.resume_from_checkpoint``) and returns the last executed task's
    result. A failed, cancelled or step-limited run raises the matching
    `WorkflowError` subclass; the context keeps the frontier for inspection.
    """

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
            try:
                while end is None:
                    if not ready:
                        ready.extend(self._wait_for_retries(scheduler))
                        continue
                    spec = ready.popleft()
                    if spec.token not in scheduler.inflight:
                        continue
                    decision, failure = self._run_one(context, scheduler, spec)
                    if failure is None:
                        failures.pop(spec.task_id, None)
                    else:
                        failures[spec.task_id] = failure
                    ready.extend(decision.dispatch)
                    hooks.dispatched(decision)
                    if decision.checkpoint is not None:
                        self._write_checkpoint(context, decision)
                    end = decision.end
            finally:
                context.frontier = scheduler.snapshot()
                context.attach_scheduler(None)
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
    def _wait_for_retries(scheduler: Scheduler) -> list[TaskSpec]:
        due_at = scheduler.next_due()
        if due_at is None:  # nothing in flight and nothing delayed: cannot happen
            raise GraflowError("engine: no runnable task while the run is unfinished")
        time.sleep(max(0.0, due_at - time.time()))
        return scheduler.release_due(time.time())

    @staticmethod
    def _run_one(
        context: ExecutionContext, scheduler: Scheduler, spec: TaskSpec
    ) -> tuple[Decision, BaseException | None]:
        task = context.graph.get_node(spec.task_id)
        invocation = invoke_task(task, context, spec)
        if invocation.ok:
            context.set_result(spec.task_id, invocation.result)
            context.last_result = invocation.result
            return scheduler.complete(spec.token, invocation.outcome), None
        decision = scheduler.fail(
            spec.token,
            invocation.error_text,
            now=time.time(),
            error=invocation.error if invocation.fatal else None,
            retryable=not invocation.fatal,
        )
        return decision, invocation.error

    @staticmethod
    def _write_checkpoint(context: ExecutionContext, decision: Decision) -> None:
        from graflow_dist.core.checkpoint import CheckpointManager

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
