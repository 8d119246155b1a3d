"""Client: submit runs to a cluster, watch them, fetch results, cancel, resume.

Submitting writes the run (graph, settings, initial channel data, frontier) and its
submission event in one transaction; the submitting process may exit right after.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from graflow_dist import limits
from graflow_dist.broker import Broker
from graflow_dist.broker.connection import (
    TRANSIENT_ERRORS,
    check_connection,
    connect,
    explains_refused_writes,
)
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.submission import Submission
from graflow_dist.broker.task_states import DEAD_LETTERED, FAILED, task_states
from graflow_dist.channels.base import result_key
from graflow_dist.channels.redis import RedisChannel
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.dynamic import adopt, load_dynamic
from graflow_dist.core.engine import WorkflowEngine
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.graph_code import graph_from_code
from graflow_dist.core.workflow import WorkflowContext
from graflow_dist.errors import (
    CheckpointWarning,
    CodeMissingError,
    FeedbackError,
    RunActiveError,
    RunEndedError,
    RunTimeoutError,
    TaskStateError,
    UnknownFeedbackError,
    UnknownTaskError,
    WireError,
    error_from_name,
)
from graflow_dist.hitl.backend.redis import RedisFeedbackBackend
from graflow_dist.hitl.manager import FeedbackManager
from graflow_dist.hitl.types import FeedbackRequest, FeedbackResponse, make_response
from graflow_dist.names import check_prefix, check_session_id, check_task_id, check_workflow_name
from graflow_dist.observability.outage import OutageLog
from graflow_dist.scheduler.events import FINISHED_STATUSES, SUCCEEDED_STATUSES, RunStatus
from graflow_dist.scheduler.requeue import requeue_task
from graflow_dist.scheduler.specs import GraphShape
from graflow_dist.scheduler.state import DEFAULT_CRASH_LIMIT
from graflow_dist.submitter import Submitter
from graflow_dist.trace.otel import submit_traceparent
from graflow_dist.wire.messages import CANCEL, Event
from graflow_dist.wire.values import encode_value

log = structlog.get_logger("graflow_dist.client")
# Statuses of runs that are over (all of them) and of those that succeeded.
FINISHED = tuple(sorted(s.value for s in FINISHED_STATUSES))
SUCCEEDED = tuple(sorted(s.value for s in SUCCEEDED_STATUSES))
# Task states (see `graflow_dist.broker.task_states`) that `Client.retry` accepts.
RETRYABLE_STATES = frozenset({FAILED, DEAD_LETTERED})
# A run not over after this long: `WorkflowRun.wait` says so if no coordinator runs.
UNPICKED_WARNING_S = 5.0
NO_COORDINATOR = ("no coordinator is running for prefix {prefix!r} on this Redis: the run "
                  "waits until one starts (graflow-dist coordinator, or graflow-dist up)")


@dataclass
class Progress:
    """Task counts of a run for progress displays."""

    status: str
    total: int
    done: int
    running: int
    pending: int
    failed: int

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class Client:
    """A connection to a graflow-dist cluster.

    Parameters
    ----------
    redis_url:
        ``redis://`` or ``rediss://`` URL (password included); default
        ``GRAFLOW_DIST_REDIS_URL``.
    prefix:
        Deployment prefix (default ``GRAFLOW_DIST_PREFIX`` or ``graflow``).
    queue:
        RQ queue the run's tasks go to (default: the prefix).
    """

    def __init__(self, redis_url: str | None = None, *, prefix: str | None = None,
                 queue: str | None = None, redis_client: redis.Redis | None = None,
                 check: bool = True) -> None:
        self.redis = redis_client or connect(redis_url)
        if check and redis_client is None:
            check_connection(self.redis, redis_url)
        self.keyspace = Keyspace.from_env(prefix)
        self.broker = Broker(self.redis, self.keyspace)
        self.queue = check_prefix(queue, "queue name") if queue else self.keyspace.queue_name
        self._submitter = Submitter(self.broker)

    # --- submitting -------------------------------------------------------------------

    def submit(
        self,
        workflow_or_context: WorkflowContext | ExecutionContext,
        channel: str = "redis",
        *,
        start_node: str | None = None,
        max_steps: int | None = None,
        crash_limit: int = DEFAULT_CRASH_LIMIT,
        initial_channel: dict[str, Any] | None = None,
    ) -> WorkflowRun:
        """Hand a workflow (or a context, e.g. restored from a checkpoint) to the
        cluster. Returns at once; the run proceeds without this process."""
        if channel != "redis":
            raise ValueError(f"cluster runs share state through Redis: channel={channel!r} "
                             "is not supported (use channel='redis')")
        if isinstance(workflow_or_context, WorkflowContext):
            kwargs = {"max_steps": max_steps} if max_steps is not None else {}
            ctx = workflow_or_context.create_context(start_node, **kwargs)
            workflow_name = workflow_or_context.name
        elif isinstance(workflow_or_context, ExecutionContext):
            ctx = workflow_or_context
            workflow_name = str(ctx.config.get("workflow", ""))
        else:
            raise TypeError("submit() takes a workflow(...) or an ExecutionContext, not "
                            f"{type(workflow_or_context).__name__}")
        if initial_channel:
            for key, value in initial_channel.items():
                ctx.channel.set(key, value)
        return self._submit_context(ctx, workflow_name, crash_limit)

    @explains_refused_writes
    def _submit_context(self, ctx: ExecutionContext, workflow_name: str,
                        crash_limit: int) -> WorkflowRun:
        graph, shape, sub = self._submission(ctx, workflow_name, crash_limit)
        self._submitter.submit(graph, shape, sub)
        return WorkflowRun(self, ctx.session_id, graph=ctx.graph, last_task=shape.only_sink())

    def _submission(self, ctx: ExecutionContext, workflow_name: str, crash_limit: int
                    ) -> tuple[TaskGraph, GraphShape, Submission]:
        # Names become keys, paths and log fields: checked here, where they enter.
        check_session_id(ctx.session_id)
        check_workflow_name(workflow_name)
        shape = ctx.graph.shape(ctx.default_max_cycles)
        for node_id in shape.nodes:
            check_task_id(node_id)
        if ctx.start_node is not None:
            check_task_id(ctx.start_node)
        record = RunRecord(
            session_id=ctx.session_id, trace_id=ctx.trace_id, workflow=workflow_name,
            start_node=ctx.start_node, max_steps=ctx.max_steps,
            default_max_cycles=ctx.default_max_cycles,
            default_max_retries=ctx.default_max_retries, crash_limit=crash_limit,
            queue=self.queue, resume=ctx.frontier is not None, incarnation=uuid.uuid4().hex,
            total=sum(1 for node in shape.nodes.values() if not node.is_group),
            submitted_at=time.time(),
            traceparent=submit_traceparent(ctx.session_id, workflow_name),
        )
        in_redis = isinstance(ctx.channel, RedisChannel)
        values = {} if in_redis else {k: encode_value(v) for k, v in ctx.channel.items()}
        limit = limits.max_value_bytes()
        for key, value in values.items():
            if len(value) > limit:
                raise limits.too_large(f"channel key {key!r} of run {ctx.session_id}",
                                       len(value), limit, limits.MAX_VALUE_BYTES_ENV)
        return ctx.graph, shape, Submission(record, shape, None, frontier=ctx.frontier,
                                            channel_values=values, replace_channel=not in_redis)

    def resume(self, checkpoint_path: str | os.PathLike[str]) -> WorkflowRun:
        """Continue a checkpoint (taken in-process or on a cluster) on this cluster."""
        ctx, _meta = CheckpointManager.resume_from_checkpoint(checkpoint_path)
        return self._submit_context(ctx, str(ctx.config.get("workflow", "")),
                                    DEFAULT_CRASH_LIMIT)

    @explains_refused_writes
    def retry(self, session_id: str, task_id: str) -> WorkflowRun:
        """Run a finished run again from its stored frontier, with ``task_id`` (which
        failed or was dead-lettered) pending again with a fresh retry budget. Its
        channel, completed tasks and dynamic tasks stay as they are. Raises
        `RunActiveError` while the run is active, `TaskStateError` for a task that did
        not fail."""
        runs = self.broker.runs
        record, shape, frontier = runs.load(session_id)
        if not record.status.finished:
            raise RunActiveError(f"run {session_id} is still {record.status.value}: only a "
                                 "finished run's task can be retried (cancel it first)")
        states = task_states(shape, frontier, self.broker.console.task_records(session_id),
                             set(), run_active=False)
        state = states.get(task_id)
        if state is None:
            raise UnknownTaskError(task_id, f"the graph of run {session_id}")
        if state not in RETRYABLE_STATES:
            raise TaskStateError(session_id, task_id, state,
                                 "only failed or dead-lettered tasks can be retried")
        again = dataclasses.replace(
            record, status=RunStatus.SUBMITTED, resume=True, incarnation=uuid.uuid4().hex,
            submitted_at=time.time(), started_at=None, finished_at=None, error=None,
            error_type=None, error_data={})
        try:
            runs.submit(Submission(again, shape, None, code=shape.code_blobs(),
                                   frontier=requeue_task(frontier, shape, task_id),
                                   replace_channel=False, keep_channel=True,
                                   dynamic=runs.dynamic_blobs(session_id)))
        except CodeMissingError:
            raise WireError(f"the graph of run {session_id} is no longer in Redis "
                            "(expired): resume it from a checkpoint instead") from None
        log.info("task retried", session=session_id, task=task_id, was=state)
        return WorkflowRun(self, session_id)

    def execute(self, context: ExecutionContext, timeout: float | None = None) -> Any:
        """Run ``context`` on the cluster the way ``WorkflowEngine().execute`` runs it
        in process: wait, bring the outcome back into ``context`` (graph, frontier,
        channel, last checkpoint, status, last result), return the last result or raise
        the run's error. (A context with nothing left to run returns its last result
        again, as in process.)"""
        run = self.submit(context)
        try:
            run.wait(timeout)
        finally:
            run.sync_into(context)
        return context.last_result

    def attach(self, session_id: str) -> WorkflowRun:
        """A handle on a run submitted elsewhere (e.g. by a process that since died)."""
        check_session_id(session_id)
        self.broker.runs.record(session_id)  # UnknownSessionError if there is none
        return WorkflowRun(self, session_id)

    def runs(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """The most recent runs, newest first (see `RunRecord.to_dict`)."""
        return [record.to_dict() for record in self.broker.runs.recent(limit, offset)]

    # --- human feedback --------------------------------------------------------------------

    @property
    def feedback(self) -> FeedbackManager:
        """Human-feedback requests of this cluster and their answers (Graflow's
        `FeedbackManager` on the cluster's Redis)."""
        return FeedbackManager(RedisFeedbackBackend(self.broker.feedback))

    def pending_feedback(self, session_id: str | None = None) -> list[FeedbackRequest]:
        """Requests still waiting for an answer (of one run if given), newest first:
        pending ones and those past their timeout, whose task still waits."""
        return RedisFeedbackBackend(self.broker.feedback).list_open_requests(session_id)

    @explains_refused_writes
    def respond(self, feedback_id: str, response: FeedbackResponse | None = None,
                **fields: Any) -> FeedbackResponse:
        """Answer a request: a `FeedbackResponse`, or its fields as keywords
        (``approved=True, reason="ok"``, ``text=...``, ``selected=...``,
        ``selected_multiple=[...]``, ``custom_data={...}``, ``responded_by=...``).
        The waiting task runs again at once and gets the answer.

        Raises `FeedbackError` for an unknown or no longer open request and
        `FeedbackValidationError` for an answer that does not fit the request.
        """
        manager = self.feedback
        request = manager.get_request(feedback_id)
        if request is None:
            raise UnknownFeedbackError(feedback_id)
        if response is None:
            response = make_response(request, **fields)
        elif fields:
            raise TypeError("respond() takes a FeedbackResponse or its fields, not both")
        if not manager.provide_feedback(feedback_id, response):
            raise FeedbackError(f"feedback request {feedback_id!r} is {request.status}, "
                                "no longer open for an answer")
        return response

    @explains_refused_writes
    def cancel_feedback(self, feedback_id: str) -> None:
        """Cancel an open request: its waiting task gets `FeedbackCancelledError`."""
        if not self.feedback.cancel_request(feedback_id):
            request = self.feedback.get_request(feedback_id)
            if request is None:
                raise UnknownFeedbackError(feedback_id)
            raise FeedbackError(f"feedback request {feedback_id!r} is {request.status}, "
                                "no longer open")

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkflowRun:
    """A run on the cluster."""

    def __init__(self, client: Client, session_id: str, graph: Any = None,
                 last_task: str = "") -> None:
        self.client = client
        self.session_id = session_id
        self._graph = graph
        self._last = last_task  # the task that likely ends the run (its result: wait's)
        self._coordinator_checked = False  # see `coordinator_missing`

    def record(self) -> RunRecord:
        """The run's record as the cluster holds it now."""
        return self.client.broker.runs.record(self.session_id)

    def info(self) -> dict[str, Any]:
        """`record` as plain data (status, counts, times, error, last checkpoint)."""
        return self.record().to_dict()

    def status(self) -> str:
        return self.record().status.value

    def progress(self) -> Progress:
        record = self.record()
        running = max(0, min(record.pending, record.running))
        return Progress(status=record.status.value, total=record.total, done=record.done,
                        running=running, pending=record.pending - running,
                        failed=record.failed)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends; return the last completed task's result, or raise
        the run's error (`TaskExecutionError`, `WorkflowCancelledError`, ...). A Redis
        outage meanwhile is waited out (within ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        outage = OutageLog(log, "client")
        record: RunRecord | None = None
        look_for_leader_at = time.monotonic() + UNPICKED_WARNING_S
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                shown = record.status.value if record else "unknown"
                done = f"{record.done}/{record.total}" if record else "?"
                raise RunTimeoutError(f"run {self.session_id} still {shown} after {timeout} s "
                                      f"({done} tasks done)")
            try:
                # The block is bounded so a Redis restart (which may drop the end
                # entry) is noticed.
                record, raw = self.client.broker.runs.outcome_when_ended(
                    self.session_id, 1.0 if left is None else max(0.001, min(left, 1.0)),
                    result_key(self._last) if self._last else "")
                outage.recovered()
                if not record.status.finished and time.monotonic() >= look_for_leader_at:
                    look_for_leader_at = float("inf")  # once
                    if not self._coordinator_checked:
                        self._warn_without_coordinator()
                if record.status.finished:
                    self._warn_of_checkpoint(record)
                    if (raw is not None and record.status.succeeded
                            and record.last_task == self._last):
                        return self.channel().decoded(result_key(self._last), raw)
                    return self._outcome(record)
            except TRANSIENT_ERRORS as exc:
                outage.failed(exc)
                time.sleep(min(outage.backoff_s(), max(0.0, left or 1.0)))

    def coordinator_missing(self) -> bool:
        """Whether no coordinator leads the run's cluster (its prefix on its Redis).
        Whoever asks tells the user: `wait` then does not."""
        self._coordinator_checked = True
        return self.client.broker.leader.holder() is None

    def _warn_without_coordinator(self) -> None:
        """Waiting on a cluster without a coordinator would wait silently forever."""
        if self.coordinator_missing():
            log.warning(NO_COORDINATOR.format(prefix=self.client.keyspace.prefix),
                        session=self.session_id)

    def _warn_of_checkpoint(self, record: RunRecord) -> None:
        if record.checkpoint_error:
            warnings.warn(CheckpointWarning(self.session_id, record.checkpoint_error),
                          stacklevel=3)

    def _outcome(self, record: RunRecord) -> Any:
        if not record.status.succeeded:
            raise error_from_name(record.error_type or "",
                                  record.error or f"run {record.status.value}",
                                  record.error_data)
        return self.get_result(record.last_task) if record.last_task else None

    def channel(self) -> RedisChannel:
        return RedisChannel(self.session_id, self.client.redis, self.client.keyspace.prefix)

    def get_result(self, task_id: str, default: Any = None) -> Any:
        return self.channel().get(result_key(task_id), default)

    @explains_refused_writes
    def cancel(self, reason: str = "cancelled by client") -> None:
        """End the run as cancelled. Workers stop its running tasks (their processes
        are killed and replaced) within about a second of the coordinator's decision,
        and release their leases. Raises `RunEndedError` if the run already ended."""
        record = self.record()
        if record.status.finished:
            raise RunEndedError(self.session_id, record.status.value)
        self.client.broker.events.publish(Event(CANCEL, self.session_id, error=reason))

    def context(self) -> ExecutionContext:
        """An `ExecutionContext` view of the run: its frontier, channel and graph (with
        the tasks its tasks added, as in process)."""
        return self._context()[0]

    def _context(self) -> tuple[ExecutionContext, RunRecord]:
        """`context`, and the record it was read with."""
        runs = self.client.broker.runs
        record, _shape, frontier = runs.load(self.session_id)
        graph = self._graph
        if graph is None:
            stored = runs.code.graph(record.graph_hash)
            graph = None if stored is None else graph_from_code(
                *stored, f"graph {record.graph_hash} of run {self.session_id}")
        dynamic = runs.dynamic_blobs(self.session_id)
        if graph is not None and dynamic:
            try:
                nodes = load_dynamic(dynamic, f"run {self.session_id}")
                extended = graph.copy()  # the workflow's own graph stays as defined
                adopt(extended, nodes)
                graph = extended
            except Exception as exc:  # e.g. code only the workers can import
                log.warning("the tasks the run added do not load here: the context's "
                            "graph lacks them", session=self.session_id,
                            error=f"{type(exc).__name__}: {exc}")
        ctx = ExecutionContext(graph, record.start_node, record.max_steps,
                               session_id=self.session_id, channel=self.channel(),
                               default_max_cycles=record.default_max_cycles)
        ctx.frontier = frontier
        ctx.last_checkpoint_path = record.last_checkpoint
        return ctx, record

    def sync_into(self, context: ExecutionContext) -> None:
        """Make ``context`` reflect the run: its graph, frontier, Redis channel, last
        checkpoint, status and the result of its last completed task (so code written
        for in-process runs keeps working)."""
        remote, record = self._context()
        context.graph = remote.graph
        context.frontier = remote.frontier
        context.channel = remote.channel
        context.last_checkpoint_path = remote.last_checkpoint_path
        context.status = record.status
        if record.last_task:
            context.last_result = self.get_result(record.last_task)

    def __repr__(self) -> str:
        return f"WorkflowRun({self.session_id!r})"


CLUSTER_ENV = "GRAFLOW_DIST_CLUSTER"


def run_context(context: ExecutionContext, cluster: str | None = None,
                timeout: float | None = None) -> Any:
    """Run ``context`` to its end: on the cluster named by ``cluster`` or
    ``GRAFLOW_DIST_CLUSTER`` (a Redis URL, or ``1`` for ``GRAFLOW_DIST_REDIS_URL``),
    else in this process. Same result, same errors, same context afterwards."""
    target = cluster or os.environ.get(CLUSTER_ENV)
    if not target:
        return WorkflowEngine().execute(context)
    with Client(None if target == "1" else target) as client:
        return client.execute(context, timeout)
