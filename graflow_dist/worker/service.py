"""Worker: an RQ-registered worker that claims graflow batch jobs and runs their tasks.

It registers with RQ (so ``rq info`` lists it), but claims jobs with our own atomic
script instead of RQ's per-job machinery and runs tasks in-process (no fork). A
heartbeat thread renews its leases while tasks run. On SIGTERM it stops taking work,
lets the running task finish within the grace period and hands the rest back; when the
grace period runs out it hands back the running task too, so it is re-dispatched at
once instead of after its lease.

``graflow-dist worker`` runs it in an executor process under a supervisor
(`graflow_dist.worker.supervisor`): the worker publishes the job it holds and the task
it runs, with that task's deadline, in its `ExecutorSlot`, and the supervisor kills
and replaces the process when a task runs past its timeout or its run was cancelled.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import redis
import structlog
from redis.exceptions import ResponseError

from graflow_dist.broker import Broker
from graflow_dist.broker.connection import TRANSIENT_ERRORS, is_wrong_type, writes_refused
from graflow_dist.broker.jobs import DEFAULT_HEARTBEAT_S, DEFAULT_LEASE_S, ClaimedJob
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.scripts import LeaseResult
from graflow_dist.broker.workers import WorkerRegistration
from graflow_dist.errors import (
    ConfigurationError,
    WireError,
    WrongTypeError,
)
from graflow_dist.limits import Limits
from graflow_dist.observability.outage import OutageLog
from graflow_dist.scheduler.continuation import continuation_token
from graflow_dist.scheduler.events import TaskOutcome
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.trace.base import Tracer
from graflow_dist.wire.messages import DONE, FAIL, HANDBACK, LOST, Batch, Event
from graflow_dist.wire.task_records import WorkerStats
from graflow_dist.worker.executor import Report, TaskExecutor
from graflow_dist.worker.job_channel import JobChannel
from graflow_dist.worker.slot import ExecutorSlot

DEFAULT_GRACE_PERIOD_S = 30.0
# Reports of finished tasks are sent together, at most this many or this old, so fast
# tasks share one transaction while a slow task's successors are never held up.
DEFAULT_REPORT_BATCH = 16
DEFAULT_REPORT_DELAY_S = 0.002
# A job's last continuation runs ahead of its proposal only if Redis said this long ago
# at most that the run was going (the claim, or a recorded continuation): a successor
# starts at most this long after its run was cancelled, as for any report held back
# (see Worker._run_ahead).
RUN_AHEAD_WITHIN_S = DEFAULT_REPORT_DELAY_S
# After Redis refused a command for a reason other than an outage: wait before retrying.
_REFUSED_BACKOFF_S = 1.0


class _IdleWaitEnded(Exception):
    """Raised by `Worker.interrupt` into an idle wait for work: nothing is held then,
    so a stopping worker need not sit out the wait."""

log = structlog.get_logger("graflow_dist.worker")


@dataclass
class CurrentJob:
    """The job being worked on, as the heartbeat and the shutdown watchdog see it."""

    job_id: str
    batch: Batch
    unfinished: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    lost: bool = False  # the lease was reaped (we were paused): the batch runs elsewhere
    reports: list[Report] = field(default_factory=list)  # finished, not yet sent
    reports_since: float = 0.0
    continued: dict[str, TaskSpec] = field(default_factory=dict)  # run at once, by token
    all_plain: bool = True  # every task so far completed plainly (see Worker._proposal)
    # The job's last task, proposed and run before the proposal was sent, and the
    # report that proposes it (see Worker._run_ahead)
    ahead: tuple[TaskSpec, Report] | None = None
    # When Redis last said the run was going and the lease ours (monotonic)
    confirmed_at: float = field(default_factory=time.monotonic)

    def spec(self, token: str) -> TaskSpec | None:
        for spec in self.batch.specs:
            if spec.token == token:
                return spec
        return self.continued.get(token)


def _plain(event: Event) -> bool:
    """Whether ``event`` is a completion that asked for nothing but its successors."""
    return event.kind == DONE and event.outcome == TaskOutcome() and not event.dynamic


def repair_worker_keys(broker: Broker, log: Any, exc: WrongTypeError, queue: str,
                       registration: WorkerRegistration) -> bool:
    """Quarantine the keys of the wrong type that ``exc`` names, else every key a
    worker of ``queue`` registered as ``registration`` uses; whether any moved."""
    log.error("keys of the wrong type found", error=str(exc))
    expected = {**broker.keyspace.key_types(queue), **registration.keys()}
    try:
        moved = broker.repair.repair(exc, expected)
    except TRANSIENT_ERRORS:
        return False  # the caller waits the outage out, then finds them again
    for q in moved:
        log.error("key of the wrong type quarantined", key=q.key, held=q.held,
                  moved_to=q.moved_to)
    return bool(moved)


class Worker:
    """Runs graflow tasks from one queue.

    Parameters
    ----------
    client:
        Redis client (bytes responses).
    queue:
        RQ queue name (default: the deployment prefix).
    name:
        Worker name, unique in the deployment.
    lease_s, heartbeat_s:
        A claimed job is re-dispatched ``lease_s`` after the last heartbeat.
    grace_period_s:
        On SIGTERM, how long the running task may take before it is handed back.
    tracer:
        Gets each task's hooks, continuing the trace of the run's submission
        (default: `NoopTracer`).
    limits:
        Size limits on results, channel values and messages (default: from the
        environment, see `graflow_dist.limits`).
    task_timeout_s:
        Timeout of tasks without one of their own (0: none). Enforced by the
        supervisor that reads ``slot``; without a slot nothing enforces it.
    slot:
        Where this worker publishes its job, task and deadline for its supervisor.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        keyspace: Keyspace | None = None,
        queue: str | None = None,
        name: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        grace_period_s: float = DEFAULT_GRACE_PERIOD_S,
        metrics: Any = None,
        tracer: Tracer | None = None,
        limits: Limits | None = None,
        task_timeout_s: float = 0.0,
        slot: ExecutorSlot | None = None,
    ) -> None:
        if heartbeat_s >= lease_s:
            raise ConfigurationError(f"heartbeat ({heartbeat_s} s) must be shorter than the "
                                     f"lease ({lease_s} s)")
        self.broker = Broker(client, keyspace)
        self.queue = queue or self.broker.keyspace.queue_name
        self.name = name or f"gf-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.grace_period_s = grace_period_s
        self.task_timeout_s = task_timeout_s
        self.slot = slot
        self.metrics = metrics
        self.limits = limits or Limits.from_env()
        self.registration = self.broker.registration(self.name, self.queue,
                                                     int(max(lease_s * 3, 30)))
        self.claimer = self.broker.claimer(self.queue, self.name, lease_s,
                                           self.registration.rq_key,
                                           self.limits.max_message_bytes)
        self.executor = TaskExecutor(self.broker, self.name, tracer=tracer, limits=self.limits)
        self.stopping = threading.Event()
        self._idle_waiting = False
        self.current: CurrentJob | None = None
        self.ready = threading.Event()
        self.tasks_done = 0
        self.tasks_failed = 0
        self.started_at = time.time()
        self._outage = OutageLog(log, "worker")
        self._beat_stop = threading.Event()
        self._flush_due = threading.Event()  # a report was buffered: check it soon
        # Jobs claimed together with the release of the last one (None: claim anew).
        self._next: list[ClaimedJob] | None = None
        # A claim failed for want of Redis: it may have run, its reply lost, and holds
        # jobs we do not know of (see _return_unknown_jobs).
        self._claim_unsure = False
        self.log = log.bind(worker=self.name, queue=self.queue)

    # --- lifecycle ------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Work until ``stop`` (or `request_stop`) is set."""
        stop = stop or self.stopping
        try:
            self.registration.register(self.stats())
        except ResponseError as exc:
            if not is_wrong_type(exc):
                raise
            self._repair(WrongTypeError(str(exc), {}))
            self.registration.register(self.stats())
        beat = threading.Thread(target=self._heartbeat_loop, name="gf-heartbeat", daemon=True)
        beat.start()
        threading.Thread(target=self._flusher_loop, name="gf-flusher", daemon=True).start()
        self.ready.set()
        if self.slot is not None:
            self.slot.mark_ready()
        self.log.info("worker started", lease_s=self.lease_s, heartbeat_s=self.heartbeat_s)
        try:
            while not (stop.is_set() or self.stopping.is_set()):
                try:
                    self._work_once()
                    self._outage.recovered()
                except _IdleWaitEnded:
                    break
                except TRANSIENT_ERRORS as exc:
                    self._outage.failed(exc)
                    time.sleep(self._outage.backoff_s())
                except WrongTypeError as exc:
                    self._repair(exc)
                except ResponseError as exc:  # data or settings, not an outage
                    if is_wrong_type(exc):
                        self._repair(WrongTypeError(str(exc), {}))
                    elif writes_refused(exc):  # Redis full, read-only: wait as for an outage
                        self._outage.failed(exc)
                        time.sleep(self._outage.backoff_s())
                    else:
                        self.log.error("redis refused a command", error=str(exc))
                        time.sleep(_REFUSED_BACKOFF_S)
        finally:
            self._return_unstarted()
            self._beat_stop.set()
            beat.join(timeout=self.heartbeat_s + 1)
            try:
                self.registration.unregister()
            except TRANSIENT_ERRORS:
                pass  # its registration expires
            except ResponseError as exc:  # keys someone overwrote: others repair them
                self.log.error("could not unregister", error=str(exc))
            self.log.info("worker stopped", tasks_done=self.tasks_done)

    def _repair(self, exc: WrongTypeError) -> None:
        """Quarantine the keys of the wrong type so that work goes on; nothing of what
        failed was written."""
        if not repair_worker_keys(self.broker, self.log, exc, self.queue, self.registration):
            time.sleep(_REFUSED_BACKOFF_S)  # nothing to repair here: do not spin

    def request_stop(self) -> None:
        """Graceful stop (SIGTERM): no new work; hand back what cannot finish in time."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.log.info("stopping: finishing the running task", grace_period_s=self.grace_period_s)
        watchdog = threading.Thread(target=self._grace_watchdog, name="gf-grace", daemon=True)
        watchdog.start()

    def interrupt(self) -> None:
        """`request_stop` for a signal handler (main thread): a worker waiting idle for
        work stops at once instead of at the end of its wait."""
        self.request_stop()
        if self._idle_waiting:
            raise _IdleWaitEnded

    def _grace_watchdog(self) -> None:
        deadline = time.monotonic() + self.grace_period_s
        while time.monotonic() < deadline:
            if self.current is None:
                return
            time.sleep(0.05)
        job = self.current
        if job is None:
            return

        def hand_back() -> None:
            with job.lock:
                tokens = list(job.unfinished)
                self.log.warning("grace period over: handing back running tasks",
                                 job=job.job_id, tasks=len(tokens))
                self._hand_back(job, tokens)

        # Bounded: during a Redis outage the hand-back cannot land, and the lease then
        # re-dispatches the tasks anyway; the worker must still exit.
        helper = threading.Thread(target=hand_back, name="gf-hand-back", daemon=True)
        helper.start()
        helper.join(timeout=max(1.0, self.lease_s))
        os._exit(0)  # the running task cannot be interrupted; its work is handed back

    def _heartbeat_loop(self) -> None:
        while not self._beat_stop.wait(self.heartbeat_s):
            try:
                self._beat()
            except TRANSIENT_ERRORS:
                continue  # the main loop reports the outage once
            except WrongTypeError as exc:
                self._repair(exc)
            except ResponseError as exc:
                if is_wrong_type(exc):
                    self._repair(WrongTypeError(str(exc), {}))
                elif not writes_refused(exc):  # as for an outage: the main loop says so
                    self.log.error("heartbeat failed", error=str(exc))
            except Exception as exc:  # never let the heartbeat die silently
                self.log.error("heartbeat failed", error=str(exc))

    def _beat(self) -> None:
        job = self.current
        lost = self.registration.heartbeat(self.claimer, [job.job_id] if job else [],
                                           self.stats(job))
        if job is not None and lost:
            with job.lock:
                # The main thread may have released the job meanwhile (its last report,
                # a skip, a hand-back: each under job.lock, with nothing left unfinished
                # once done): no lease to renew then, and nothing lost.
                if job.unfinished:
                    self._lease_lost(job)

    def stats(self, job: CurrentJob | None = None) -> WorkerStats:
        """What this worker tells the console with each heartbeat."""
        current: list[str] = []
        if job is not None:
            current = [spec.task_id for token in list(job.unfinished)
                       if (spec := job.spec(token)) is not None]
        return WorkerStats(self.name, queue=self.queue, host=socket.gethostname(),
                           pid=os.getpid(), started_at=self.started_at,
                           tasks_done=self.tasks_done, tasks_failed=self.tasks_failed,
                           current_session=job.batch.session_id if job else "",
                           current_tasks=current)

    def _lease_lost(self, job: CurrentJob) -> None:
        """Our lease of ``job`` was reaped (we were paused or cut off past it): its tasks
        run elsewhere and our reports of them are fenced off."""
        if job.lost:
            return
        job.lost = True
        self.log.warning("lease lost: the job was re-dispatched elsewhere", job=job.job_id)
        if self.metrics is not None:
            self.metrics.lease_lost()

    # --- work -----------------------------------------------------------------------

    def _work_once(self) -> None:
        claimed, self._next = self._next, None
        if claimed is None:
            claimed = self._claim()
        if self._claim_unsure:
            self._return_unknown_jobs(claimed)
        if not claimed:
            self._idle_waiting = True
            try:
                woke = self.claimer.wait_for_work()
            finally:
                self._idle_waiting = False
            if not woke:
                self.registration.idle()  # idle for a while, not between two tasks
            return
        for job in claimed:
            self._process(job)

    def _claim(self) -> list[ClaimedJob]:
        try:
            return self.claimer.claim(1)
        except TRANSIENT_ERRORS:
            self._claim_unsure = True
            raise

    def _return_unknown_jobs(self, claimed: list[ClaimedJob]) -> None:
        """After a claim whose reply may have been lost (Redis went away after running
        it), hand back the jobs we hold but never heard of, besides ``claimed``: their
        tasks are dispatched again at once, instead of after their lease (which would
        count them as crashes of tasks that never started)."""
        known = {job.job_id for job in claimed}
        for job_id in self.claimer.held_jobs():
            tasks = None if job_id in known else self.claimer.tasks_of(job_id)
            if tasks is None:
                continue  # ours to run, or unreadable: the reaper takes it back
            session_id, tokens = tasks
            events = [Event(HANDBACK, session_id, token=token, worker=self.name,
                            error=f"claimed by worker {self.name} in a claim whose reply "
                                  "was lost") for token in tokens]
            self.claimer.send(events, release=job_id)
            self.log.warning("job of a claim whose reply was lost handed back", job=job_id,
                             session=session_id, tasks=len(tokens))
        self._claim_unsure = False

    def _process(self, claimed: ClaimedJob) -> None:
        if claimed.wrong_type:  # taken off the queue, not held: nothing to run or release
            self.log.error("job key of the wrong type skipped", job=claimed.job_id,
                           error=claimed.error)
            self._repair(WrongTypeError(claimed.error,
                                        {self.broker.keyspace.rq_job(claimed.job_id):
                                         claimed.wrong_type}))
            return
        if claimed.batch is None:
            self._reject(claimed.job_id, claimed.error)
            return
        job = CurrentJob(claimed.job_id, claimed.batch,
                         [s.token for s in claimed.batch.specs])
        self.current = job
        if self.slot is not None:
            self.slot.holding(job.job_id, job.batch.session_id)
        try:
            if claimed.run_status is None and claimed.raw_status:
                # The run's record holds a status that is none: it is damaged, and its
                # coordinator must hear so (skipping would leave the tasks hanging).
                error = WireError(f"run {job.batch.session_id}: its record is damaged "
                                  f"(status {claimed.raw_status[:60]!r})")
                self._fail_all(job, error, "the run's record is damaged")
            elif claimed.run_status is None or not claimed.run_status.active:
                self.log.info("skipping job of an inactive run", job=job.job_id,
                              session=job.batch.session_id,
                              status=claimed.run_status.value if claimed.run_status else None)
                self._finish(job, [])
            else:
                self._run_batch(job)
        finally:
            self.current = None
            if self.slot is not None:
                self.slot.idle()

    def _return_unstarted(self) -> None:
        """Stopping: hand back jobs claimed with the last release and not started (and
        any of a claim whose reply was lost)."""
        claimed, self._next = self._next or [], None
        if self._claim_unsure:
            try:
                self._return_unknown_jobs(claimed)
            except TRANSIENT_ERRORS:
                self.log.warning("jobs of a claim whose reply was lost not handed back: "
                                 "they are re-dispatched after their lease")
        for job in claimed:
            try:
                if job.batch is None:
                    self._process(job)  # rejected or skipped: nothing of it runs
                else:
                    self._hand_back(CurrentJob(job.job_id, job.batch),
                                    [s.token for s in job.batch.specs])
            except TRANSIENT_ERRORS:
                self.log.warning("claimed job not handed back: it is re-dispatched after "
                                 "its lease", job=job.job_id)

    def _reject(self, job_id: str, reason: str) -> None:
        """A malformed job: log it, keep it in rq's failed registry, re-dispatch its
        tasks if we know which they were (in the same transaction that releases its
        lease, so they cannot fall between the two), and keep running."""
        self.log.error("malformed job moved to the failed registry", job=job_id, error=reason)
        known = self.claimer.tasks_of(job_id)
        lost = [] if known is None else [
            Event(LOST, known[0], token=token, worker=self.name,
                  error=f"job {job_id} was malformed: {reason}") for token in known[1]]
        self._send(lambda: self.claimer.reject(job_id, reason, lost))

    def _run_batch(self, job: CurrentJob) -> None:
        batch = job.batch
        # Fetches the code of the batch's tasks; each task's code is verified and loaded
        # when it runs (a blob that fails to load fails its tasks, not the worker).
        ctx = self.executor.context(batch, self.executor.graph(batch))
        slot = self.slot
        specs = list(batch.specs)
        chain = list(batch.chain)  # plain successors after the last spec, in order
        index = 0
        while index < len(specs):
            spec = specs[index]
            index += 1
            if self.stopping.is_set() or job.lost:
                break
            if slot is not None:
                timeout = batch.timeouts.get(spec.task_id) or self.task_timeout_s
                slot.running(spec.token, spec.task_id,
                             time.monotonic() + timeout if timeout else 0.0, timeout)
            queued_at = time.time() if spec.token in job.continued else batch.enqueued_at
            report = self.executor.run(ctx, spec, queued_at)
            if slot is not None:
                slot.between_tasks()
            event = report.event
            if chain and event.kind == DONE and event.result is not None \
                    and isinstance(ctx.channel, JobChannel):
                ctx.channel.remember(spec.task_id, event.result)  # for a continued successor
            self._observe(spec, report)
            job.all_plain = job.all_plain and _plain(event)
            with job.lock:
                if spec.token not in job.unfinished:
                    # handed back by the shutdown watchdog meanwhile, or run ahead and
                    # then not recorded
                    return
                job.unfinished.remove(spec.token)
                if not job.reports:
                    job.reports_since = time.monotonic()
                job.reports.append(report)
                last = not job.unfinished
                proposal = self._proposal(job, spec, report, chain) if last else None
                if proposal is not None:
                    if not chain and (time.monotonic() - job.confirmed_at
                                      <= RUN_AHEAD_WITHIN_S):
                        self._run_ahead(job, proposal, report)  # the job's last task
                        specs.append(proposal)
                    elif self._continue(job, proposal):
                        specs.append(proposal)
                elif (last or len(job.reports) >= DEFAULT_REPORT_BATCH
                        or time.monotonic() - job.reports_since >= DEFAULT_REPORT_DELAY_S):
                    self._flush_reports(job, last)
                elif len(job.reports) == 1:  # if the next task is slow, don't wait for it
                    self._flush_due.set()
            self.tasks_done += 1
        with job.lock:
            if job.lost:  # its tasks were re-dispatched: running them here is wasted work
                self.log.warning("lease lost: the rest of the job runs elsewhere",
                                 job=job.job_id, skipped=len(job.unfinished))
                job.unfinished.clear()
            elif job.unfinished:  # stopping: hand the rest back right away
                self._hand_back(job, list(job.unfinished))

    def _proposal(self, job: CurrentJob, spec: TaskSpec, report: Report,
                  chain: list[tuple[str, int]]) -> TaskSpec | None:
        """The successor to run at once after ``spec``, the job's last task (local
        continuation), or None: only after a plain completion (nothing asked for but
        the successors; for a group member, of every task of the job: the job held the
        whole group), never while stopping, and at most along the job's chain."""
        event = report.event
        if (not chain or self.stopping.is_set() or job.lost or not _plain(event)
                or (spec.group is not None and not job.all_plain)):
            return None
        task_id, cycle = chain.pop(0)
        proposal = TaskSpec(task_id, continuation_token(), cycle)
        if (replace(event, continuation=proposal).size_estimate()
                > self.limits.max_message_bytes):
            return None  # the completion alone fits the limit: send it plainly
        return proposal

    def _continue(self, job: CurrentJob, proposal: TaskSpec) -> bool:
        """Send the job's reports with ``proposal`` (caller holds job.lock); True if it
        was recorded and runs here next. Else the job was released (or its lease was
        lost) with the last report sent plainly: the coordinator dispatches the
        successor as usual."""
        if self._propose(job, proposal) != LeaseResult.CONTINUED:
            return False
        job.continued[proposal.token] = proposal
        job.unfinished.append(proposal.token)
        return True

    def _propose(self, job: CurrentJob, proposal: TaskSpec) -> LeaseResult:
        """Send the job's reports, the last one carrying ``proposal`` (caller holds
        job.lock); CONTINUED confirms the run is going and the lease ours."""
        reports = list(job.reports)
        events = [r.event for r in reports[:-1]]
        done = reports[-1].event
        result = self._send(lambda: self.claimer.continue_with(events, done, proposal,
                                                                job.job_id))
        del job.reports[:len(reports)]
        if result == LeaseResult.CONTINUED:
            job.confirmed_at = time.monotonic()
        elif result == LeaseResult.LEASE_LOST:
            self._lease_lost(job)
        return result

    def _run_ahead(self, job: CurrentJob, proposal: TaskSpec, proposing: Report) -> None:
        """Queue ``proposal``, the job's last task, to run before its proposal is sent
        (caller holds job.lock): the reports held back, the proposal and the
        successor's own report then go in the round trip that releases the job
        (`_flush_reports`), one less than `_continue` takes. The reports are held back
        no longer than any report: if the successor is slow, the flusher sends them
        with the proposal (`_record_ahead`)."""
        job.ahead = (proposal, proposing)
        job.continued[proposal.token] = proposal
        job.unfinished.append(proposal.token)
        self._flush_due.set()

    def _record_ahead(self, job: CurrentJob) -> None:
        """The successor run ahead is slow: send the reports with its proposal now, as
        `_continue` does (caller holds job.lock). If it was not recorded (the job was
        released), its run is dropped."""
        assert job.ahead is not None
        proposal = job.ahead[0]
        recorded = self._propose(job, proposal) == LeaseResult.CONTINUED
        job.ahead = None
        if not recorded and proposal.token in job.unfinished:
            job.unfinished.remove(proposal.token)

    def _observe(self, spec: TaskSpec, report: Report) -> None:
        event = report.event
        if event.kind == FAIL:
            self.tasks_failed += 1
            self.log.warning("task failed", session=event.session_id, task=spec.task_id,
                             attempt=spec.attempt, token=spec.token, error=event.error,
                             fatal=event.fatal, traceback=report.invocation.traceback
                             if report.invocation else None)
        else:
            self.log.debug("task done", session=event.session_id, task=spec.task_id,
                           attempt=spec.attempt, duration_s=round(report.duration_s, 6))
        if self.metrics is not None:
            self.metrics.task_finished(event.kind, report.duration_s)

    def _fail_all(self, job: CurrentJob, exc: BaseException,
                  why: str = "cannot load the workflow") -> None:
        self.log.error(f"{why}: failing the job's tasks", job=job.job_id,
                       session=job.batch.session_id, error=str(exc))
        reports = [self.executor.failure(job.batch.session_id, spec, exc, True,
                                         f"{why} on worker {self.name}: {exc}")
                   for spec in job.batch.specs]
        self._finish(job, reports)

    def _finish(self, job: CurrentJob, reports: list[Report]) -> None:
        events = [r.event for r in reports]
        with job.lock:
            self._send(lambda: self.claimer.send(events, release=job.job_id))
            job.unfinished.clear()

    def _flusher_loop(self) -> None:
        """Sends reports buffered while a slower task runs, once they are
        ``DEFAULT_REPORT_DELAY_S`` old (the main thread is busy in that task)."""
        while not self._beat_stop.is_set():
            if not self._flush_due.wait(0.5):
                continue
            self._flush_due.clear()
            time.sleep(DEFAULT_REPORT_DELAY_S)
            job = self.current
            if job is None:
                continue
            with job.lock:
                if job.reports and job.unfinished and (
                        time.monotonic() - job.reports_since >= DEFAULT_REPORT_DELAY_S):
                    try:
                        if job.ahead is not None:
                            self._record_ahead(job)
                        else:
                            self._flush_reports(job, last=False)
                    except Exception as exc:  # they go out with the job's next flush
                        self.log.warning("buffered reports not sent yet", error=str(exc))

    def _flush_reports(self, job: CurrentJob, last: bool) -> None:
        """Send the finished tasks' reports in one transaction (caller holds job.lock);
        with the last one the job is released and the next one claimed, else we learn
        whether we still hold it."""
        reports = list(job.reports)
        events = [r.event for r in reports]
        claim = 0 if self.stopping.is_set() else 1
        if job.ahead is not None:  # the successor run ahead finished: the job with it
            proposal, proposing = job.ahead
            i = next(i for i, r in enumerate(reports) if r is proposing)
            held, claimed = self._send(lambda: self.claimer.ran_ahead(
                events[:i], proposing.event, proposal, events[i + 1:], job.job_id, claim),
                claims=bool(claim))
            job.ahead = None
            if claim:
                self._next = claimed
        elif last and claim:
            held, self._next = self._send(
                lambda: self.claimer.release_and_claim(events, job.job_id), claims=True)
        else:
            option = {"release": job.job_id} if last else {"still_held": job.job_id}
            held = self._send(lambda: self.claimer.send(events, **option))
        if not held:
            self._lease_lost(job)
        del job.reports[:len(reports)]  # only once they landed

    def _hand_back(self, job: CurrentJob, tokens: list[str]) -> None:
        if job.ahead is not None:  # never proposed: the coordinator dispatches it itself
            tokens = [t for t in tokens if t != job.ahead[0].token]
            job.ahead = None
        reports, job.reports = job.reports, []  # finished tasks: reported, not handed back
        events = [r.event for r in reports] + [
            Event(HANDBACK, job.batch.session_id, token=token,
                  task_id=spec.task_id if (spec := job.spec(token)) else "",
                  worker=self.name, error=f"handed back by worker {self.name} on shutdown")
            for token in tokens]
        self._send(lambda: self.claimer.send(events, release=job.job_id))
        job.unfinished.clear()
        self.log.info("tasks handed back", job=job.job_id, tasks=len(tokens))

    def _send(self, transaction: Callable[[], Any], *, claims: bool = False) -> Any:
        """Run a report transaction, retrying it across a Redis outage: a finished
        task's lost report would cost a re-run after its lease. Resending a report that
        did land is harmless: the coordinator drops the duplicate by its token. One that
        ``claims`` jobs may have claimed some whose reply was lost (`_claim_unsure`)."""
        while True:
            try:
                result = transaction()
            except TRANSIENT_ERRORS as exc:
                self._claim_unsure = self._claim_unsure or claims
                self._outage.failed(exc)
                time.sleep(self._outage.backoff_s())
                continue
            except WrongTypeError as exc:  # nothing was written: repair, send again
                self._repair(exc)
                continue
            except ResponseError as exc:
                if not writes_refused(exc):
                    raise
                # Nothing was written (Redis full, read-only): keep the reports and wait.
                self._outage.failed(exc)
                time.sleep(self._outage.backoff_s())
                continue
            self._outage.recovered()
            return result
