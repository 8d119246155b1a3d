"""Commit: everything one coordinator step writes, applied in one fenced script.

The coordinator collects a step's effects on a `Commit` (frontier deltas, results,
new jobs, ended runs, released leases, the stream cursor) and `apply` runs them only
while it holds the leader lease and Redis holds exactly the commits it made; so Redis
always holds a consistent frontier.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from graflow_dist.broker.events import DeadEvent, EventLog
from graflow_dist.broker.frontier import (
    DEFERRED_SPECS,
    Command,
    Deferred,
    expand,
    journal_commands,
)
from graflow_dist.broker.jobs import iter_job_commands, released_job_commands, wake_commands
from graflow_dist.broker.keys import ENDED_FIELD, Keyspace, RunField, RunKeys
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.scripts import MAX_COMMAND_ARGS, ApplyResult, Scripts, pack_command
from graflow_dist.errors import (
    CommitTooLargeError,
    NotLeaderError,
    StaleStateError,
    error_attributes,
)
from graflow_dist.scheduler.events import RunEnd, RunStatus
from graflow_dist.scheduler.journal import Journal
from graflow_dist.scheduler.specs import GraphShape, TaskSpec
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.task_records import TaskRecord

# A commit larger than this goes to Redis in pieces of about this size before the
# script runs; a staged commit nobody applied is gone after the TTL.
STAGED_COMMIT_BYTES = 4 << 20
STAGED_COMMIT_TTL_S = 300
# (leading arguments kept in every piece, arguments per item) of variadic commands.
_VARIADIC = {"HSET": (2, 2), "HDEL": (2, 1), "SADD": (2, 1), "SREM": (2, 1), "DEL": (1, 1),
             "RPUSH": (2, 1), "ZADD": (2, 2), "MSET": (1, 2)}


def chunked(commands: Iterable[Command | Deferred], limit: int = MAX_COMMAND_ARGS
            ) -> Iterator[Command]:
    """The commands (`Deferred` parts made now), long variadic ones split into pieces
    of at most ``limit`` arguments."""
    for cmd in expand(commands):
        shape = _VARIADIC.get(str(cmd[0]))
        if shape is None or len(cmd) <= limit:
            yield cmd
            continue
        head, step = shape
        if cmd[0] == "ZADD" and len(cmd) > 2 and cmd[2] in ("NX", "XX"):
            head += 1
        per_piece = max(step, (limit - head) // step * step)
        for start in range(head, len(cmd), per_piece):
            yield cmd[:head] + cmd[start:start + per_piece]


class Commit:
    """The writes of one coordinator step, in order."""

    def __init__(self, keyspace: Keyspace) -> None:
        self.keyspace = keyspace
        self.commands: list[Command | Deferred] = []
        self._woken: dict[str, None] = {}  # queues that got jobs (in order)

    def __bool__(self) -> bool:
        return bool(self.commands or self._woken)

    def run_started(self, record: RunRecord, code: list[str]) -> None:
        """The run is running; its graph (manifest and the code blobs ``code``) must
        outlive the submit-time TTL while the run needs it."""
        keys = self.keyspace.run(record.session_id)
        self.commands.append(["HSET", keys.meta, RunField.STATUS, RunStatus.RUNNING.value,
                              RunField.STARTED_AT, repr(time.time())])
        self.commands += [["PERSIST", self.keyspace.blob(record.graph_hash)],
                          *(["PERSIST", self.keyspace.code(h)] for h in code)]

    def run_status(self, keys: RunKeys, status: RunStatus) -> None:
        self.commands.append(["HSET", keys.meta, RunField.STATUS, status.value])

    def frontier(self, keys: RunKeys, scheduler: Scheduler, journal: Journal) -> None:
        self.commands += journal_commands(keys, scheduler, journal)

    def dynamic_tasks(self, keys: RunKeys, blobs: dict[str, bytes]) -> None:
        if blobs:
            cmd: Command = ["HSET", keys.dynamic]
            for task_id, blob in blobs.items():
                cmd += [task_id, blob]
            self.commands.append(cmd)

    def failures(self, keys: RunKeys, count: int) -> None:
        if count:
            self.commands.append(["HINCRBY", keys.meta, RunField.FAILED, count])

    def channel_values(self, keys: RunKeys, values: dict[str, bytes]) -> None:
        if values:  # one MSET: one call inside the script for a step's results
            self.commands.append(["SADD", keys.channel_index, *values])
            cmd: Command = ["MSET"]
            for key, value in values.items():
                cmd += [keys.channel(key), value]
            self.commands.append(cmd)

    def task_records(self, keys: RunKeys, records: dict[str, TaskRecord]) -> None:
        """The last report of each task (the console's per-task detail)."""
        if records:
            cmd: Command = ["HSET", keys.tasks]
            for task_id, record in records.items():
                cmd += [task_id, record.encode()]
            self.commands.append(cmd)

    def checkpoint_noted(self, keys: RunKeys, path: str | None, error: str | None) -> None:
        """Where the run's last checkpoint went, and why one failed (either or both)."""
        fields: list[Any] = []
        if path is not None:
            fields += [RunField.LAST_CHECKPOINT, path]
        if error is not None:
            fields += [RunField.CHECKPOINT_ERROR, error]
        if fields:
            self.commands.append(["HSET", keys.meta, *fields])

    def last_task(self, keys: RunKeys, task_id: str) -> None:
        self.commands.append(["HSET", keys.meta, RunField.LAST_TASK, task_id])

    def jobs(self, record: RunRecord, specs: list[TaskSpec], max_batch: int,
             live_workers: int, shape: GraphShape | None = None, in_flight: int = 0,
             *, cycles: dict[str, int] | None = None, max_continuation: int = 0) -> None:
        """Jobs for ``specs`` of one run, sized as if ``in_flight`` tasks (of all runs;
        at least ``specs``) were ready; each with the plain chain its worker may
        continue along (up to ``max_continuation`` steps; see `iter_job_commands`)."""
        ready = max(in_flight, len(specs))
        if specs:
            self._woken.setdefault(record.queue, None)
        if len(specs) > DEFERRED_SPECS:
            self.commands.append(Deferred(lambda: iter_job_commands(
                self.keyspace, record, specs, max_batch, live_workers, shape=shape,
                ready=ready, wake=False, cycles=cycles, max_continuation=max_continuation)))
        elif specs:
            self.commands += iter_job_commands(self.keyspace, record, specs, max_batch,
                                               live_workers, shape=shape, ready=ready,
                                               wake=False, cycles=cycles,
                                               max_continuation=max_continuation)

    def run_ended(self, keys: RunKeys, end: RunEnd) -> None:
        finished_at = repr(time.time())
        fields: list[Any] = [RunField.STATUS, end.status.value,
                             RunField.FINISHED_AT, finished_at]
        if end.error is not None:
            fields += [RunField.ERROR, str(end.error),
                       RunField.ERROR_TYPE, type(end.error).__name__,
                       RunField.ERROR_DATA, json.dumps(error_attributes(end.error),
                                                       default=str)]
        self.commands += [["HSET", keys.meta, *fields],
                          ["SREM", self.keyspace.active_runs, keys.session_id],
                          ["ZADD", self.keyspace.expiring_runs, finished_at,
                           keys.session_id],
                          ["XADD", keys.ended, "*", ENDED_FIELD, end.status.value]]

    def released_jobs(self, job_ids: list[str]) -> None:
        self.commands += released_job_commands(self.keyspace, job_ids)

    def dead_event(self, dead: DeadEvent, events: EventLog) -> None:
        self.commands.append(events.dead_letter_command(dead))

    def cursor(self, entry_id: str) -> None:
        self.commands.append(["SET", self.keyspace.cursor, entry_id])
        self.commands.append(["XTRIM", self.keyspace.events, "MINID", entry_id])

    def encoded(self) -> Iterator[bytes]:
        """The commit as the script reads it (msgpack commands one after another), a
        command at a time; queues that got jobs are announced and woken last, once."""
        for command in chunked(self.commands):
            yield pack_command(command)
        for queue in self._woken:
            for command in wake_commands(self.keyspace, queue):
                yield pack_command(command)

    def payload(self) -> bytes:
        return b"".join(self.encoded())


def apply(scripts: Scripts, keyspace: Keyspace, commit: Commit, leader_id: str,
          expected_commits: int) -> int:
    """Apply ``commit`` fenced by the leader lease and the commit count; returns the
    number of commands that failed inside (logged by the caller).

    A commit over `STAGED_COMMIT_BYTES` (a large fan-out starting) is written to a key
    of the leader's in pieces first and read from there by the script, so neither side
    holds it twice in memory.
    """
    staging = keyspace.staged_commit(leader_id)
    payload, staged = _stage(scripts.client, staging, commit)
    result = scripts.call("fenced_apply", [keyspace.leader, keyspace.commits, staging],
                          [leader_id, payload, expected_commits, staged])
    if result == ApplyResult.STAGED_INCOMPLETE:
        raise StaleStateError("commit refused: its staged payload arrived incomplete; "
                              "reloading")
    if result == ApplyResult.NOT_LEADER:
        raise NotLeaderError("commit refused: this coordinator no longer holds the lease")
    if result == ApplyResult.STATE_BEHIND:
        raise StaleStateError("redis lost committed writes; reloading")
    if result == ApplyResult.COMMITTED_BEFORE:
        raise StaleStateError("commit sent again after its reply was lost had landed "
                              "already; reloading")
    if result == ApplyResult.COMMAND_TOO_LONG:
        raise CommitTooLargeError(
            f"commit refused: a command exceeds {MAX_COMMAND_ARGS} arguments; nothing written")
    return int(result)


def _stage(client: redis.Redis, staging: str, commit: Commit) -> tuple[bytes, int]:
    """The commit's payload inline, or ``(b"", length)`` once it is written to
    ``staging`` (SETRANGE at fixed offsets: a pipeline retried after a lost reply
    writes the same bytes again; the script checks the length)."""
    buffer = bytearray()
    offset = 0
    pipe = None
    for piece in commit.encoded():
        buffer += piece
        if len(buffer) < STAGED_COMMIT_BYTES:
            continue
        if pipe is None:
            pipe = client.pipeline(transaction=False)
            pipe.delete(staging)
        pipe.setrange(staging, offset, bytes(buffer))
        offset += len(buffer)
        buffer.clear()
        pipe.execute()
    if pipe is None:
        return bytes(buffer), 0
    if buffer:
        pipe.setrange(staging, offset, bytes(buffer))
        offset += len(buffer)
    pipe.expire(staging, STAGED_COMMIT_TTL_S)  # gone if the script never runs
    pipe.execute()
    return b"", offset
