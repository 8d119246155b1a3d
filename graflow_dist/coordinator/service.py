"""Coordinator: drives every active run's scheduler from the event stream.

One loop: read events (submissions, completions) from the stream, apply them to the
in-memory schedulers, re-dispatch tasks whose lease expired, release retries that are
due, then commit everything (frontier deltas, result moves, new RQ jobs, the stream
cursor) in one fenced script. A standby coordinator takes over by acquiring the leader
lease and reloading the frontiers from Redis; events after the committed cursor are
applied exactly once, and duplicates are dropped by their dispatch token.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
import structlog

from graflow_dist.broker import Broker, Commit
from graflow_dist.broker.connection import TRANSIENT_ERRORS
from graflow_dist.broker.events import DeadEvent
from graflow_dist.broker.jobs import DEFAULT_LEASE_S
from graflow_dist.broker.keys import Keyspace
from graflow_dist.checkpoint.io import DEFAULT_CHECKPOINT_DIR
from graflow_dist.coordinator.checkpoints import checkpoint_run
from graflow_dist.coordinator.feedback import FeedbackTimeouts
from graflow_dist.coordinator.runs import DEFAULT_MAX_BATCH, PendingCheckpoint, RunState
from graflow_dist.errors import GraflowError, NotLeaderError, StaleStateError
from graflow_dist.observability.outage import OutageLog
from graflow_dist.scheduler.events import CheckpointRequest, RunStatus
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.messages import ANSWER, CANCEL, LOST, PARK, RESUME, SUBMIT, Event

DEFAULT_LEADER_LEASE_S = 5.0
DEFAULT_REAP_INTERVAL_S = 0.5
DEFAULT_RUN_TTL_S = 7 * 24 * 3600
_MAX_BLOCK_MS = 200
_EVENTS_PER_READ = 2000
_WORKER_COUNT_REFRESH_S = 1.0

log = structlog.get_logger("graflow_dist.coordinator")


class Coordinator:
    """The scheduling service of a deployment.

    Parameters
    ----------
    client:
        Redis client (bytes responses).
    keyspace:
        Key layout (deployment prefix).
    checkpoint_dir:
        Where checkpoints with relative or default paths go (a directory, or a
        ``redis://`` store URL).
    leader_lease_s:
        How long a dead leader blocks a standby from taking over.
    run_ttl_s:
        How long a finished run's data stays in Redis.
    checkpoint_every_steps, checkpoint_every_s:
        Automatic frontier checkpoints of every run (0 disables), so a run survives
        even the loss of Redis.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        keyspace: Keyspace | None = None,
        coordinator_id: str | None = None,
        checkpoint_dir: str = DEFAULT_CHECKPOINT_DIR,
        leader_lease_s: float = DEFAULT_LEADER_LEASE_S,
        reap_interval_s: float = DEFAULT_REAP_INTERVAL_S,
        run_ttl_s: int = DEFAULT_RUN_TTL_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        checkpoint_every_steps: int = 0,
        checkpoint_every_s: float = 0.0,
        metrics: Any = None,
    ) -> None:
        self.broker = Broker(client, keyspace)
        self.keyspace = self.broker.keyspace
        self.id = coordinator_id or (
            f"coord-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        )
        self.checkpoint_dir = checkpoint_dir
        self.leader_lease_s = leader_lease_s
        self.reap_interval_s = reap_interval_s
        self.run_ttl_s = run_ttl_s
        self.max_batch = max_batch
        self.checkpoint_every_steps = checkpoint_every_steps
        self.checkpoint_every_s = checkpoint_every_s
        self.metrics = metrics
        self.runs: dict[str, RunState] = {}
        self.epoch = 0
        self.cursor = "0-0"
        self.commit_seq = 0  # commits seen in Redis, ours included
        self.is_leader = False
        self._renew_at = 0.0
        self._reap_at = 0.0
        self._live_workers = 1
        self._workers_at = 0.0
        self._auto_ckpt: dict[str, tuple[int, float]] = {}
        self._outage = OutageLog(log, "coordinator")
        # Set by a Redis outage: leases could not be renewed meanwhile, so they get one
        # lease period of grace before the next reap (healthy workers are not reaped).
        self._leases_suspect = False
        self._redis_run_id: str | None = None
        self._released_jobs: list[str] = []  # reaped jobs whose lease records go
        self._dead: list[DeadEvent] = []  # unreadable events, kept aside by the commit
        self.feedback = FeedbackTimeouts(self.broker)
        self.ready = threading.Event()
        self.log = log.bind(coordinator=self.id)

    # --- lifecycle ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set; survives Redis outages and leadership loss."""
        self.log.info("coordinator starting", prefix=self.keyspace.prefix)
        try:
            while not stop.is_set():
                try:
                    if not self._ensure_leader():
                        stop.wait(min(1.0, self.leader_lease_s / 3))
                        continue
                    self.step()
                    self._outage.recovered()
                except TRANSIENT_ERRORS as exc:
                    self._outage.failed(exc)
                    self._leases_suspect = True
                    self._drop_leadership("redis unavailable")
                    stop.wait(self._outage.backoff_s())
                except NotLeaderError:
                    self._drop_leadership("lease lost")
                except StaleStateError:
                    self._drop_leadership("redis lost committed writes; reloading")
        finally:
            self._release()

    def _release(self) -> None:
        try:
            if self.is_leader:
                self.broker.leader.release(self.id)
            self.broker.leader.withdraw(self.id)
        except TRANSIENT_ERRORS:
            pass
        self.is_leader = False
        self.log.info("coordinator stopped")

    def _ensure_leader(self) -> bool:
        now = time.monotonic()
        if self.is_leader and now < self._renew_at:
            return True
        epoch = self.broker.leader.acquire(self.id, self.leader_lease_s)
        self.broker.leader.announce(self.id)
        if epoch == 0:
            self._leases_suspect = False  # the leader gives the grace, not a standby
            if self.is_leader:
                self._drop_leadership("lease taken by another coordinator")
            self.ready.clear()
            return False
        self._renew_at = now + self.leader_lease_s / 3
        if not self.is_leader or epoch != self.epoch:
            self.epoch = epoch
            self._take_over()
        return True

    def _take_over(self) -> None:
        """Become leader: reload every active run's frontier from Redis."""
        self.runs.clear()
        self.cursor, self.commit_seq = self.broker.leader.committed_state()
        for session_id in self.broker.runs.active_ids():
            try:
                self._load(session_id, start=False)
            except GraflowError as exc:
                self._fail_unloadable(session_id, exc)
        self.is_leader = True
        self.ready.set()
        self.log.info("leader", epoch=self.epoch, runs=len(self.runs), cursor=self.cursor)

    def _drop_leadership(self, why: str) -> None:
        if self.is_leader:
            self.log.warning("no longer leader", reason=why)
        self.is_leader = False
        self.ready.clear()
        self.runs.clear()
        # Their re-dispatch lived in the discarded runs: leave those leases expired for
        # the next reaper pass rather than deleting them in a later commit.
        self._released_jobs = []
        self._dead = []

    # --- one iteration -----------------------------------------------------------------

    def step(self) -> None:
        """Read a batch of events, apply them, handle timers, commit."""
        entries = self.broker.events.read(self.cursor, _EVENTS_PER_READ, self._block_ms())
        now = time.time()
        touched: set[str] = set()
        for entry_id, event in entries:
            self.cursor = entry_id
            if isinstance(event, DeadEvent):
                self.log.error("malformed event dead-lettered", entry=entry_id,
                               error=event.reason)
                self._dead.append(event)
            else:
                touched |= self._apply_event(entry_id, event, now)
        if time.monotonic() >= self._reap_at:
            touched |= self._reap(now)
            self._reap_at = time.monotonic() + self.reap_interval_s
        for run in self.runs.values():
            due = run.scheduler.release_due(now)
            if due:
                run.dispatch.extend(due)
                touched.add(run.session_id)
            if run.scheduler.parked:
                expired = run.scheduler.expire_waits(now)
                if expired.checkpoint is not None:
                    run.take(expired)
                    touched.add(run.session_id)
        self._auto_checkpoints(touched)
        if touched or entries:
            self._commit(touched)

    def _block_ms(self) -> int:
        waits = [_MAX_BLOCK_MS / 1000, max(0.0, self._renew_at - time.monotonic()),
                 max(0.0, self._reap_at - time.monotonic())]
        for run in self.runs.values():
            due = run.scheduler.next_due()
            if due is not None:
                waits.append(max(0.0, due - time.time()))
        return max(1, int(min(waits) * 1000))

    def _apply_event(self, entry_id: str, event: Event, now: float) -> set[str]:
        sid = event.session_id
        if event.kind in (SUBMIT, RESUME):
            try:
                self._load(sid, start=True)
            except GraflowError as exc:
                self._fail_unloadable(sid, exc)
                return set()
            return {sid}
        run = self.runs.get(sid)
        if run is None:
            self.log.info("event for inactive run dropped", session=sid, kind=event.kind)
            return set()
        if event.kind == CANCEL:
            run.take(run.scheduler.cancel(event.error or "cancelled by client"))
            return {sid}
        if event.kind == ANSWER:
            run.take(run.scheduler.wake(event.wake_key))
            return {sid}
        try:
            decision = run.on_task_event(event, now)
        except (GraflowError, KeyError, TypeError, ValueError) as exc:
            # A report we cannot apply fails its run; the coordinator and every other
            # run go on (and the cursor moves past it, so no coordinator trips on it).
            self.log.error("unusable report fails its run", session=sid, entry=entry_id,
                           task=event.task_id, error=f"{type(exc).__name__}: {exc}")
            run.take(run.scheduler.abort(GraflowError(
                f"report of task {event.task_id!r} could not be applied: {exc}")))
            return {sid}
        if decision.stale:
            self.log.info("stale report dropped", session=sid, task=event.task_id,
                          token=event.token, worker=event.worker, kind=event.kind)
            if self.metrics is not None:
                self.metrics.stale_reports.inc()
        elif event.kind == PARK and self.broker.feedback.response(event.wake_key) is not None:
            # Answered before the task had parked: wake it at once.
            run.take(run.scheduler.wake(event.wake_key))
        return {sid}

    def _fail_unloadable(self, session_id: str, exc: GraflowError) -> None:
        """A run whose stored state cannot be loaded ends as failed (so waiters return)."""
        self.log.error("cannot load run", session=session_id, error=str(exc))
        self.broker.runs.fail(session_id, exc)

    def _load(self, session_id: str, *, start: bool) -> None:
        record, shape, frontier = self.broker.runs.load(session_id)
        if start and record.status is not RunStatus.SUBMITTED:
            if session_id in self.runs or record.status.finished:
                return  # a duplicate submission event, or one of a run already over
            start = False  # picked up before this takeover: continue it as it stands
        scheduler_epoch = f"{self.epoch}x{uuid.uuid4().hex[:12]}"
        keys = self.keyspace.run(session_id)
        if start and not record.resume:
            scheduler = Scheduler(shape, session_id, max_steps=record.max_steps,
                                  crash_limit=record.crash_limit, epoch=scheduler_epoch)
            run = RunState(record, scheduler, keys, started=True)
            try:
                decision = scheduler.start([record.start_node] if record.start_node else None)
            except GraflowError as exc:
                decision = scheduler.abort(exc)
            run.take(decision)
        else:
            scheduler = Scheduler.restore(shape, frontier, max_steps=record.max_steps,
                                          crash_limit=record.crash_limit, epoch=scheduler_epoch)
            run = RunState(record, scheduler, keys, started=start)
            if start:  # resumed from a checkpoint: fence off the old incarnation
                run.take(scheduler.resume(reissue=True))
            else:  # takeover: tasks in flight keep running, retries stay delayed
                decision = scheduler.resume()
                decision.dispatch = []
                run.take(decision)
        self.runs[session_id] = run

    # --- leases ----------------------------------------------------------------------

    def _reap(self, now: float) -> set[str]:
        """Re-dispatch the tasks of jobs whose lease expired (their worker is gone)."""
        self._refresh_worker_count()
        # A restart that the client's own retries hid still starved every heartbeat:
        # notice it by the server's run id.
        run_id = self.broker.leader.server_run_id()
        if self._redis_run_id is not None and run_id != self._redis_run_id:
            self._leases_suspect = True
        self._redis_run_id = run_id
        if self._leases_suspect:
            extended = self.broker.reaper.grant_grace(self.id, DEFAULT_LEASE_S)
            if extended is None:
                raise NotLeaderError("lease grace refused")
            self._leases_suspect = False
            self.log.info("leases renewed after a redis outage", leases=extended)
        reaped = self.broker.reaper.reap(self.id)
        if reaped is None:
            raise NotLeaderError("reap refused")
        touched: set[str] = set()
        for job in reaped:
            self._released_jobs.append(job.job_id)
            if job.error:
                self.log.error("unreadable jobmap entry dropped", job=job.job_id,
                               error=job.error)
                continue
            run = self.runs.get(job.session_id or "")
            if run is None:
                continue
            for token in job.tokens:
                event = Event(LOST, run.session_id, token=token, worker=job.owner,
                              error=f"lease expired on worker {job.owner or '?'}")
                if run.on_task_event(event, now).dispatch:
                    self.log.warning("task re-dispatched after lease expiry",
                                     session=run.session_id, token=token, worker=job.owner)
                    if self.metrics is not None:
                        self.metrics.redispatched.inc()
            touched.add(run.session_id)
        return touched

    def _refresh_worker_count(self) -> None:
        if time.monotonic() < self._workers_at:
            return
        self._live_workers = max(1, self.broker.workers.live_count())
        self._workers_at = time.monotonic() + _WORKER_COUNT_REFRESH_S

    # --- commit ----------------------------------------------------------------------

    def _commit(self, touched: set[str]) -> None:
        commit: Commit = self.broker.commit()
        for sid in touched:
            run = self.runs.get(sid)
            if run is not None:
                if run.checkpoints:
                    self._snapshot_channel(run)
                run.write(commit, self.max_batch, self._live_workers)
        commit.released_jobs(self._released_jobs)
        for dead in self._dead:
            commit.dead_event(dead, self.broker.events)
        commit.cursor(self.cursor)
        self._released_jobs = []
        self._dead = []
        failed = self.broker.apply(commit, self.id, self.commit_seq)
        self.commit_seq += 1
        if self.metrics is not None:
            self.metrics.commits.inc()
        if failed:
            self.log.error("commands failed inside a commit", failed=failed)
        for sid in touched:
            run = self.runs.get(sid)
            if run is not None:
                self._after_commit(run)

    def _snapshot_channel(self, run: RunState) -> None:
        """Read the channel for this commit's checkpoints *before* the commit enqueues
        the successors, which could otherwise write to it first; the results this
        commit writes are added from the reports."""
        values = {**self.broker.runs.channel_values(run.session_id), **run.results}
        for pending in run.checkpoints:
            if pending.channel_values is None:
                pending.channel_values = values

    def _after_commit(self, run: RunState) -> None:
        for pending in run.checkpoints:
            try:
                path, _meta = checkpoint_run(self.broker, run.record, pending.frontier,
                                             pending.request, self.checkpoint_dir,
                                             pending.channel_values)
                self.broker.runs.note_checkpoint(run.session_id, path=path)
                self.log.info("checkpoint written", session=run.session_id, path=path,
                              steps=pending.frontier.steps)
                waiting_for = pending.request.metadata.get("waiting_for") or []
                if waiting_for:
                    self.feedback.note_timeouts(waiting_for, path)
            except GraflowError as exc:
                self.broker.runs.note_checkpoint(run.session_id, error=str(exc))
                self.log.error("checkpoint failed", session=run.session_id, error=str(exc))
        run.checkpoints = []
        if run.end is not None:
            # Off the loop: the channel's keys are found by SCAN, whose cost grows with
            # the whole keyspace, not with this run.
            threading.Thread(target=self._expire_run, args=(run,), daemon=True,
                             name="gf-expire").start()
            del self.runs[run.session_id]
            self._auto_ckpt.pop(run.session_id, None)
            self.log.info("run finished", session=run.session_id,
                          status=run.end.status.value,
                          error=str(run.end.error) if run.end.error else None,
                          steps=run.scheduler.steps)

    def _expire_run(self, run: RunState) -> None:
        """Finished runs keep their data for ``run_ttl_s``, then Redis drops it."""
        try:
            self.broker.runs.expire(run.record, self.run_ttl_s)
        except TRANSIENT_ERRORS as exc:  # the data stays; only its clean-up is missed
            self.log.warning("could not set the TTL of a finished run", session=run.session_id,
                             error=str(exc))

    def _auto_checkpoints(self, touched: set[str]) -> None:
        if not (self.checkpoint_every_steps or self.checkpoint_every_s):
            return
        now = time.monotonic()
        for sid in touched:
            run = self.runs.get(sid)
            if run is None or run.end is not None:
                continue
            last_steps, last_at = self._auto_ckpt.setdefault(sid, (0, now))
            steps = run.scheduler.steps
            every = self.checkpoint_every_steps
            due_steps = every and steps - last_steps >= every
            due_time = self.checkpoint_every_s and now - last_at >= self.checkpoint_every_s
            if (due_steps or due_time) and not run.checkpoints:
                run.checkpoints.append(PendingCheckpoint(
                    CheckpointRequest(None, {"automatic": True}), run.scheduler.snapshot()))
                self._auto_ckpt[sid] = (steps, now)


__all__ = ["Coordinator", "NotLeaderError", "StaleStateError"]
