"""Client: submit runs to a cluster, watch them, fetch results, cancel, resume.

Submitting writes the run (graph, settings, initial channel data, frontier) and its
submission event in one transaction; the submitting process may exit right after.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from redis.exceptions import WatchError

from graflow_dist.channels.codec import encode_value
from graflow_dist.channels.redis import RedisChannel, write_raw_channel
from graflow_dist.coordinator.frontier_store import (
    RunInfo,
    frontier_commands,
    load_run,
    shape_commands,
)
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.workflow import WorkflowContext
from graflow_dist.errors import (
    GraflowError,
    RunTimeoutError,
    UnknownSessionError,
    error_from_name,
)
from graflow_dist.observability.outage import OutageLog
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.state import DEFAULT_CRASH_LIMIT
from graflow_dist.trace.otel import submit_traceparent
from graflow_dist.wire.connection import TRANSIENT_ERRORS, check_connection, connect
from graflow_dist.wire.keyspace import Keyspace
from graflow_dist.wire.messages import CANCEL, RESUME, SUBMIT, Event
from graflow_dist.wire.signing import content_hash, dumps_signed, verify

DEFAULT_BLOB_TTL_S = 7 * 24 * 3600
log = structlog.get_logger("graflow_dist.client")
FINISHED = ("completed", "terminated", "cancelled", "failed", "max_steps_exceeded")
SUCCEEDED = ("completed", "terminated")


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
        self.queue = queue or self.keyspace.queue_name

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

    def _submit_context(self, ctx: ExecutionContext, workflow_name: str,
                        crash_limit: int) -> WorkflowRun:
        session_id = ctx.session_id
        keys = self.keyspace.run(session_id)
        blob = dumps_signed(ctx.graph)
        graph_hash = content_hash(verify(blob, "graph"))
        resume = ctx.frontier is not None
        info = RunInfo(
            session_id=session_id, status="submitted", graph_hash=graph_hash,
            trace_id=ctx.trace_id, workflow=workflow_name, start_node=ctx.start_node,
            max_steps=ctx.max_steps, default_max_cycles=ctx.default_max_cycles,
            default_max_retries=ctx.default_max_retries, crash_limit=crash_limit,
            queue=self.queue, resume=resume, incarnation=uuid.uuid4().hex,
            traceparent=submit_traceparent(session_id, workflow_name),
        )
        shape = ctx.graph.shape(ctx.default_max_cycles)
        total = sum(1 for node in shape.nodes.values() if not node.is_group)
        values = {k: encode_value(v) for k, v in ctx.channel.items()} \
            if not isinstance(ctx.channel, RedisChannel) else {}
        with self.redis.pipeline(transaction=True) as pipe:
            # WATCH: two clients submitting one session cannot both get through.
            pipe.watch(keys.meta)
            status = pipe.hget(keys.meta, "status")
            if status is not None and status.decode() not in FINISHED:
                raise GraflowError(f"run {session_id} is already active on this cluster "
                                   f"(status {status.decode()}); cancel it first")
            if not isinstance(ctx.channel, RedisChannel):
                # The run's channel becomes exactly the context's (an earlier incarnation
                # of this session, e.g. another resume, may have left keys behind).
                RedisChannel(session_id, self.redis, self.keyspace.prefix).clear()
            pipe.multi()
            pipe.set(self.keyspace.blob(graph_hash), blob, ex=DEFAULT_BLOB_TTL_S)
            pipe.delete(*keys.frontier_keys())
            pipe.hset(keys.meta, mapping={**info.to_meta(), "total": total,
                                          "submitted_at": repr(time.time()),
                                          "done": 0, "running": 0, "pending": 0, "failed": 0})
            for cmd in shape_commands(keys, shape):
                pipe.execute_command(*cmd)
            if resume:
                assert ctx.frontier is not None
                for cmd in frontier_commands(keys, ctx.frontier):
                    pipe.execute_command(*cmd)
            write_raw_channel(pipe, keys, values)
            pipe.sadd(self.keyspace.active_runs, session_id)
            pipe.zadd(self.keyspace.all_runs, {session_id: time.time()})
            event = Event(RESUME if resume else SUBMIT, session_id)
            pipe.xadd(self.keyspace.events, {"d": event.encode()})
            try:
                pipe.execute()
            except WatchError:
                raise GraflowError(f"run {session_id} was submitted by another client at "
                                   "the same moment; attach to it instead") from None
        return WorkflowRun(self, session_id, graph=ctx.graph)

    def resume(self, checkpoint_path: str | os.PathLike[str]) -> WorkflowRun:
        """Continue a checkpoint (taken in-process or on a cluster) on this cluster."""
        ctx, _meta = CheckpointManager.resume_from_checkpoint(checkpoint_path)
        return self._submit_context(ctx, str(ctx.config.get("workflow", "")),
                                    DEFAULT_CRASH_LIMIT)

    def execute(self, context: ExecutionContext, timeout: float | None = None) -> Any:
        """Run ``context`` on the cluster the way ``WorkflowEngine().execute`` runs it
        in process: wait, bring the outcome back into ``context`` (frontier, channel,
        last checkpoint, status), return the last result or raise the run's error."""
        run = self.submit(context)
        try:
            return run.wait(timeout)
        finally:
            run.sync_into(context)

    def attach(self, session_id: str) -> WorkflowRun:
        """A handle on a run submitted elsewhere (e.g. by a process that since died)."""
        if not self.redis.exists(self.keyspace.run(session_id).meta):
            raise UnknownSessionError(session_id)
        return WorkflowRun(self, session_id)

    def runs(self, limit: int = 50) -> list[dict[str, str]]:
        """The most recent runs, newest first."""
        ids = [s.decode() for s in self.redis.zrevrange(self.keyspace.all_runs, 0, limit - 1)]
        pipe = self.redis.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self.keyspace.run(sid).meta)
        return [
            {k.decode(): v.decode() for k, v in meta.items()}
            for meta in pipe.execute() if meta
        ]

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WorkflowRun:
    """A run on the cluster."""

    def __init__(self, client: Client, session_id: str, graph: Any = None) -> None:
        self.client = client
        self.session_id = session_id
        self.keys = client.keyspace.run(session_id)
        self._graph = graph

    def info(self) -> dict[str, str]:
        meta = self.client.redis.hgetall(self.keys.meta)
        if not meta:
            raise UnknownSessionError(self.session_id)
        return {k.decode(): v.decode() for k, v in meta.items()}

    def status(self) -> str:
        return self.info()["status"]

    def progress(self) -> Progress:
        info = self.info()
        pending = int(info.get("pending", 0))
        running = max(0, min(pending, int(info.get("running", 0))))
        return Progress(
            status=info["status"], total=int(info.get("total", 0)),
            done=int(info.get("done", 0)), running=running, pending=pending - running,
            failed=int(info.get("failed", 0)),
        )

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends; return the last completed task's result, or raise
        the run's error (`TaskExecutionError`, `WorkflowCancelledError`, ...). A Redis
        outage meanwhile is waited out (within ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        outage = OutageLog(log, "client")
        info: dict[str, str] = {"status": "unknown"}
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise RunTimeoutError(
                    f"run {self.session_id} still {info['status']} after {timeout} s "
                    f"({info.get('done', 0)}/{info.get('total', '?')} tasks done)")
            try:
                info = self.info()
                if info["status"] in FINISHED:
                    return self._outcome(info)
                # The coordinator appends to `ended` when the run is over; XREAD does
                # not consume, so any number of waiters wake at once. The block is
                # bounded so a Redis restart (which may drop the entry) is noticed.
                block_s = 1.0 if left is None else max(0.001, min(left, 1.0))
                self.client.redis.xread({self.keys.ended: "0-0"}, count=1,
                                        block=int(block_s * 1000))
                outage.recovered()
            except TRANSIENT_ERRORS as exc:
                outage.failed(exc)
                time.sleep(min(outage.backoff_s(), max(0.0, left or 1.0)))

    def _outcome(self, info: dict[str, str]) -> Any:
        if info["status"] not in SUCCEEDED:
            attributes = json.loads(info.get("error_data") or "{}")
            raise error_from_name(info.get("error_type", ""),
                                  info.get("error") or f"run {info['status']}", attributes)
        last = info.get("last_task")
        return self.get_result(last) if last else None

    def channel(self) -> RedisChannel:
        return RedisChannel(self.session_id, self.client.redis, self.client.keyspace.prefix)

    def get_result(self, task_id: str, default: Any = None) -> Any:
        return self.channel().get(f"{task_id}.__result__", default)

    def cancel(self, reason: str = "cancelled by client") -> None:
        event = Event(CANCEL, self.session_id, error=reason)
        self.client.redis.xadd(self.client.keyspace.events, {"d": event.encode()})

    def context(self) -> ExecutionContext:
        """An `ExecutionContext` view of the run: its frontier, channel and graph."""
        info, _shape, frontier = load_run(self.client.redis, self.client.keyspace,
                                          self.session_id)
        graph = self._graph
        if graph is None:
            from graflow_dist.wire.signing import loads_signed

            blob = self.client.redis.get(self.client.keyspace.blob(info.graph_hash))
            graph = loads_signed(blob, f"graph {info.graph_hash}") if blob else None
        ctx = ExecutionContext(graph, info.start_node, info.max_steps,
                               session_id=self.session_id, channel=self.channel(),
                               default_max_cycles=info.default_max_cycles)
        ctx.frontier = frontier
        ctx.last_checkpoint_path = info.extra.get("last_checkpoint") or None
        return ctx

    def sync_into(self, context: ExecutionContext) -> None:
        """Make ``context`` reflect the run: its frontier, its Redis channel, its last
        checkpoint and status (so code written for in-process runs keeps working)."""
        remote = self.context()
        context.frontier = remote.frontier
        context.channel = remote.channel
        context.last_checkpoint_path = remote.last_checkpoint_path
        status = self.status()
        context.status = next((s for s in RunStatus if s.value == status), RunStatus.RUNNING)

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
        from graflow_dist.core.engine import WorkflowEngine

        return WorkflowEngine().execute(context)
    with Client(None if target == "1" else target) as client:
        return client.execute(context, timeout)
