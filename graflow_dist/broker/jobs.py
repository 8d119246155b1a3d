"""The queue protocol: RQ jobs that carry batches of task specs, and their leases.

A job leaves ``rq:queue:<q>`` only inside the CLAIM script, which records its lease in
the same atomic step: there is no window in which a crash loses a job. An idle worker
blocks on a one-element wake list that every enqueue refreshes. `JobClaimer` is the
worker's side (claim, renew, report, release); `LeaseReaper` the coordinator's (take
back the jobs of workers that stopped renewing); `job_commands` what a commit writes to
enqueue.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from redis.exceptions import ResponseError

from graflow_dist.broker.connection import is_wrong_type
from graflow_dist.broker.events import EventLog
from graflow_dist.broker.keys import RQ_QUEUES, JobField, Keyspace
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.scripts import LeaseResult, ReapResult, Scripts
from graflow_dist.errors import WireError
from graflow_dist.limits import DEFAULT_MAX_MESSAGE_BYTES
from graflow_dist.names import is_session_id, is_token
from graflow_dist.scheduler.continuation import plain_chain, whole_group
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.specs import GraphShape, TaskSpec
from graflow_dist.wire.fields import shown
from graflow_dist.wire.messages import Batch, Event, packb, unpackb

# A claimed job is re-dispatched this long after its worker's last heartbeat; workers
# renew every DEFAULT_HEARTBEAT_S. (The coordinator assumes DEFAULT_LEASE_S for a job
# that does not record its own.)
DEFAULT_LEASE_S = 10.0
DEFAULT_HEARTBEAT_S = 2.0
DEFAULT_IDLE_WAIT_S = 1.0
# Tasks per job at most (the coordinator's --max-batch).
DEFAULT_MAX_BATCH = 64
# Jobs a reaper pass takes back at most (the rest wait for the next pass).
DEFAULT_REAP_LIMIT = 500
_PER_WORKER_JOBS = 4
_OWNER_SCAN_COUNT = 1000  # lease owners per HSCAN call (one entry per held job)
_EXC_INFO_LIMIT = 2000
_PUSH_CHUNK = 1000


def rq_timestamp(now: float) -> str:
    """A time in RQ's format."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def batch_size(ready: int, max_batch: int, live_workers: int) -> int:
    """Few large jobs when many tasks are ready, one task per job when few are: keeps
    every worker busy while paying RQ's per-job cost once per batch."""
    return max(1, min(max_batch, math.ceil(ready / max(1, live_workers * _PER_WORKER_JOBS))))


def job_id_prefix(session_id: str) -> str:
    """Every job of a run has an id starting with this."""
    return f"gf.{session_id}."


def job_commands(keyspace: Keyspace, record: RunRecord, specs: list[TaskSpec], max_batch: int,
                 live_workers: int, timeouts: dict[str, float] | None = None, *,
                 shape: GraphShape | None = None, cycles: dict[str, int] | None = None,
                 max_continuation: int = 0) -> list[list[Any]]:
    """RQ jobs (hash + queue push) carrying ``specs`` in batches, plus the wake token.
    Each batch names the code blobs of its tasks and their timeouts (task id ->
    seconds), from ``shape`` (``timeouts``, if given, instead); with
    ``max_continuation`` also the plain chain after its last spec, or after the group
    whose every member it holds (`plain_chain`, at the ``cycles`` the run's scheduler
    holds), which its worker may continue along."""
    return list(iter_job_commands(keyspace, record, specs, max_batch, live_workers,
                                  timeouts, shape=shape, cycles=cycles,
                                  max_continuation=max_continuation))


def iter_job_commands(keyspace: Keyspace, record: RunRecord, specs: list[TaskSpec],
                      max_batch: int, live_workers: int,
                      timeouts: dict[str, float] | None = None, *,
                      shape: GraphShape | None = None, ready: int = 0, wake: bool = True,
                      cycles: dict[str, int] | None = None, max_continuation: int = 0
                      ) -> Iterator[list[Any]]:
    """`job_commands`, made one job at a time; jobs are sized as if ``ready`` tasks (at
    least ``specs``) were ready at once. Without ``wake`` the queue is not announced
    nor an idle worker woken (`wake_commands`: a commit does that once per queue)."""
    nodes = shape.nodes if shape is not None else {}
    if timeouts is None:
        timeouts = {s.task_id: timeout for s in specs
                    if (node := nodes.get(s.task_id)) is not None
                    and (timeout := node.timeout) is not None}
    queue = record.queue
    stamp = rq_timestamp(time.time())
    size = batch_size(max(ready, len(specs)), max_batch, live_workers)
    job_ids: list[str] = []
    for start in range(0, len(specs), size):
        chunk = specs[start:start + size]
        code = {s.task_id: node.code for s in chunk
                if (node := nodes.get(s.task_id)) is not None and node.code}
        chunk_timeouts = {s.task_id: timeouts[s.task_id] for s in chunk
                          if s.task_id in timeouts}
        chain: list[tuple[str, int]] = []
        origin = _chain_origin(shape, chunk, code) if max_continuation > 0 else None
        if origin is not None:
            chain = plain_chain(shape, origin, cycles or {}, max_continuation)
            for task_id, _cycle in chain:
                node = nodes[task_id]
                code[task_id] = node.code
                if node.timeout is not None:
                    chunk_timeouts[task_id] = node.timeout
        batch = Batch(record.session_id, record.graph_hash, chunk, record.trace_id,
                      record.default_max_cycles, traceparent=record.traceparent,
                      timeouts=chunk_timeouts, code=code, chain=chain)
        job_id = job_id_prefix(record.session_id) + chunk[0].token
        names = ",".join(s.task_id for s in chunk)
        yield [
            "HSET", keyspace.rq_job(job_id), JobField.STATUS, "queued",
            JobField.CREATED_AT, stamp, JobField.ENQUEUED_AT, stamp,
            JobField.DATA, batch.job_data(), JobField.ORIGIN, queue,
            JobField.DESCRIPTION, f"graflow {record.session_id[:12]} {names[:120]}",
            JobField.TIMEOUT, "-1", JobField.SESSION, record.session_id,
            JobField.TASKS, len(chunk), JobField.INCARNATION, record.incarnation,
        ]
        yield ["HSET", keyspace.jobmap, job_id, packb([record.session_id,
                                                      [s.token for s in chunk]])]
        job_ids.append(job_id)
    for start in range(0, len(job_ids), _PUSH_CHUNK):
        yield ["RPUSH", keyspace.rq_queue(queue), *job_ids[start:start + _PUSH_CHUNK]]
    if wake:
        yield from wake_commands(keyspace, queue)


def _chain_origin(shape: GraphShape | None, chunk: list[TaskSpec],
                  code: dict[str, str]) -> str | None:
    """The node whose plain chain a job of ``chunk`` carries: its last task's, or the
    group's when it holds every member of a group (the join after the group's last
    member); None when neither has one."""
    if shape is None:
        return None
    last = chunk[-1]
    if last.group is not None:
        return whole_group(shape, chunk)
    return last.task_id if last.task_id in shape.nodes and code.get(last.task_id) else None


def wake_commands(keyspace: Keyspace, queue: str) -> list[list[Any]]:
    """Announce ``queue`` to RQ and wake one idle worker of it."""
    return [["SADD", RQ_QUEUES, keyspace.rq_queue(queue)],
            ["LPUSH", keyspace.wake(queue), 1], ["LTRIM", keyspace.wake(queue), 0, 0]]


def released_job_commands(keyspace: Keyspace, job_ids: list[str]) -> list[list[Any]]:
    """Forget reaped jobs once their tasks are re-dispatched (in the same commit)."""
    cmds: list[list[Any]] = []
    for job_id in job_ids:
        cmds.append(["ZREM", keyspace.leases, job_id])
        cmds.append(["HDEL", keyspace.lease_owner, job_id])
        cmds.append(["HDEL", keyspace.jobmap, job_id])
    if job_ids:
        cmds.append(["DEL", *(keyspace.rq_job(j) for j in job_ids)])
    return cmds


def decode_jobmap(raw: bytes, job_id: str) -> tuple[str, list[str]]:
    """A jobmap entry: ``(session id, dispatch tokens)``."""
    what = f"jobmap entry of {job_id}"
    entry = unpackb(raw, what)
    if not (isinstance(entry, list) and len(entry) == 2 and is_session_id(entry[0])
            and isinstance(entry[1], list) and all(is_token(t) for t in entry[1])):
        raise WireError(f"{what}: expected [session id, [tokens]], got {shown(entry)}")
    return entry[0], entry[1]


@dataclass
class ClaimedJob:
    """A job a worker now holds. ``batch`` is None when its data did not decode
    (``error`` says why); ``run_status`` is None for a run that no longer exists, or
    whose record holds a status that is none (``raw_status``: a damaged record).
    ``wrong_type`` names what the job's key held instead of a hash: such a job was
    taken off the queue but is not held (there is nothing to run)."""

    job_id: str
    batch: Batch | None
    run_status: RunStatus | None
    error: str = ""
    raw_status: str = ""
    wrong_type: str = ""


@dataclass
class ReapedJob:
    """A job whose lease expired: its tasks (``tokens`` of ``session_id``) must be
    re-dispatched. ``error`` is set when its jobmap entry was unreadable."""

    job_id: str
    owner: str
    session_id: str | None = None
    tokens: list[str] = field(default_factory=list)
    error: str = ""


class JobClaimer:
    """Claims, renews, reports on and releases jobs for one worker.

    Parameters
    ----------
    client:
        Redis client.
    keyspace:
        Key layout.
    queue:
        The RQ queue name.
    worker:
        This worker's name (lease owner).
    lease_s:
        Lease length; renewed by the heartbeat.
    rq_worker_key:
        The worker's RQ hash (its job counters and state).
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace, queue: str, worker: str,
                 lease_s: float, rq_worker_key: str,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.client = client
        self.keyspace = keyspace
        self.queue = queue
        self.worker = worker
        self.lease_s = lease_s
        self.rq_worker_key = rq_worker_key
        self.max_message_bytes = max_message_bytes
        self.scripts = Scripts(self.client, keyspace)
        self.events = EventLog(self.client, keyspace)

    def claim(self, max_jobs: int = 1) -> list[ClaimedJob]:
        """Claim up to ``max_jobs`` jobs (`WrongTypeError` if one of this worker's keys
        holds the wrong type: then nothing was claimed)."""
        raw = self.scripts.call(
            "claim",
            [self.keyspace.rq_queue(self.queue), self.keyspace.leases,
             self.keyspace.lease_owner, self.keyspace.wake(self.queue), self.rq_worker_key],
            [self.lease_s, self.worker, max_jobs, rq_timestamp(time.time())],
        )
        return self._claimed(raw, 1)

    def _claimed(self, raw: list[Any], start: int) -> list[ClaimedJob]:
        """The jobs of a claim reply (``[left, id, data, status, ...]`` from ``start``)."""
        claimed = []
        for i in range(start, len(raw), 3):
            job_id = raw[i].decode(errors="replace")
            text = raw[i + 2].decode(errors="replace")
            if raw[i + 1] is None:
                claimed.append(ClaimedJob(job_id, None, None, f"rq job {job_id}: its key "
                                          f"holds a {text}, not a hash", wrong_type=text))
                continue
            status = RunStatus.parse(text)
            try:
                batch = Batch.from_job_data(raw[i + 1], job_id, self.max_message_bytes)
                claimed.append(ClaimedJob(job_id, batch, status, raw_status=text))
            except WireError as exc:
                claimed.append(ClaimedJob(job_id, None, status, str(exc), raw_status=text))
        return claimed

    def wait_for_work(self, timeout_s: float = DEFAULT_IDLE_WAIT_S) -> bool:
        """Block until an enqueue wakes us; False after ``timeout_s`` without one."""
        return self.client.blpop([self.keyspace.wake(self.queue)], timeout=timeout_s) is not None

    def queue_extend(self, job_ids: list[str], pipe: redis.client.Pipeline) -> None:
        """Queue the renewal of our leases on ``pipe``; its reply lists lost jobs."""
        self.scripts.call("extend", [self.keyspace.leases, self.keyspace.lease_owner],
                          [self.lease_s, self.worker, *job_ids], pipe)

    def send(self, events: list[Event], *, release: str | None = None,
             still_held: str | None = None) -> bool:
        """Publish ``events`` in one atomic step, and with ``release`` release that
        finished job's lease, or with ``still_held`` look whether we still hold that
        job (no extra round trip). Returns False if the job's lease turned out to be
        no longer ours (it was reaped: the coordinator fences these reports off)."""
        if release is not None:
            return self._report("release", release, events) == LeaseResult.RELEASED
        if still_held is not None:
            return self._report("held", still_held, events) == LeaseResult.HELD
        self._report("none", "", events)
        return True

    def release_and_claim(self, events: list[Event], job_id: str, max_jobs: int = 1
                          ) -> tuple[bool, list[ClaimedJob]]:
        """`send` with ``release=job_id``, then `claim` up to ``max_jobs``, in one atomic
        step (one round trip from a finished job to the next). Returns whether the
        lease was still ours, and the jobs claimed (none: the queue was empty)."""
        raw = self._report("claim", job_id, events, claim=max_jobs)
        return raw[0] == LeaseResult.RELEASED, self._claimed(raw, 2)

    def continue_with(self, events: list[Event], done: Event, proposal: TaskSpec,
                      job_id: str) -> LeaseResult:
        """Publish ``events``, then ``done`` (the completion of the job's last
        unfinished task) carrying ``proposal``, the spec of its successor this worker
        runs at once, and add the proposal's token to the job's tokens (so a reaper
        re-dispatches it like any task of the job), in one atomic step, if and only if
        we still hold the job's lease: then CONTINUED (keep the job and run the
        proposal). Else ``done`` goes without the proposal and the job is released as
        by `send` (RELEASED, or LEASE_LOST: do not run the proposal)."""
        proposed = replace(done, continuation=proposal)
        plain = replace(done, continuation=None)
        return LeaseResult(self._report("continue", job_id, [proposed, plain, *events],
                                        reason=proposal.token))

    def ran_ahead(self, events: list[Event], done: Event, proposal: TaskSpec,
                  after: list[Event], job_id: str, max_jobs: int = 0
                  ) -> tuple[bool, list[ClaimedJob]]:
        """`continue_with` for a proposal this worker already ran, the job's last task
        (its reports are ``after``), then `release_and_claim` (``max_jobs`` 0: only
        release), in one atomic step: where `continue_with` would not have recorded the
        proposal, ``done`` goes without it and ``after`` is dropped (the coordinator
        dispatches the successor as usual). Returns whether the lease was still ours,
        and the jobs claimed."""
        proposed = replace(done, continuation=proposal)
        plain = replace(done, continuation=None)
        raw = self._report("ahead", job_id, [proposed, plain, *events, *after],
                           reason=proposal.token, claim=max_jobs, count=len(events))
        if not max_jobs:
            return raw == LeaseResult.RELEASED, []
        return raw[0] == LeaseResult.RELEASED, self._claimed(raw, 2)

    def _report(self, mode: str, job_id: str, events: list[Event], reason: str = "",
                claim: int = 0, count: int | None = None) -> Any:
        """Run the report script; ``count`` (mode 'ahead') goes after the first two
        events: how many of the rest come before the proposal's own reports."""
        ks = self.keyspace
        keys = [ks.events, ks.leases, ks.lease_owner, ks.jobmap, self.rq_worker_key,
                ks.rq_failed(self.queue)]
        if claim:
            keys += [ks.rq_queue(self.queue), ks.wake(self.queue)]
        encoded: list[Any] = [event.encode() for event in events]
        if count is not None:
            encoded.insert(2, count)
        reply = self.scripts.call(
            "report", keys,
            [mode, job_id, self.worker, reason, rq_timestamp(time.time()), self.lease_s, claim,
             *encoded])
        return reply if claim else int(reply)

    def finish(self, job_id: str) -> bool:
        """Release a finished job; False if its lease was no longer ours."""
        result = self.scripts.call(
            "finish",
            [self.keyspace.leases, self.keyspace.lease_owner, self.keyspace.jobmap,
             self.rq_worker_key], [job_id, self.worker])
        return result == LeaseResult.RELEASED

    def held_jobs(self) -> list[str]:
        """The jobs whose lease this worker holds, by Redis (a claim whose reply was
        lost holds jobs the worker does not know of)."""
        name = self.worker.encode()
        return [job.decode(errors="replace")
                for job, owner in self.client.hscan_iter(self.keyspace.lease_owner,
                                                         count=_OWNER_SCAN_COUNT)
                if owner == name]

    def tasks_of(self, job_id: str) -> tuple[str, list[str]] | None:
        """``(session id, tokens)`` of a job, from the jobmap (None if unknown or
        unreadable)."""
        try:
            raw = self.client.hget(self.keyspace.jobmap, job_id)
        except ResponseError as exc:
            if is_wrong_type(exc):
                return None
            raise
        if raw is None:
            return None
        try:
            return decode_jobmap(raw, job_id)
        except WireError:
            return None

    def reject(self, job_id: str, reason: str, lost: list[Event]) -> None:
        """A job we cannot even read: keep it in RQ's failed registry with ``reason``,
        release its lease and publish ``lost`` (its tasks, re-dispatched), in one
        atomic step so they cannot fall between the two."""
        self._report("fail", job_id, lost, reason[:_EXC_INFO_LIMIT])


class LeaseReaper:
    """The leader's side of leases: take back expired ones, grant grace after outages.

    Parameters
    ----------
    client:
        Redis client.
    keyspace:
        Key layout.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace
        self.scripts = Scripts(client, keyspace)

    def reap(self, leader_id: str, limit: int = DEFAULT_REAP_LIMIT) -> list[ReapedJob] | None:
        """Mark up to ``limit`` expired leases as reaped; None if not the leader."""
        ks = self.keyspace
        raw = self.scripts.call("reap_mark", [ks.leader, ks.leases, ks.lease_owner, ks.jobmap],
                                [leader_id, limit])
        if raw == ReapResult.NOT_LEADER:
            return None
        reaped = []
        for i in range(0, len(raw), 3):
            job = ReapedJob(raw[i].decode(errors="replace"), raw[i + 1].decode(errors="replace"))
            if raw[i + 2]:
                try:
                    job.session_id, job.tokens = decode_jobmap(raw[i + 2], job.job_id)
                except WireError as exc:
                    job.error = str(exc)
            reaped.append(job)
        return reaped

    def grant_grace(self, leader_id: str, default_lease_s: float) -> int | None:
        """One lease period for every live lease (after an outage); None if not the
        leader, else how many leases were extended."""
        ks = self.keyspace
        extended = self.scripts.call("lease_grace", [ks.leader, ks.leases, ks.lease_owner],
                                     [leader_id, default_lease_s])
        return None if extended == ReapResult.NOT_LEADER else int(extended)
