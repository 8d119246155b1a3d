"""Commit: everything one coordinator step writes, applied in one fenced script.

The coordinator collects a step's effects on a `Commit` (frontier deltas, results,
new jobs, ended runs, released leases, the stream cursor) and `apply` runs them only
while it holds the leader lease and Redis holds exactly the commits it made; so Redis
always holds a consistent frontier.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgpack

from graflow_dist.broker.events import DeadEvent, EventLog
from graflow_dist.broker.frontier import Command, journal_commands
from graflow_dist.broker.jobs import job_commands, released_job_commands
from graflow_dist.broker.keys import ENDED_FIELD, Keyspace, RunField, RunKeys
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.scripts import MAX_COMMAND_ARGS, ApplyResult, Scripts, as_args
from graflow_dist.errors import (
    CommitTooLargeError,
    NotLeaderError,
    StaleStateError,
    error_attributes,
)
from graflow_dist.scheduler.events import RunEnd, RunStatus
from graflow_dist.scheduler.journal import Journal
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.task_records import TaskRecord

# (leading arguments kept in every piece, arguments per item) of variadic commands.
_VARIADIC = {"HSET": (2, 2), "HDEL": (2, 1), "SADD": (2, 1), "SREM": (2, 1), "DEL": (1, 1),
             "RPUSH": (2, 1), "ZADD": (2, 2)}


def chunked(commands: list[Command], limit: int = MAX_COMMAND_ARGS) -> list[Command]:
    """Split long variadic commands into pieces of at most ``limit`` arguments."""
    out: list[Command] = []
    for cmd in commands:
        shape = _VARIADIC.get(str(cmd[0]))
        if shape is None or len(cmd) <= limit:
            out.append(cmd)
            continue
        head, step = shape
        if cmd[0] == "ZADD" and len(cmd) > 2 and cmd[2] in ("NX", "XX"):
            head += 1
        per_piece = max(step, (limit - head) // step * step)
        for start in range(head, len(cmd), per_piece):
            out.append(cmd[:head] + cmd[start:start + per_piece])
    return out


class Commit:
    """The writes of one coordinator step, in order."""

    def __init__(self, keyspace: Keyspace) -> None:
        self.keyspace = keyspace
        self.commands: list[Command] = []

    def __bool__(self) -> bool:
        return bool(self.commands)

    def run_started(self, record: RunRecord) -> None:
        keys = self.keyspace.run(record.session_id)
        self.commands.append(["HSET", keys.meta, RunField.STATUS, RunStatus.RUNNING.value,
                              RunField.STARTED_AT, repr(time.time())])
        # The graph must outlive the submit-time TTL while this run needs it.
        self.commands.append(["PERSIST", self.keyspace.blob(record.graph_hash)])

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
        for key, value in values.items():
            self.commands.append(["SET", keys.channel(key), value])

    def task_records(self, keys: RunKeys, records: dict[str, TaskRecord]) -> None:
        """The last report of each task (the console's per-task detail)."""
        if records:
            cmd: Command = ["HSET", keys.tasks]
            for task_id, record in records.items():
                cmd += [task_id, record.encode()]
            self.commands.append(cmd)

    def last_task(self, keys: RunKeys, task_id: str) -> None:
        self.commands.append(["HSET", keys.meta, RunField.LAST_TASK, task_id])

    def jobs(self, record: RunRecord, specs: list[TaskSpec], max_batch: int,
             live_workers: int, timeouts: dict[str, float] | None = None) -> None:
        if specs:
            self.commands += job_commands(self.keyspace, record, specs, max_batch,
                                          live_workers, timeouts)

    def run_ended(self, keys: RunKeys, end: RunEnd) -> None:
        fields: list[Any] = [RunField.STATUS, end.status.value,
                             RunField.FINISHED_AT, repr(time.time())]
        if end.error is not None:
            fields += [RunField.ERROR, str(end.error),
                       RunField.ERROR_TYPE, type(end.error).__name__,
                       RunField.ERROR_DATA, json.dumps(error_attributes(end.error),
                                                       default=str)]
        self.commands += [["HSET", keys.meta, *fields],
                          ["SREM", self.keyspace.active_runs, keys.session_id],
                          ["XADD", keys.ended, "*", ENDED_FIELD, end.status.value]]

    def released_jobs(self, job_ids: list[str]) -> None:
        self.commands += released_job_commands(self.keyspace, job_ids)

    def dead_event(self, dead: DeadEvent, events: EventLog) -> None:
        self.commands.append(events.dead_letter_command(dead))

    def cursor(self, entry_id: str) -> None:
        self.commands.append(["SET", self.keyspace.cursor, entry_id])
        self.commands.append(["XTRIM", self.keyspace.events, "MINID", entry_id])

    def payload(self) -> bytes:
        # Redis's Lua msgpack has no bin type: send bytes as raw strings.
        return msgpack.packb([as_args(c) for c in chunked(self.commands)], use_bin_type=False)


def apply(scripts: Scripts, keyspace: Keyspace, commit: Commit, leader_id: str,
          expected_commits: int) -> int:
    """Apply ``commit`` fenced by the leader lease and the commit count; returns the
    number of commands that failed inside (logged by the caller)."""
    result = scripts.call("fenced_apply", [keyspace.leader, keyspace.commits],
                          [leader_id, commit.payload(), expected_commits])
    if result == ApplyResult.NOT_LEADER:
        raise NotLeaderError("commit refused: this coordinator no longer holds the lease")
    if result == ApplyResult.STATE_BEHIND:
        raise StaleStateError("commit refused: redis is behind this coordinator")
    if result == ApplyResult.COMMAND_TOO_LONG:
        raise CommitTooLargeError(
            f"commit refused: a command exceeds {MAX_COMMAND_ARGS} arguments; nothing written")
    return int(result)
