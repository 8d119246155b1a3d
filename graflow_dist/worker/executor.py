"""TaskExecutor: runs the task specs of a batch against the session's graph.

A batch's graph is a `LazyGraph` over the worker's `CodeCache`: the code blobs of the
batch's tasks are fetched in one round trip and verified (HMAC) before they are
unpickled; the worker keeps a bounded number of them, never whole graphs. Each task's
result travels in its report; the coordinator writes it to the channel only if the
report's token is still current.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from graflow_dist.broker import Broker
from graflow_dist.broker.connection import TRANSIENT_ERRORS, patient_client
from graflow_dist.broker.feedback import FeedbackStore
from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.graph import LayeredGraph, TaskGraph
from graflow_dist.core.invoke import Invocation, describe_error, invoke_task
from graflow_dist.core.lazy_graph import LazyGraph
from graflow_dist.errors import (
    CodeLoadError,
    GraflowError,
    PayloadTooLargeError,
    SignatureError,
    UnknownTaskError,
    WireError,
    error_attributes,
)
from graflow_dist.hitl.backend.redis import RedisFeedbackBackend, request_deadline
from graflow_dist.hitl.parking import ParkingFeedbackManager
from graflow_dist.limits import MAX_MESSAGE_BYTES_ENV, MAX_RESULT_BYTES_ENV, Limits, too_large
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.trace.base import Tracer
from graflow_dist.trace.noop import NoopTracer
from graflow_dist.wire.messages import DONE, FAIL, PARK, Batch, Event
from graflow_dist.wire.signing import dumps_signed
from graflow_dist.wire.task_records import MAX_TRACEBACK_CHARS, clip, preview
from graflow_dist.wire.values import encode_value
from graflow_dist.worker.code_cache import DEFAULT_CODE_CACHE_NODES, CodeCache, RunGraphSource
from graflow_dist.worker.job_channel import JobChannel

_ERROR_TEXT_LIMIT = 64 * 1024


@dataclass
class Report:
    """What a task produced: the event for the coordinator (result included)."""

    event: Event
    invocation: Invocation | None = None
    duration_s: float = 0.0


class TaskExecutor:
    def __init__(self, broker: Broker, worker: str,
                 cache_nodes: int = DEFAULT_CODE_CACHE_NODES, tracer: Tracer | None = None,
                 limits: Limits | None = None) -> None:
        self.broker = broker
        self.limits = limits or Limits.from_env()
        # Task code reads and writes the channel through this client: a Redis restart
        # mid-task makes it wait and retry instead of failing the task.
        self.channel_client = patient_client(broker.client)
        self.feedback_backend = RedisFeedbackBackend(
            FeedbackStore(self.channel_client, broker.keyspace))
        self.worker = worker
        self.tracer = tracer or NoopTracer(enable_runtime_graph=False)
        self.code = CodeCache(broker, cache_nodes)

    def graph(self, batch: Batch) -> TaskGraph:
        """The run's graph as this batch sees it; the code of its tasks is fetched now."""
        self.code.prefetch(batch.code.values())
        return LazyGraph(RunGraphSource(self.code, batch))

    @staticmethod
    def task(graph: TaskGraph, session_id: str, task_id: str) -> Any:
        node = graph.get_node_or_none(task_id)
        if node is None:
            raise UnknownTaskError(task_id, f"the graph of run {session_id}")
        return node

    def context(self, batch: Batch, graph: TaskGraph) -> ExecutionContext:
        channel = JobChannel(batch.session_id, self.channel_client,
                             self.broker.keyspace.prefix, self.limits.max_value_bytes)
        trace_id = batch.trace_id or batch.session_id
        tracer = self.tracer.clone(trace_id)  # spans of this batch continue the submission's
        tracer.attach_to_traceparent(batch.traceparent)
        # Tasks added with next_task go into this batch's own layer.
        ctx = ExecutionContext(LayeredGraph(graph), session_id=batch.session_id,
                               channel=channel,
                               default_max_cycles=batch.default_max_cycles, tracer=tracer)
        ctx.trace_id = trace_id
        # A task waiting for a person parks (gives this worker back) instead of blocking.
        ctx.feedback_manager = ParkingFeedbackManager(self.feedback_backend,
                                                      channel_manager=channel)
        return ctx

    def run(self, ctx: ExecutionContext, spec: TaskSpec, queued_at: float = 0.0) -> Report:
        """Run one spec; never raises for the task's own errors. ``queued_at`` (when
        its batch was enqueued) and the task's times go into the report."""
        started_at, started = time.time(), time.perf_counter()
        session_id = ctx.session_id
        try:
            task = self.task(ctx.graph, session_id, spec.task_id)
        except TRANSIENT_ERRORS:
            raise  # Redis is gone, not the task: the job is re-dispatched after its lease
        except (GraflowError, Exception) as exc:  # noqa: B014 - user code may fail to load
            # No retry brings back missing or forged code.
            fatal = isinstance(exc, SignatureError | UnknownTaskError | WireError
                               | CodeLoadError)
            return self._timed(self.failure(session_id, spec, exc, fatal), queued_at,
                               started_at, started)
        invocation = invoke_task(task, ctx, spec, worker_id=self.worker)
        if invocation.parked is not None:
            request = invocation.parked
            event = Event(PARK, session_id, token=spec.token, task_id=spec.task_id,
                          worker=self.worker, wake_key=request.feedback_id,
                          deadline=request_deadline(request))
            return self._timed(Report(event, invocation), queued_at, started_at, started)
        if not invocation.ok:
            report = self.failure(session_id, spec, invocation.error, invocation.fatal,
                                  invocation.error_text)
            report.invocation = invocation
            report.event.traceback = clip(invocation.traceback, MAX_TRACEBACK_CHARS,
                                          keep_end=True)
            return self._timed(report, queued_at, started_at, started)
        try:
            result = self._encoded_result(spec, invocation.result)
            dynamic = {tid: dumps_signed(t) for tid, t in invocation.new_tasks.items()}
            event = Event(DONE, session_id, token=spec.token, task_id=spec.task_id,
                          worker=self.worker, outcome=invocation.outcome, dynamic=dynamic,
                          result=result)
            if event.size_estimate() > self.limits.max_message_bytes:
                raise too_large(f"the report of task {spec.task_id!r} (result and new tasks)",
                                event.size_estimate(), self.limits.max_message_bytes,
                                MAX_MESSAGE_BYTES_ENV)
        except PayloadTooLargeError as exc:  # the same result would be too large again
            return self._timed(self.failure(session_id, spec, exc, True), queued_at,
                               started_at, started)
        except Exception as exc:  # an unpicklable return value is the task's failure
            return self._timed(self.failure(
                session_id, spec, exc, False,
                f"result of task {spec.task_id!r} cannot be stored: {exc}"),
                queued_at, started_at, started)
        event.preview = preview(invocation.result)
        return self._timed(Report(event, invocation), queued_at, started_at, started)

    @staticmethod
    def _timed(report: Report, queued_at: float, started_at: float, started: float
               ) -> Report:
        report.duration_s = time.perf_counter() - started
        event = report.event
        event.queued_at, event.started_at = queued_at, started_at
        event.duration_s = report.duration_s
        event.finished_at = started_at + report.duration_s
        return report

    def _encoded_result(self, spec: TaskSpec, value: Any) -> bytes:
        """The encoded return value, or `PayloadTooLargeError` naming the task (checked
        before encoding where the size is plain, so a huge result is not copied)."""
        limit = self.limits.max_result_bytes
        what = f"the result of task {spec.task_id!r}"
        if isinstance(value, bytes | bytearray | str) and len(value) > limit:
            raise too_large(what, len(value), limit, MAX_RESULT_BYTES_ENV)
        result = encode_value(value)
        if len(result) > limit:
            raise too_large(what, len(result), limit, MAX_RESULT_BYTES_ENV)
        return result

    def failure(self, session_id: str, spec: TaskSpec, error: BaseException | None,
                fatal: bool, text: str = "") -> Report:
        assert error is not None
        text = text or describe_error(error)
        if len(text) > _ERROR_TEXT_LIMIT:
            text = text[:_ERROR_TEXT_LIMIT] + " ... (truncated)"
        event = Event(FAIL, session_id, token=spec.token, task_id=spec.task_id,
                      worker=self.worker, error=text,
                      error_type=type(error).__name__, fatal=fatal,
                      error_data=error_attributes(error) if isinstance(error, GraflowError)
                      else {})
        return Report(event)
