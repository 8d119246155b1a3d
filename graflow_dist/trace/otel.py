"""OpenTelemetry: a tracer that emits one span per task (and one per in-process run),
and the W3C trace context a submission hands to the workers.

Needs ``opentelemetry-api`` (extra ``otel``); spans go wherever the process's
``TracerProvider`` sends them (an SDK configured by the application, or by running the
service under ``opentelemetry-instrument``). Without an SDK the API records nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow_dist.optional import available, require
from graflow_dist.trace.base import Tracer
from graflow_dist.trace.scope import current_task_context

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext

INSTRUMENTATION_NAME = "graflow_dist"
ATTR_SESSION = "graflow.session_id"
ATTR_WORKFLOW = "graflow.workflow"
ATTR_TASK = "graflow.task_id"
ATTR_TASK_TYPE = "graflow.task_type"
ATTR_ATTEMPT = "graflow.attempt"
ATTR_CYCLE = "graflow.cycle"
ATTR_WORKER = "graflow.worker"
ATTR_TOKEN = "graflow.dispatch_token"
ATTR_GROUP = "graflow.group"
SUCCESSFUL_RUN_STATUSES = ("completed", "terminated")


OTEL_INSTALL = "pip install 'graflow-dist[otel]'"


def otel_available() -> bool:
    return available("opentelemetry.trace")


def otel_configured() -> bool:
    """Whether this process sends spans anywhere: the OpenTelemetry API is installed
    and an SDK set the global tracer provider (e.g. ``opentelemetry-instrument``).
    Without one every span is dropped, so there is no point paying for them."""
    if not otel_available():
        return False
    trace = _api()
    return not isinstance(trace.get_tracer_provider(),
                          trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _api() -> Any:
    return require("opentelemetry.trace", "OpenTelemetry tracing", OTEL_INSTALL)


def _otel(module: str) -> Any:
    return require(f"opentelemetry.{module}", "OpenTelemetry tracing", OTEL_INSTALL)


def submit_traceparent(session_id: str, workflow: str = "") -> str:
    """Record a ``submit`` span (a child of the caller's current span, if any) and
    return its W3C ``traceparent``, which the run's tasks continue on the workers.
    Empty when OpenTelemetry is not installed or nothing is being traced."""
    if not otel_available() or (
            not otel_configured() and not _api().get_current_span().get_span_context().is_valid):
        return ""  # nothing records spans here and there is no trace to continue
    propagation = _otel("trace.propagation.tracecontext")
    tracer = _api().get_tracer(INSTRUMENTATION_NAME)
    attributes = {ATTR_SESSION: session_id, ATTR_WORKFLOW: workflow}
    carrier: dict[str, str] = {}
    with tracer.start_as_current_span(f"submit {workflow or session_id}",
                                      attributes=attributes):
        propagation.TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


class OpenTelemetryTracer(Tracer):
    """Spans for runs and tasks, with session, task, attempt, cycle and worker as
    ``graflow.*`` attributes; a failed task's span has ERROR status and the exception.

    Parameters
    ----------
    tracer_provider:
        Where spans go (default: the global provider).
    """

    def __init__(self, tracer_provider: Any = None, enable_runtime_graph: bool = True) -> None:
        super().__init__(enable_runtime_graph=enable_runtime_graph)
        trace = _api()
        self._provider = tracer_provider
        provider = tracer_provider or trace.get_tracer_provider()
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        self._remote_parent: Any = None  # an OTel Context with the submitter's span
        self._open: dict[str, list[tuple[Any, Any]]] = {}  # name -> [(span, token)]

    # --- spans ------------------------------------------------------------------------

    def _start(self, name: str, attributes: dict[str, Any]) -> None:
        otel_context = _otel("context")
        trace = _api()
        parent = None  # the current context: a run's span in process, or the caller's
        if self._remote_parent is not None and not trace.get_current_span() \
                .get_span_context().is_valid:
            parent = self._remote_parent
        span = self._tracer.start_span(name, context=parent, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._open.setdefault(name, []).append((span, token))

    def _end(self, name: str, error: BaseException | str | None = None) -> None:
        otel_context = _otel("context")
        trace = _api()
        stack = self._open.get(name)
        if not stack:
            return
        span, token = stack.pop()
        if error is not None:
            if isinstance(error, BaseException):
                span.record_exception(error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))
        span.end()
        otel_context.detach(token)

    def _output_trace_start(self, name: str, trace_id: str | None,
                            metadata: dict[str, Any] | None) -> None:
        meta = metadata or {}
        self._start(name, {ATTR_WORKFLOW: name, ATTR_SESSION: str(meta.get("session_id", ""))})

    def _output_trace_end(self, name: str, output: Any,
                          metadata: dict[str, Any] | None) -> None:
        self._end(name, (metadata or {}).get("error"))

    def _output_span_start(self, name: str, parent_name: str | None,
                           metadata: dict[str, Any] | None) -> None:
        attributes: dict[str, Any] = {ATTR_TASK: name}
        if metadata and "task_type" in metadata:
            attributes[ATTR_TASK_TYPE] = str(metadata["task_type"])
        task_ctx = current_task_context()
        if task_ctx is not None and task_ctx.task_id == name:
            attributes.update({
                ATTR_SESSION: task_ctx.session_id, ATTR_ATTEMPT: task_ctx.attempt,
                ATTR_CYCLE: task_ctx.cycle_count, ATTR_WORKER: task_ctx.worker_id,
                ATTR_TOKEN: task_ctx.dispatch_token})
            if task_ctx.spec.group:
                attributes[ATTR_GROUP] = task_ctx.spec.group
        self._start(name, attributes)

    def _output_span_end(self, name: str, output: Any,
                         metadata: dict[str, Any] | None) -> None:
        self._end(name, (metadata or {}).get("error"))

    def _output_event(self, name: str, parent_span: str | None,
                      metadata: dict[str, Any] | None) -> None:
        trace = _api()
        attributes = {k: v for k, v in (metadata or {}).items()
                      if isinstance(v, str | int | float | bool)}
        trace.get_current_span().add_event(name, attributes)

    def _output_attach_to_trace(self, trace_id: str, parent_span_id: str | None) -> None:
        trace = _api()
        if parent_span_id is None:
            return
        context = trace.SpanContext(int(trace_id, 16), int(parent_span_id, 16), is_remote=True,
                                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        self._remote_parent = trace.set_span_in_context(trace.NonRecordingSpan(context))

    def attach_to_traceparent(self, traceparent: str) -> None:
        """Continue the trace of ``traceparent`` exactly (sampling flag included)."""
        propagation = _otel("trace.propagation.tracecontext")
        trace = _api()
        context = propagation.TraceContextTextMapPropagator().extract(
            {"traceparent": traceparent})
        if trace.get_current_span(context).get_span_context().is_valid:
            self._remote_parent = context
            self._current_trace_id = traceparent.split("-")[1]

    # --- hooks that need more than the lifecycle methods carry --------------------------

    def on_workflow_end(self, workflow_name: str, context: ExecutionContext,
                        result: Any = None) -> None:
        status = str(getattr(context.status, "value", context.status))
        metadata: dict[str, Any] = {"steps": context.steps}
        if status not in SUCCESSFUL_RUN_STATUSES:
            metadata["error"] = f"run {status}"
        self.trace_end(workflow_name, output=result, metadata=metadata)

    def on_task_end(self, task: Any, context: ExecutionContext, result: Any = None,
                    error: BaseException | None = None) -> None:
        if error is not None:
            stack = self._open.get(task.task_id)
            if stack:
                stack[-1][0].record_exception(error)
        super().on_task_end(task, context, result, error)

    def get_current_span_id(self) -> str | None:
        span_context = _api().get_current_span().get_span_context()
        return format(span_context.span_id, "016x") if span_context.is_valid else None

    def clone(self, trace_id: str) -> OpenTelemetryTracer:
        branch = OpenTelemetryTracer(self._provider, enable_runtime_graph=False)
        branch._remote_parent = self._remote_parent
        branch._current_trace_id = trace_id
        return branch

    def flush(self) -> None:
        provider = self._provider or _api().get_tracer_provider()
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush()

    def __getstate__(self) -> dict[str, Any]:
        # Live spans and the provider stay in this process (a checkpoint pickles the
        # run's tracer); the copy uses the global provider of the process it lands in.
        state = dict(self.__dict__)
        state.update(_provider=None, _tracer=None, _remote_parent=None, _open={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tracer = _api().get_tracer_provider().get_tracer(INSTRUMENTATION_NAME)
