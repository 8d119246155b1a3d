"""RunState: one active run inside the coordinator, and how events change it."""

from __future__ import annotations

from dataclasses import dataclass, field

from graflow_dist.broker import Commit
from graflow_dist.broker.jobs import DEFAULT_MAX_BATCH
from graflow_dist.broker.keys import RunKeys
from graflow_dist.broker.record import RunRecord
from graflow_dist.channels.base import result_key
from graflow_dist.errors import (
    DeadLetterError,
    GraflowError,
    TaskTimeoutError,
    error_from_name,
)
from graflow_dist.scheduler.continuation import is_continuation_token
from graflow_dist.scheduler.events import CheckpointRequest, Decision, RunEnd, RunStatus
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire import task_records
from graflow_dist.wire.messages import DONE, FAIL, HANDBACK, LOST, PARK, Event
from graflow_dist.wire.task_records import TaskRecord

__all__ = ["DEFAULT_MAX_BATCH", "PendingCheckpoint", "RunState"]



@dataclass
class PendingCheckpoint:
    """A checkpoint to write before the next commit: the frontier as of the request."""

    request: CheckpointRequest
    frontier: FrontierSnapshot


@dataclass
class RunState:
    """A run being driven: its scheduler plus what must be committed next."""

    record: RunRecord
    scheduler: Scheduler
    keys: RunKeys
    started: bool = False  # just started: the commit marks it running
    waiting: bool = False  # as last written: only parked tasks left
    dispatch: list[TaskSpec] = field(default_factory=list)
    checkpoints: list[PendingCheckpoint] = field(default_factory=list)
    end: RunEnd | None = None
    last_task: str | None = None
    stale: int = 0
    failures: int = 0
    max_continuation: int = 0  # steps a worker may continue from one job (0: none)
    dynamic: dict[str, bytes] = field(default_factory=dict)  # task id -> signed task
    results: dict[str, bytes] = field(default_factory=dict)  # channel key -> value, to write
    task_records: dict[str, TaskRecord] = field(default_factory=dict)  # to write
    checkpoint_path: str | None = None  # written, to note on the record
    checkpoint_error: str | None = None  # why one failed, to note on the record

    @property
    def session_id(self) -> str:
        return self.record.session_id

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
        spec = self.scheduler.inflight.get(event.token)
        decision = self._apply(event, now)
        # A hand-back is no attempt (the task may not even have started): nothing to show.
        if spec is not None and not decision.stale and event.kind != HANDBACK:
            self.task_records[spec.task_id] = self._task_record(spec, event, decision)
        return decision

    def _task_record(self, spec: TaskSpec, event: Event, decision: Decision) -> TaskRecord:
        if event.kind == DONE:
            outcome = task_records.DONE
        elif event.kind == PARK:
            outcome = task_records.WAITING
        elif event.kind == LOST:
            dead = decision.end is not None and isinstance(decision.end.error, DeadLetterError)
            outcome = task_records.DEAD_LETTERED if dead else task_records.LOST
        else:
            again = any(s.task_id == spec.task_id for s in self.scheduler.pending)
            outcome = task_records.RETRYING if again else task_records.FAILED
        return TaskRecord(
            spec.task_id, outcome, attempts=spec.attempt + spec.crashes, cycle=spec.cycle,
            worker=event.worker, queued_at=event.queued_at, started_at=event.started_at,
            finished_at=event.finished_at, duration_s=event.duration_s,
            error=task_records.clip(event.error, task_records.MAX_ERROR_CHARS),
            error_type=event.error_type, traceback=event.traceback, preview=event.preview,
            continued=is_continuation_token(spec.token))

    def _apply(self, event: Event, now: float) -> Decision:
        if event.kind == DONE:
            decision = self.scheduler.complete(event.token, event.outcome,
                                               event.continuation)
            if not decision.stale:
                if event.result is not None:
                    self.results[result_key(event.task_id)] = event.result
                self.dynamic.update(event.dynamic)
                self.last_task = event.task_id
        elif event.kind == FAIL and event.error_type == TaskTimeoutError.__name__:
            self.failures += 1
            decision = self.scheduler.timed_out(event.token, _timeout_of(event), now=now)
        elif event.kind == FAIL:
            self.failures += 1
            error = (error_from_name(event.error_type, event.error, event.error_data)
                     if event.fatal else None)
            decision = self.scheduler.fail(
                event.token, event.error, now=now, error=error, retryable=not event.fatal
            )
        elif event.kind == LOST:
            decision = self.scheduler.crash(event.token, event.error or "worker lost",
                                            worker=event.worker)
        elif event.kind == HANDBACK:
            decision = self.scheduler.hand_back(event.token)
        elif event.kind == PARK:
            decision = self.scheduler.park(event.token, event.wake_key, deadline=event.deadline)
        else:
            raise GraflowError(f"not a task event: {event.kind}")
        if decision.stale:
            self.stale += 1
        self.take(decision)
        return decision

    def write(self, commit: Commit, max_batch: int, live_workers: int,
              in_flight: int = 0) -> None:
        """Put everything to write for this run now on ``commit``: frontier deltas,
        results, new jobs (sized for ``in_flight`` tasks dispatched and not done, over
        every run), its end."""
        if self.started:
            commit.run_started(self.record, self.scheduler.shape.code_blobs())
            self.started = False
        if self.end is None and self.scheduler.waiting != self.waiting:
            self.waiting = self.scheduler.waiting
            commit.run_status(self.keys, RunStatus.WAITING if self.waiting
                              else RunStatus.RUNNING)
        commit.frontier(self.keys, self.scheduler, self.scheduler.drain_journal())
        commit.dynamic_tasks(self.keys, self.dynamic)
        commit.failures(self.keys, self.failures)
        commit.channel_values(self.keys, self.results)
        commit.task_records(self.keys, self.task_records)
        self.dynamic, self.failures, self.results, self.task_records = {}, 0, {}, {}
        if self.last_task is not None:
            commit.last_task(self.keys, self.last_task)
        commit.checkpoint_noted(self.keys, self.checkpoint_path, self.checkpoint_error)
        self.checkpoint_path = self.checkpoint_error = None
        if self.end is None:
            commit.jobs(self.record, self.dispatch, max_batch, live_workers,
                        self.scheduler.shape, in_flight,
                        cycles=self.scheduler.cycle_counts,
                        max_continuation=self.max_continuation)
        self.dispatch = []
        if self.end is not None:
            commit.run_ended(self.keys, self.end)


def _timeout_of(event: Event) -> float:
    """The limit a timed-out task ran past, as its report states it (0 if unreadable:
    the message only shows it)."""
    seconds = event.error_data.get("timeout_s")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            0 < seconds < float("inf")):
        return 0.0
    return float(seconds)
