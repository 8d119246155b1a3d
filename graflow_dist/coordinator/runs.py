"""RunState: one active run inside the coordinator, and how events change it."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from graflow_dist.channels.base import result_key
from graflow_dist.coordinator.frontier_store import Command, RunInfo, journal_commands
from graflow_dist.errors import GraflowError, error_attributes, error_from_name
from graflow_dist.scheduler.events import (
    CheckpointRequest,
    Decision,
    RunEnd,
    TaskOutcome,
)
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.keyspace import Keyspace, RunKeys
from graflow_dist.wire.messages import DONE, FAIL, HANDBACK, LOST, Batch, Event, packb, rq_job_data

DEFAULT_MAX_BATCH = 64


@dataclass
class PendingCheckpoint:
    """A checkpoint to write after the next commit: the frontier as of the request, and
    the channel as of just before the commit (see ``Coordinator._snapshot_channel``)."""

    request: CheckpointRequest
    frontier: FrontierSnapshot
    channel_values: dict[str, bytes] | None = None


@dataclass
class RunState:
    """A run being driven: its scheduler plus what must be committed next."""

    info: RunInfo
    scheduler: Scheduler
    keys: RunKeys
    commands: list[Command] = field(default_factory=list)
    dispatch: list[TaskSpec] = field(default_factory=list)
    checkpoints: list[PendingCheckpoint] = field(default_factory=list)
    end: RunEnd | None = None
    last_task: str | None = None
    stale: int = 0
    results: dict[str, bytes] = field(default_factory=dict)  # channel key -> value, to write

    @property
    def session_id(self) -> str:
        return self.info.session_id

    def take(self, decision: Decision) -> None:
        """Record a decision's effects for the next commit."""
        self.dispatch.extend(decision.dispatch)
        if decision.checkpoint is not None:
            frontier = self.scheduler.snapshot()
            self.checkpoints.append(PendingCheckpoint(decision.checkpoint, frontier))
        if decision.end is not None and self.end is None:
            self.end = decision.end

    def on_task_event(self, event: Event, now: float) -> Decision:
        """Apply a worker's report; stale reports (fenced tokens) change nothing."""
        if event.kind == DONE:
            decision = self.scheduler.complete(
                event.token, TaskOutcome.from_dict(event.outcome), now=now
            )
            if not decision.stale:
                if event.result is not None:
                    self.results[result_key(event.task_id)] = event.result
                if event.dynamic:
                    cmd: Command = ["HSET", self.keys.dynamic]
                    for task_id, blob in event.dynamic.items():
                        cmd += [task_id, blob]
                    self.commands.append(cmd)
                self.last_task = event.task_id
        elif event.kind == FAIL:
            self.commands.append(["HINCRBY", self.keys.meta, "failed", 1])
            error = (error_from_name(event.error_type, event.error, event.error_data)
                     if event.fatal else None)
            decision = self.scheduler.fail(
                event.token, event.error, now=now, error=error, retryable=not event.fatal
            )
        elif event.kind in (LOST, HANDBACK):
            decision = self.scheduler.crash(
                event.token, event.error or "worker lost", worker=event.worker, now=now,
                counted=event.kind == LOST,
            )
        else:
            raise GraflowError(f"not a task event: {event.kind}")
        if decision.stale:
            self.stale += 1
        self.take(decision)
        return decision

    def commit_commands(self, keyspace: Keyspace, max_batch: int, live_workers: int
                        ) -> list[Command]:
        """Everything to write for this run now: frontier deltas, result moves, jobs."""
        cmds = journal_commands(self.keys, self.scheduler, self.scheduler.drain_journal())
        cmds += self.commands
        self.commands = []
        for key, value in self.results.items():
            cmds.append(["SET", self.keys.channel(key), value])
        self.results = {}
        if self.last_task is not None:
            cmds.append(["HSET", self.keys.meta, "last_task", self.last_task])
        if self.end is None and self.dispatch:
            cmds += job_commands(keyspace, self.info, self.dispatch, max_batch, live_workers)
        self.dispatch = []
        if self.end is not None:
            cmds += end_commands(keyspace, self.keys, self.end)
        return cmds


def batch_size(ready: int, max_batch: int, live_workers: int) -> int:
    """Few large jobs when many tasks are ready, one task per job when few are: keeps
    every worker busy while paying RQ's per-job cost once per batch."""
    per_worker_jobs = 4
    return max(1, min(max_batch, math.ceil(ready / max(1, live_workers * per_worker_jobs))))


def rq_timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def job_commands(keyspace: Keyspace, info: RunInfo, specs: list[TaskSpec], max_batch: int,
                 live_workers: int) -> list[Command]:
    """RQ jobs (hash + queue push) carrying ``specs`` in batches, plus the wake token."""
    queue = info.queue
    stamp = rq_timestamp(time.time())
    size = batch_size(len(specs), max_batch, live_workers)
    cmds: list[Command] = [["SADD", "rq:queues", keyspace.rq_queue(queue)]]
    job_ids: list[str] = []
    for start in range(0, len(specs), size):
        chunk = specs[start:start + size]
        batch = Batch(info.session_id, info.graph_hash, chunk, info.trace_id,
                      info.default_max_cycles, traceparent=info.traceparent)
        job_id = f"gf.{info.session_id}.{chunk[0].token}"
        names = ",".join(s.task_id for s in chunk)
        cmds.append([
            "HSET", keyspace.rq_job(job_id), "status", "queued", "created_at", stamp,
            "enqueued_at", stamp, "data", rq_job_data(batch.encode()), "origin", queue,
            "description", f"graflow {info.session_id[:12]} {names[:120]}", "timeout", "-1",
            "gf_session", info.session_id, "gf_tasks", len(chunk),
            "gf_incarnation", info.incarnation,
        ])
        cmds.append(["HSET", keyspace.jobmap, job_id,
                     packb([info.session_id, [s.token for s in chunk]])])
        job_ids.append(job_id)
    for start in range(0, len(job_ids), 1000):
        cmds.append(["RPUSH", keyspace.rq_queue(queue), *job_ids[start:start + 1000]])
    cmds.append(["LPUSH", keyspace.wake(queue), 1])
    cmds.append(["LTRIM", keyspace.wake(queue), 0, 0])
    return cmds


def end_commands(keyspace: Keyspace, keys: RunKeys, end: RunEnd) -> list[Command]:
    fields: list[Any] = ["status", end.status.value, "finished_at", repr(time.time())]
    if end.error is not None:
        fields += ["error", str(end.error), "error_type", type(end.error).__name__,
                   "error_data", json.dumps(error_attributes(end.error), default=str)]
    return [["HSET", keys.meta, *fields], ["SREM", keyspace.active_runs, keys.session_id],
            ["XADD", keys.ended, "*", "status", end.status.value]]
