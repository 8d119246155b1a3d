"""ExecutorSlot: what an executor process is doing, in memory its supervisor can read.

Each executor process (the one running task code) owns one slot, a small shared
memory file its supervisor created: which job it holds, which task runs and until when
(its deadline), whether it is ready, and its task counters. The executor writes; the
supervisor reads, also after the executor died (the memory is the supervisor's), so it
can hand back the job of a killed or crashed executor precisely. Writing costs a few
struct packs per task (no system call); a sequence number (a seqlock) lets the reader
detect a torn read and retry.
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
import tempfile
import threading
from dataclasses import dataclass

import msgpack
from prometheus_client import Histogram

IDLE, HOLDING, RUNNING = 0, 1, 2  # states: no job; a job, between tasks; a task runs
DURATION_BUCKETS: tuple[float, ...] = tuple(Histogram.DEFAULT_BUCKETS)  # +Inf last
OUTCOMES = ("done", "fail")  # report kinds counted per task

_SEQ = _U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_STATE = struct.Struct("<B3xIddII")  # state, pid, deadline, timeout_s, job len, task len
_READY = struct.Struct("<B")
_COUNTS = struct.Struct(f"<{len(OUTCOMES)}QQd{len(DURATION_BUCKETS)}Q")
_SEQ_AT, _STATE_AT, _READY_AT, _COUNTS_AT = 0, 8, 40, 48
# Where each counter lives: outcomes, leases lost, duration sum, buckets.
_LOST_AT = _COUNTS_AT + 8 * len(OUTCOMES)
_SUM_AT = _LOST_AT + 8
_BUCKETS_AT = _SUM_AT + 8
_PAYLOAD_MAX = 16 * 1024
_JOB_AT = 256
_TASK_AT = _JOB_AT + _PAYLOAD_MAX
SLOT_SIZE = _TASK_AT + _PAYLOAD_MAX
_TOO_LONG = 0xFFFFFFFF  # a payload that did not fit: the job is unknown to the reader
_READ_TRIES = 1000


@dataclass(frozen=True)
class SlotState:
    """A consistent reading of a slot. ``deadline`` is a `time.monotonic` time (0: no
    limit); texts are None when not set, or when too long to publish."""

    state: int = IDLE
    pid: int = 0
    deadline: float = 0.0
    timeout_s: float = 0.0
    job_id: str | None = None
    session_id: str | None = None
    token: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class SlotCounters:
    """Task counters of one executor process since its start."""

    outcomes: tuple[int, ...] = (0,) * len(OUTCOMES)
    leases_lost: int = 0
    duration_sum: float = 0.0
    buckets: tuple[int, ...] = (0,) * len(DURATION_BUCKETS)  # per bucket, not cumulative

    def __add__(self, other: SlotCounters) -> SlotCounters:
        return SlotCounters(
            tuple(a + b for a, b in zip(self.outcomes, other.outcomes, strict=True)),
            self.leases_lost + other.leases_lost, self.duration_sum + other.duration_sum,
            tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)))


class ExecutorSlot:
    """One slot, mapped in the supervisor (`create`) or in its executor (`attach`)."""

    def __init__(self, memory: mmap.mmap, fd: int) -> None:
        self.memory = memory
        self.fd = fd
        self._seq = 0
        self._counts_lock = threading.Lock()
        # The executor's own copy of its counters: it writes only the ones that change.
        self._outcomes = [0] * len(OUTCOMES)
        self._leases_lost = 0
        self._duration_sum = 0.0
        self._buckets = [0] * len(DURATION_BUCKETS)

    @classmethod
    def create(cls) -> ExecutorSlot:
        """A new zeroed slot backed by an anonymous file (inherited by a child through
        ``pass_fds``)."""
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("graflow-slot", 0)  # no file system needed (read-only roots)
        else:  # pragma: no cover - not Linux
            with tempfile.TemporaryFile() as tmp:
                fd = os.dup(tmp.fileno())
        os.ftruncate(fd, SLOT_SIZE)
        return cls(mmap.mmap(fd, SLOT_SIZE), fd)

    @classmethod
    def attach(cls, fd: int) -> ExecutorSlot:
        """The executor's side of the slot its supervisor passed as ``fd``."""
        return cls(mmap.mmap(fd, SLOT_SIZE), fd)

    def reset(self) -> None:
        """Zero the slot for a new executor (supervisor side)."""
        self.memory[:_JOB_AT] = bytes(_JOB_AT)
        self._seq = 0

    def close(self) -> None:
        self.memory.close()
        os.close(self.fd)

    # --- the executor writes -------------------------------------------------------

    def mark_ready(self) -> None:
        _READY.pack_into(self.memory, _READY_AT, 1)

    def holding(self, job_id: str, session_id: str) -> None:
        """A job was claimed: its tasks are about to run."""
        job = msgpack.packb([job_id, session_id], use_bin_type=True)
        self._write(HOLDING, 0.0, 0.0, job, b"")

    def running(self, token: str, task_id: str, deadline: float, timeout_s: float) -> None:
        """A task of the held job starts; past ``deadline`` its supervisor kills us."""
        task = msgpack.packb([token, task_id], use_bin_type=True)
        self._write(RUNNING, deadline, timeout_s, None, task)

    def between_tasks(self) -> None:
        self._write(HOLDING, 0.0, 0.0, None, b"")

    def idle(self) -> None:
        """The job is released (or handed back)."""
        self._write(IDLE, 0.0, 0.0, b"", b"")

    def _write(self, state: int, deadline: float, timeout_s: float, job: bytes | None,
               task: bytes) -> None:
        memory = self.memory
        self._seq += 1
        _SEQ.pack_into(memory, _SEQ_AT, self._seq)  # odd: being written
        if job is not None:
            job_len = len(job) if len(job) <= _PAYLOAD_MAX else _TOO_LONG
            if job_len != _TOO_LONG:
                memory[_JOB_AT:_JOB_AT + job_len] = job
        else:
            job_len = _STATE.unpack_from(memory, _STATE_AT)[4]
        task_len = len(task) if len(task) <= _PAYLOAD_MAX else _TOO_LONG
        if task and task_len != _TOO_LONG:
            memory[_TASK_AT:_TASK_AT + task_len] = task
        _STATE.pack_into(memory, _STATE_AT, state, os.getpid(), deadline, timeout_s, job_len,
                         task_len)
        self._seq += 1
        _SEQ.pack_into(memory, _SEQ_AT, self._seq)  # even: consistent

    def count_task(self, outcome: str, duration_s: float) -> None:
        if outcome not in OUTCOMES:
            return
        i = OUTCOMES.index(outcome)
        bucket = bisect.bisect_left(DURATION_BUCKETS, duration_s)  # le: upper bounds
        memory = self.memory
        with self._counts_lock:
            self._outcomes[i] += 1
            self._duration_sum += duration_s
            self._buckets[bucket] += 1
            _U64.pack_into(memory, _COUNTS_AT + 8 * i, self._outcomes[i])
            _F64.pack_into(memory, _SUM_AT, self._duration_sum)
            _U64.pack_into(memory, _BUCKETS_AT + 8 * bucket, self._buckets[bucket])

    def count_lease_lost(self) -> None:
        with self._counts_lock:
            self._leases_lost += 1
            _U64.pack_into(self.memory, _LOST_AT, self._leases_lost)

    # --- the supervisor reads ------------------------------------------------------

    @property
    def ready(self) -> bool:
        return bool(_READY.unpack_from(self.memory, _READY_AT)[0])

    def read(self) -> SlotState | None:
        """The slot's current state; None if it never read consistently (an executor
        killed in the middle of a write)."""
        memory = self.memory
        for _ in range(_READ_TRIES):
            before = _SEQ.unpack_from(memory, _SEQ_AT)[0]
            if before % 2:
                continue
            state, pid, deadline, timeout_s, job_len, task_len = _STATE.unpack_from(
                memory, _STATE_AT)
            job = bytes(memory[_JOB_AT:_JOB_AT + job_len]) if job_len != _TOO_LONG else None
            task = bytes(memory[_TASK_AT:_TASK_AT + task_len]) if task_len != _TOO_LONG else None
            if _SEQ.unpack_from(memory, _SEQ_AT)[0] == before:
                return _decode(state, pid, deadline, timeout_s, job, task)
        return None

    def counters(self) -> SlotCounters:
        values = _COUNTS.unpack_from(self.memory, _COUNTS_AT)
        n = len(OUTCOMES)
        return SlotCounters(tuple(values[:n]), values[n], values[n + 1], tuple(values[n + 2:]))


def _decode(state: int, pid: int, deadline: float, timeout_s: float, job: bytes | None,
            task: bytes | None) -> SlotState | None:
    job_id = session_id = token = task_id = None
    try:
        if job:
            job_id, session_id = msgpack.unpackb(job, raw=False)
        if task and state == RUNNING:
            token, task_id = msgpack.unpackb(task, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None  # written by our own executor: torn, not hostile
    if state not in (IDLE, HOLDING, RUNNING):
        return None
    if state == IDLE:
        job_id = session_id = None
    return SlotState(state, pid, deadline, timeout_s, job_id, session_id, token, task_id)


class SlotMetrics:
    """The worker's metrics hooks, counted in its slot (the supervisor serves them)."""

    def __init__(self, slot: ExecutorSlot) -> None:
        self.slot = slot

    def task_finished(self, kind: str, duration_s: float) -> None:
        self.slot.count_task(kind, duration_s)

    def lease_lost(self) -> None:
        self.slot.count_lease_lost()
