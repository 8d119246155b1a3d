"""Supervisor: the process ``graflow-dist worker`` runs, over N executor processes.

Task code runs in executor processes (`graflow_dist.worker.child`, each a `Worker`); the
supervisor never runs or unpickles user code. Every executor publishes the job it holds
and the task it runs, with that task's deadline, in its `ExecutorSlot`. The supervisor
polls the slots and, through the broker:

- past a task's deadline, SIGKILLs its executor (code that never yields, a C call
  holding the GIL: nothing else stops them), reports the task failed with
  `TaskTimeoutError` (retried per its policy), hands back the job's other tasks,
  releases the lease and starts a fresh executor;
- when the run of a held job has ended (``cancel``, or it failed), kills the executor
  the same way and releases the lease, so the run shows 0 running;
- when an executor dies on its own, reports its running task lost (a crash) at once
  instead of after the lease, hands back the rest and replaces it.

On SIGTERM it passes the signal on: executors finish their task within the grace
period or hand it back; one that cannot (stuck in a C call) is killed shortly after
and its job handed back here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import redis
import structlog
from redis.exceptions import ResponseError

from graflow_dist.broker import Broker
from graflow_dist.broker.connection import (
    REDIS_URL_ENV,
    TRANSIENT_ERRORS,
    is_wrong_type,
    writes_refused,
)
from graflow_dist.broker.keys import PREFIX_ENV, Keyspace
from graflow_dist.errors import GraflowError, TaskTimeoutError, WrongTypeError, error_attributes
from graflow_dist.observability.outage import OutageLog
from graflow_dist.wire.messages import FAIL, HANDBACK, LOST, Event
from graflow_dist.worker.child import ExecutorSettings
from graflow_dist.worker.service import repair_worker_keys
from graflow_dist.worker.slot import HOLDING, IDLE, RUNNING, ExecutorSlot, SlotState
from graflow_dist.worker.supervisor_metrics import SupervisorMetrics

# How often the slots are read while an executor holds a job (the resolution of
# timeouts) and while all are idle, and how often the runs of held jobs are looked up
# (the delay of a cancellation), in seconds.
DEFAULT_POLL_S = 0.05
DEFAULT_IDLE_POLL_S = 0.25
DEFAULT_RUN_CHECK_S = 0.5
# On SIGTERM an executor gets its grace period plus this to hand back and exit.
_SHUTDOWN_MARGIN_S = 1.0
# An executor that dies sooner than this after its start is restarted with a backoff.
_QUICK_EXIT_S = 5.0
_MAX_BACKOFF_S = 10.0

log = structlog.get_logger("graflow_dist.worker")

# Why an executor was stopped: each decides what its job's tasks become.
TIMEOUT, CANCELLED, CRASHED, SHUTDOWN = "timeout", "cancelled", "crashed", "shutdown"


@dataclass
class Executor:
    """One executor process and its slot."""

    index: int
    slot: ExecutorSlot
    name: str = ""
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    start_after: float = 0.0
    busy: bool = False  # held a job at the last look

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Abandoned:
    """A job whose executor is gone: what to report and release for it."""

    worker: str
    job_id: str
    reason: str
    state: SlotState
    unregister: bool
    repaired: bool = False  # keys of the wrong type were moved aside once


class Supervisor:
    """Runs ``concurrency`` executors and enforces timeouts and cancellations.

    Parameters
    ----------
    client:
        Redis client (bytes responses) for the supervisor's own reports.
    redis_url:
        What executors connect to (passed in their environment; None: theirs).
    concurrency:
        Executor processes.
    name:
        Base name of the executors (default: ``gf-HOST-PID-xxxx``, new for each one).
    settings:
        What executors are started with (lease, heartbeat, grace period, timeouts).
    env:
        Extra environment of the executors (e.g. the log format).
    """

    def __init__(self, client: redis.Redis, *, keyspace: Keyspace | None = None,
                 redis_url: str | None = None, concurrency: int = 1, name: str | None = None,
                 settings: ExecutorSettings | None = None, env: dict[str, str] | None = None,
                 poll_s: float = DEFAULT_POLL_S, run_check_s: float = DEFAULT_RUN_CHECK_S
                 ) -> None:
        self.settings = settings or ExecutorSettings()
        if self.settings.heartbeat_s >= self.settings.lease_s:
            raise ValueError(f"heartbeat ({self.settings.heartbeat_s} s) must be shorter than "
                             f"the lease ({self.settings.lease_s} s)")
        self.broker = Broker(client, keyspace)
        self.queue = self.settings.queue or self.broker.keyspace.queue_name
        self.redis_url = redis_url
        self.base_name = name
        self.concurrency = concurrency
        self.env = dict(env or {})
        self.poll_s = poll_s
        self.run_check_s = run_check_s
        self.executors = [Executor(i, ExecutorSlot.create()) for i in range(concurrency)]
        self.metrics = SupervisorMetrics(lambda: [e.slot.counters() for e in self.executors])
        self.abandoned: list[Abandoned] = []
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        self._run_check_at = 0.0
        # Quiet: its executors already log an outage once for this worker.
        self._outage = OutageLog(log, "worker supervisor", level="debug")
        self.log = log.bind(supervisor=os.getpid(), queue=self.queue)

    # --- lifecycle ------------------------------------------------------------------

    def ready(self) -> bool:
        """Every executor runs and has registered."""
        return all(e.alive() and e.slot.ready for e in self.executors)

    def request_stop(self) -> None:
        """Graceful stop (SIGTERM): executors finish or hand back their tasks."""
        self._stop.set()

    def run(self) -> None:
        """Supervise until stopped and every executor has exited."""
        for executor in self.executors:
            self._start(executor)
        self.log.info("worker supervisor started", executors=self.concurrency)
        try:
            while True:
                if self._stop.is_set() and self._stop_deadline is None:
                    self._begin_shutdown()
                for executor in self.executors:
                    self._check(executor)
                if self._stop_deadline is not None and not any(
                        e.alive() for e in self.executors):
                    break
                if time.monotonic() >= self._run_check_at and not self._stop.is_set():
                    self._check_runs()
                self._release_abandoned()
                # not _stop.wait: a stop must not spin the loop
                time.sleep(self.poll_s if self._busy or self._stop.is_set()
                           else DEFAULT_IDLE_POLL_S)
            self._release_abandoned(until=time.monotonic() + self.settings.lease_s)
        finally:
            for executor in self.executors:
                if executor.proc is not None:
                    _kill(executor.proc)
                executor.slot.close()
            self.log.info("worker supervisor stopped")

    def _begin_shutdown(self) -> None:
        self._stop_deadline = (time.monotonic() + self.settings.grace_period_s
                               + _SHUTDOWN_MARGIN_S)
        for executor in self.executors:
            if executor.proc is not None:
                executor.proc.send_signal(signal.SIGTERM)  # a no-op once it was reaped

    # --- executors --------------------------------------------------------------------

    def _start(self, executor: Executor) -> None:
        if self.base_name:
            executor.name = (self.base_name if self.concurrency == 1
                             else f"{self.base_name}-{executor.index}")
        else:
            executor.name = f"gf-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        env = {**os.environ, **self.env, PREFIX_ENV: self.broker.keyspace.prefix}
        if self.redis_url:
            env[REDIS_URL_ENV] = self.redis_url
        command = [sys.executable, "-m", "graflow_dist.worker.child",
                   "--slot-fd", str(executor.slot.fd), "--name", executor.name,
                   *self.settings.argv()]
        # Same process group: killing the worker's group (a node) takes its executors.
        executor.proc = subprocess.Popen(command, env=env, pass_fds=(executor.slot.fd,))
        executor.started_at = time.monotonic()

    def _replace(self, executor: Executor, reason: str) -> None:
        """Retire ``executor``'s process (its counters are kept) and start another."""
        with self.metrics.executors.lock:
            self.metrics.executors.retire(executor.slot.counters())
            executor.slot.reset()
        executor.proc = None
        if self._stop.is_set():
            return
        self.metrics.restarts.labels(reason=reason).inc()
        lived = time.monotonic() - executor.started_at
        if reason == CRASHED and lived < _QUICK_EXIT_S:
            executor.quick_exits += 1
            delay = min(_MAX_BACKOFF_S, 0.5 * 2 ** (executor.quick_exits - 1))
            executor.start_after = time.monotonic() + delay
        else:
            executor.quick_exits = 0
            self._start(executor)

    @property
    def _busy(self) -> bool:
        return any(e.busy for e in self.executors)

    def _check(self, executor: Executor) -> None:
        now = time.monotonic()
        executor.busy = False
        if executor.proc is None:
            if not self._stop.is_set() and now >= executor.start_after:
                self._start(executor)
            return
        code = executor.proc.poll()
        if code is not None:
            # Stopping, SIGTERM may end an executor before its handler is set (still
            # importing): nothing was held then, as after a clean exit.
            if not (self._stop.is_set() and code in (0, -signal.SIGTERM)):
                self.log.warning("executor exited", executor=executor.name,
                                 pid=executor.proc.pid, status=code)
            # Unregistered again even after a clean exit: one that ran out of grace
            # period exits without doing so.
            self._abandon(executor, SHUTDOWN if self._stop.is_set() else CRASHED)
            self._replace(executor, CRASHED)
            return
        state = executor.slot.read()
        if state is None:
            return
        executor.busy = state.state != IDLE
        if state.state == RUNNING and state.deadline and now >= state.deadline:
            self._kill(executor, TIMEOUT, state)
        elif self._stop_deadline is not None and now >= self._stop_deadline:
            self._kill(executor, SHUTDOWN, state)

    def _kill(self, executor: Executor, reason: str, seen: SlotState) -> None:
        """SIGKILL ``executor`` because of what ``seen`` shows, take care of its job and
        start a replacement."""
        assert executor.proc is not None
        now = executor.slot.read()
        if reason != SHUTDOWN and (now is None or now.job_id != seen.job_id
                                   or now.token != seen.token):
            return  # it moved on meanwhile: look again at the next poll
        _kill(executor.proc)
        final = executor.slot.read() or seen
        if reason == TIMEOUT:
            self.metrics.timeouts.inc()
            self.log.warning("task timed out: executor killed", executor=executor.name,
                             session=seen.session_id, task=seen.task_id, token=seen.token,
                             timeout_s=seen.timeout_s)
        elif reason == CANCELLED:
            self.metrics.cancelled.inc()
            self.log.info("run ended: its running task was stopped", executor=executor.name,
                          session=seen.session_id, task=seen.task_id)
        if reason == TIMEOUT and final.token != seen.token:
            reason = SHUTDOWN  # finished just before the kill: nothing timed out
        self._abandon(executor, reason, final)
        self._replace(executor, reason)

    def _abandon(self, executor: Executor, reason: str, state: SlotState | None = None
                 ) -> None:
        """Queue the reports and releases for the job ``executor`` held (if any). Its
        registration goes too, unless a replacement reuses its name (given by the
        user), which then replaces it."""
        state = state or executor.slot.read()
        unregister = self.base_name is None
        if state is None or state.state not in (HOLDING, RUNNING) or state.job_id is None:
            # Nothing we can name precisely: its lease expires and the reaper takes over.
            if unregister:
                self.abandoned.append(Abandoned(executor.name, "", reason, SlotState(), True))
            return
        self.abandoned.append(Abandoned(executor.name, state.job_id, reason, state,
                                        unregister))

    # --- runs -------------------------------------------------------------------------

    def _check_runs(self) -> None:
        """Stop tasks whose run ended (cancelled, or failed elsewhere)."""
        self._run_check_at = time.monotonic() + self.run_check_s
        held = [(e, s) for e in self.executors if e.alive()
                for s in [e.slot.read()] if s is not None and s.session_id is not None]
        if not held:
            return
        try:
            statuses = self.broker.runs.statuses(sorted({s.session_id for _, s in held
                                                         if s.session_id}))
            self._outage.recovered()
        except TRANSIENT_ERRORS as exc:
            self._outage.failed(exc)
            return
        except (ResponseError, GraflowError) as exc:
            # A damaged run record: the coordinator fails that run; look again later.
            self.log.error("could not read the runs of held jobs", error=str(exc))
            return
        for executor, state in held:
            status = statuses.get(state.session_id or "")
            if status is not None and status.finished:
                self._kill(executor, CANCELLED, state)

    # --- reports ----------------------------------------------------------------------

    def _release_abandoned(self, until: float | None = None) -> None:
        """Report and release the jobs of executors that are gone; what Redis refuses
        now is tried again next time (``until``: keep trying till then)."""
        while self.abandoned:
            item = self.abandoned[0]
            try:
                self._release(item)
                self._outage.recovered()
            except (*TRANSIENT_ERRORS, ResponseError, GraflowError) as exc:
                if isinstance(exc, TRANSIENT_ERRORS) or writes_refused(exc):
                    self._outage.failed(exc)  # gone, or full or read-only: wait
                    if until is None or time.monotonic() >= until:
                        return
                    time.sleep(self._outage.backoff_s())
                    continue
                # Data, not an outage (keys overwritten with another type, a damaged
                # lease entry): wrong keys are moved aside and the release tried once
                # more; otherwise the job's lease expires and the reaper re-dispatches.
                if not item.repaired and self._repair(exc, item):
                    item.repaired = True
                    continue
                self.log.error("could not release a gone executor's job; its lease will "
                               "expire", executor=item.worker, job=item.job_id, error=str(exc))
            self.abandoned.pop(0)

    def _repair(self, exc: Exception, item: Abandoned) -> bool:
        if not (isinstance(exc, WrongTypeError) or is_wrong_type(exc)):
            return False
        error = exc if isinstance(exc, WrongTypeError) else WrongTypeError(str(exc), {})
        registration = self.broker.registration(item.worker, self.queue, 60)
        try:
            return repair_worker_keys(self.broker, self.log, error, self.queue, registration)
        except ResponseError:
            return False

    def _release(self, item: Abandoned) -> None:
        registration = self.broker.registration(item.worker, self.queue, 60)
        if item.job_id:
            claimer = self.broker.claimer(self.queue, item.worker, self.settings.lease_s,
                                          registration.rq_key)
            known = claimer.tasks_of(item.job_id)
            events = [] if known is None else self._events(item, *known)
            claimer.send(events, release=item.job_id)
        if item.unregister:
            registration.unregister()

    def _events(self, item: Abandoned, session_id: str, tokens: list[str]) -> list[Event]:
        if item.reason == CANCELLED:
            return []  # the run is over: only the lease matters
        state = item.state
        running = state.token if state.state == RUNNING else None
        events = []
        for token in tokens:
            if token == running and item.reason == TIMEOUT:
                error = TaskTimeoutError(state.task_id or "?", state.timeout_s, 1, session_id)
                events.append(Event(
                    FAIL, session_id, token=token, task_id=state.task_id or "",
                    worker=item.worker, error=f"timed out after {state.timeout_s:g} s on "
                    f"worker {item.worker} (its process was killed)",
                    error_type=TaskTimeoutError.__name__, error_data=error_attributes(error)))
            elif token == running and item.reason == CRASHED:
                events.append(Event(LOST, session_id, token=token, task_id=state.task_id or "",
                                    worker=item.worker,
                                    error=f"worker process {item.worker} died running it"))
            else:
                events.append(Event(HANDBACK, session_id, token=token, worker=item.worker,
                                    error=f"handed back by worker {item.worker} ({item.reason})"))
        return events


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL an executor and reap it (Popen never signals a process it already reaped,
    whose PID may be another's by now)."""
    proc.kill()
    proc.wait()
