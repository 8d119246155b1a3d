"""RedisCoordinator: an in-process run sends a group's ready members to a cluster's
workers (Graflow's ``backend="redis"``) and carries on with their outcomes.

The members go out as a run of their own on the cluster (members only, no edges, with
a copy of the in-process channel); when it ends, every member's result and what the
members wrote to the channel come back. Retries and the group's policy stay with the
in-process scheduler: the cluster runs each member once per attempt.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import redis

from graflow_dist.broker import Broker
from graflow_dist.broker.connection import connect
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.submission import Submission
from graflow_dist.channels.redis import RedisChannel
from graflow_dist.coordination.coordinator import TaskCoordinator
from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.graph_code import split_graph
from graflow_dist.core.invoke import Invocation
from graflow_dist.errors import CoordinationError, TaskExecutionError, error_from_name
from graflow_dist.scheduler.specs import GroupPolicySpec, NodeShape, RetrySettings, TaskSpec
from graflow_dist.wire import task_records
from graflow_dist.wire.values import encode_value

DEFAULT_GROUP_TIMEOUT_S = 3600.0
_POLL_S = 1.0


def cluster_broker(config: dict[str, Any], live_client: redis.Redis | None) -> Broker:
    """The broker of the cluster a group runs on: ``backend_config={"redis_client": r}``
    (Graflow's key) or ``{"redis_url": url}``, with an optional ``"prefix"``."""
    client = live_client
    if client is None:
        url = config.get("redis_url")
        if not url:
            raise CoordinationError(
                "backend='redis' needs the cluster: with_execution(backend='redis', "
                "backend_config={'redis_client': redis.Redis(...)} or {'redis_url': URL})")
        client = connect(url)
    return Broker(client, Keyspace.from_env(config.get("prefix")))


class RedisCoordinator(TaskCoordinator):
    """Runs the ready members of ``group_id`` of an in-process ``context`` on a
    cluster's workers, waiting at most ``timeout_s`` for them."""

    def __init__(self, broker: Broker, context: ExecutionContext, group_id: str,
                 timeout_s: float = DEFAULT_GROUP_TIMEOUT_S) -> None:
        self.broker = broker
        self.context = context
        self.group_id = group_id
        self.timeout_s = timeout_s

    def run_members(self, members: Sequence[TaskSpec],
                    run: Callable[[TaskSpec], Any]) -> list[tuple[TaskSpec, Invocation]]:
        """``run`` (in-process execution) is not used: the members run remotely."""
        session_id = self._submit(members)
        record = self._wait(session_id)
        channel = RedisChannel(session_id, self.broker.client, self.broker.keyspace.prefix)
        values = dict(channel.items())
        for key, value in values.items():  # what the members wrote, results included
            self.context.channel.set(key, value)
        records = self.broker.console.task_records(session_id)
        return [(spec, self._invocation(spec, values, records.get(spec.task_id), record))
                for spec in members]

    def _submit(self, members: Sequence[TaskSpec]) -> str:
        graph = TaskGraph()
        for spec in members:
            graph.add_node(self.context.graph.get_node(spec.task_id))
        shape = graph.shape(self.context.default_max_cycles)
        for node_id, node in shape.nodes.items():  # the in-process scheduler retries
            shape.nodes[node_id] = replace(node, retry=RetrySettings())
        # Every member runs, whatever the others do: the group's own policy is applied
        # in process, to the outcomes that come back.
        shape.add(NodeShape(self.group_id, members=[s.task_id for s in members],
                            policy=GroupPolicySpec("best_effort")))
        with self.broker.runs.code.upload() as upload:
            code = split_graph(graph, store=upload.add, keep=False)
        for node_id, blob in code.code_of.items():
            shape.nodes[node_id].code = blob
        session_id = f"{self.context.session_id}-{self.group_id}-{uuid.uuid4().hex[:8]}"
        record = RunRecord(
            session_id=session_id, graph_hash=code.graph_hash,
            trace_id=self.context.trace_id, workflow=f"{self.group_id} (group of "
            f"{self.context.session_id})", max_steps=len(members) * 2 + 1,
            default_max_cycles=self.context.default_max_cycles,
            queue=self.broker.keyspace.queue_name, incarnation=uuid.uuid4().hex,
            total=len(members), submitted_at=time.time())
        values = {k: encode_value(v) for k, v in self.context.channel.items()}
        self.broker.runs.submit(Submission(record, shape, code.manifest_bytes,
                                           channel_values=values, replace_channel=True))
        return session_id

    def _wait(self, session_id: str) -> RunRecord:
        deadline = time.monotonic() + self.timeout_s
        while True:
            record = self.broker.runs.record(session_id)
            if record.status.finished:
                return record
            left = deadline - time.monotonic()
            if left <= 0:
                raise CoordinationError(
                    f"group {self.group_id!r} still {record.status.value} on the cluster "
                    f"after {self.timeout_s} s (run {session_id}): are workers running?")
            self.broker.runs.wait_ended(session_id, min(_POLL_S, left))

    def _invocation(self, spec: TaskSpec, values: dict[str, Any],
                    task: task_records.TaskRecord | None, run: RunRecord) -> Invocation:
        key = f"{spec.task_id}.__result__"
        if task is not None and task.outcome == task_records.DONE:
            return Invocation(result=values.get(key))
        if task is not None and task.error:
            error: BaseException = error_from_name(task.error_type or "", task.error)
            text = task.error
        else:  # it never ran: the remote run ended first (cancelled, lost workers, ...)
            text = f"not run on the cluster: run {run.session_id} {run.status.value}" + (
                f": {run.error}" if run.error else "")
            error = TaskExecutionError(spec.task_id, text, spec.attempt,
                                       self.context.session_id)
        return Invocation(error=error, error_text=text)
