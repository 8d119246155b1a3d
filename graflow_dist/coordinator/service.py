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
from redis.exceptions import ResponseError

from graflow_dist.broker import Broker, Commit, RunRecord
from graflow_dist.broker.connection import TRANSIENT_ERRORS, is_wrong_type, writes_refused
from graflow_dist.broker.events import DeadEvent
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.server import eviction_risk
from graflow_dist.checkpoint.io import DEFAULT_CHECKPOINT_DIR
from graflow_dist.coordinator.checkpoints import (
    AutoCheckpoints,
    write_requested,
)
from graflow_dist.coordinator.feedback import FeedbackTimeouts
from graflow_dist.coordinator.leases import LeaseWatch
from graflow_dist.coordinator.recovery import Recovery
from graflow_dist.coordinator.runs import DEFAULT_MAX_BATCH, RunState
from graflow_dist.errors import (
    ConfigurationError,
    GraflowError,
    NotLeaderError,
    PermissionDeniedError,
    StaleStateError,
    UnknownSessionError,
    WireError,
    WrongTypeError,
)
from graflow_dist.limits import DEFAULT_MAX_MESSAGE_BYTES
from graflow_dist.observability.outage import OutageLog
from graflow_dist.scheduler.continuation import DEFAULT_MAX_CONTINUATION
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.messages import (
    ANSWER,
    CANCEL,
    LOST,
    MAX_CHAIN,
    PARK,
    RESUME,
    SUBMIT,
    Event,
)

DEFAULT_LEADER_LEASE_S = 5.0
DEFAULT_REAP_INTERVAL_S = 0.5
DEFAULT_RUN_TTL_S = 7 * 24 * 3600
_MAX_BLOCK_MS = 200
_EVENTS_PER_READ = 2000
_COMMIT_BUDGET_BYTES = 64 * 1024 * 1024
# After Redis refused a command for a reason other than an outage (an ACL, a full
# memory): wait this long before trying again.
_REFUSED_BACKOFF_S = 2.0
# Leader lease renewals further apart than this share of it are said (at most this often).
_SLOW_RENEWAL_SHARE = 2 / 3
_SLOW_RENEWAL_WARN_EVERY_S = 300.0
# What loading a run may raise on data someone else wrote (the run fails, not us).
_UNLOADABLE = (GraflowError, KeyError, TypeError, ValueError)
_LOADS_PER_ROUND_TRIP = 100
# Housekeeping, at takeover and then this often: ended runs whose data never got its
# TTL (the leader died between the commit that ended them and `_expire`, or Redis
# failed that call), this many at a time; index entries whose data expired, this many
# per index and script call (a few ms of Redis), up to this many calls (2,000 runs/s:
# more than end on a busy cluster meanwhile).
_HOUSEKEEPING_S = 10.0
_EXPIRY_SWEEP_RUNS = 100
_PRUNED_PER_INDEX = 5000
_PRUNE_PAGES = 4
# Workers and coordinators silent this long are forgotten (the console lists them as
# lost until then).
FORGET_LOST_AFTER_S = 24 * 3600.0

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
    max_message_bytes:
        Events over this size are dead-lettered unread.
    max_continuation:
        Steps of a chain a worker may run at once after a task, from one job (local
        continuation; 0 turns it off).
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
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_continuation: int = DEFAULT_MAX_CONTINUATION,
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
        self._housekeeping_at = 0.0  # see `_housekeeping`
        self._eviction_risk: str | None = None  # what was last said of it
        self._renewed_at = 0.0  # the last renewal of the leader lease (see `_renewed`)
        self._slow_warned_at = 0.0
        self.auto_checkpoints = AutoCheckpoints(checkpoint_every_steps, checkpoint_every_s)
        self._outage = OutageLog(log, "coordinator")
        self._released_jobs: list[str] = []  # reaped jobs whose lease records go
        self._dead: list[DeadEvent] = []  # unreadable events, kept aside by the commit
        self._loaded: dict[str, Any] = {}  # runs read ahead for this step's submissions
        self.feedback = FeedbackTimeouts(self.broker)
        self.max_message_bytes = max_message_bytes
        if not 0 <= max_continuation <= MAX_CHAIN:
            raise ConfigurationError(f"max_continuation must be 0..{MAX_CHAIN}, "
                                     f"not {max_continuation}")
        self.max_continuation = max_continuation
        self.ready = threading.Event()
        self.log = log.bind(coordinator=self.id)
        self.recovery = Recovery(self.broker, self.log)
        self.leases = LeaseWatch(self.broker, self.log)

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
                    self._outage_of_redis(exc, "redis unavailable", stop)
                except NotLeaderError:
                    self._drop_leadership("lease lost")
                except StaleStateError as exc:
                    self._drop_leadership(str(exc))
                except (WrongTypeError, PermissionDeniedError, ResponseError) as exc:
                    # Nothing of the failed step was written: repair what can be, then
                    # reload and apply its events again.
                    if writes_refused(exc):  # Redis full, read-only: as for an outage
                        self._outage_of_redis(exc, "redis refuses writes", stop)
                    elif self._refused(exc):
                        stop.wait(_REFUSED_BACKOFF_S)
        finally:
            self._release()

    def _renewed(self, now: float) -> None:
        """The leader lease was renewed at ``now``. Renewals further apart than most of
        the lease lose the lead sooner or later (a distant Redis, a slow machine): say
        so, at most every `_SLOW_RENEWAL_WARN_EVERY_S`."""
        gap, self._renewed_at = now - self._renewed_at, now
        self._renew_at = now + self.leader_lease_s / 3
        if gap > self.leader_lease_s * _SLOW_RENEWAL_SHARE and now >= self._slow_warned_at:
            self._slow_warned_at = now + _SLOW_RENEWAL_WARN_EVERY_S
            self.log.warning("the leader lease was renewed late: the lead may be lost",
                             renewed_after_s=round(gap, 2),
                             leader_lease_s=self.leader_lease_s,
                             fix="raise --leader-lease-s (a distant Redis: see "
                                 "docs/operations.md)")

    def _outage_of_redis(self, exc: Exception, why: str, stop: threading.Event) -> None:
        """Redis is gone or takes no writes: wait, then reload; the leases workers could
        not renew meanwhile get a grace period (`LeaseWatch.outage`)."""
        self._outage.failed(exc)
        self.leases.outage()
        self._drop_leadership(why)
        stop.wait(self._outage.backoff_s())

    def _refused(self, exc: Exception) -> bool:
        """Redis refused a step for a reason other than an outage; True to back off."""
        if is_wrong_type(exc):
            exc = WrongTypeError(str(exc), {})
        if isinstance(exc, WrongTypeError):
            moved = self.recovery.quarantine(exc, list(self.runs))
            self._drop_leadership("keys of the wrong type quarantined; reloading")
            return moved == 0  # nothing to repair here: do not spin
        self.log.error("redis refused a command; reloading", error=str(exc))
        self._drop_leadership("redis refused a command")
        return True

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
        if self.broker.leader.note:
            self.log.error("leader lease repaired", note=self.broker.leader.note)
        if epoch == 0:
            self.leases.standby()
            if self.is_leader:
                self._drop_leadership("lease taken by another coordinator")
            self.ready.clear()
            return False
        if not self.is_leader or epoch != self.epoch:
            self._renewed_at, self._renew_at = now, now + self.leader_lease_s / 3
            self.epoch = epoch
            self._take_over()
        else:
            self._renewed(now)
        return True

    def _take_over(self) -> None:
        """Become leader: reload every active run's frontier from Redis."""
        self.runs.clear()
        state = self.recovery.committed_state(self.id)
        self.cursor, self.commit_seq = state.cursor, state.commits
        sessions = self.recovery.active_sessions()
        statuses = self.broker.runs.statuses(sessions)
        damaged = {sid: damage for sid in sessions
                   if (damage := self.recovery.damage_of(sid)) is not None}
        # A run still `submitted` has its submission event after the cursor: it loads
        # then. The others load a hundred per round trip.
        ids = [sid for sid in sessions
               if sid in damaged or statuses.get(sid) is not RunStatus.SUBMITTED]
        for start in range(0, len(ids), _LOADS_PER_ROUND_TRIP):
            chunk = ids[start:start + _LOADS_PER_ROUND_TRIP]
            self._loaded = self.broker.runs.load_many([s for s in chunk if s not in damaged])
            for session_id in chunk:
                try:
                    if session_id in damaged:
                        raise damaged[session_id]
                    self._load(session_id, start=False)
                except _UNLOADABLE as exc:
                    self.recovery.fail_run(session_id, exc)
        self._loaded = {}
        self.recovery.forget_damage()
        self._housekeeping_at = 0.0
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
        entries = self.broker.events.read(self.cursor, _EVENTS_PER_READ, self._block_ms(),
                                          self.max_message_bytes)
        now = time.time()
        touched: set[str] = set()
        self._loaded = self._load_submitted([
            e.event for e in entries if isinstance(e.event, Event)
            and e.event.kind in (SUBMIT, RESUME) and e.event.session_id not in self.runs])
        size = 0
        for entry in entries:
            # One commit carries the results of its events: keep it well under what
            # Redis takes in one script call (the rest is read again next step).
            if size and size + entry.size > _COMMIT_BUDGET_BYTES:
                break
            size += entry.size
            entry_id, event = entry.entry_id, entry.event
            self.cursor = entry_id
            if isinstance(event, DeadEvent):
                self.log.error("malformed event dead-lettered", entry=entry_id,
                               error=event.reason)
                self._dead.append(event)
            else:
                touched |= self._apply_event(entry_id, event, now)
                if event.kind in (SUBMIT, RESUME):
                    self._keep_lease()  # loading a large run takes a while
        self._loaded = {}
        if time.monotonic() >= self._reap_at:
            self._keep_lease()  # each of these takes a few round trips: on a distant
            touched |= self._reap(now)  # Redis, seconds
            self._reap_at = time.monotonic() + self.reap_interval_s
        if time.monotonic() >= self._housekeeping_at:
            self._keep_lease()
            self._housekeeping()
            # no more often than data can expire (a TTL of seconds: tests)
            self._housekeeping_at = time.monotonic() + min(_HOUSEKEEPING_S,
                                                           max(1.0, self.run_ttl_s))
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
        self.auto_checkpoints.request(self.runs, touched)
        if touched or entries:
            self._keep_lease()
            self._commit(touched)

    def _load_submitted(self, events: list[Event]) -> dict[str, Any]:
        """The runs these submission events hand over: a small run its client started
        as its (last) event carries it, once Redis confirms it is still that run; every
        other one read, in one round trip."""
        carried = {e.session_id: e for e in events if e.started}
        loaded: dict[str, Any] = {}
        for sid, run in self.broker.runs.started(list(carried.values())).items():
            if isinstance(run, WireError):  # what Redis holds is the truth: read that
                self.log.warning("submission event unusable, run read from redis",
                                 session=sid, error=str(run))
            elif run is not None:
                loaded[sid] = run
        loaded.update(self.broker.runs.load_many(list(dict.fromkeys(
            e.session_id for e in events if e.session_id not in loaded))))
        return loaded

    def _keep_lease(self) -> None:
        """Renew the leader lease if due, mid-step: time spent on a large run is no
        reason to lose it. A lease that lapsed meanwhile is not this step's to commit on."""
        if time.monotonic() < self._renew_at:
            return
        if self.broker.leader.acquire(self.id, self.leader_lease_s) != self.epoch:
            raise NotLeaderError("the leader lease lapsed during a step")
        self._renewed(time.monotonic())

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
            except _UNLOADABLE as exc:
                self.recovery.fail_run(sid, exc)
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
        if decision.continued is not None and self.metrics is not None:
            self.metrics.continued.inc()
        elif decision.refused:
            self.log.info("continuation refused: successor dispatched", session=sid,
                          task=event.task_id, successor=event.continuation.task_id
                          if event.continuation else None, reason=decision.refused)
            if self.metrics is not None:
                self.metrics.continuations_refused.inc()
        if decision.stale:
            self.log.info("stale report dropped", session=sid, task=event.task_id,
                          token=event.token, worker=event.worker, kind=event.kind)
            if self.metrics is not None:
                self.metrics.stale_reports.inc()
        elif event.kind == PARK and self.broker.feedback.response(event.wake_key) is not None:
            # Answered before the task had parked: wake it at once.
            run.take(run.scheduler.wake(event.wake_key))
        return {sid}

    def _load(self, session_id: str, *, start: bool) -> None:
        loaded = self._loaded.pop(session_id, None)
        if isinstance(loaded, GraflowError):
            raise loaded
        record, shape, frontier = loaded or self.broker.runs.load(session_id)
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
        run.max_continuation = self.max_continuation
        self.runs[session_id] = run

    # --- leases ----------------------------------------------------------------------

    def _reap(self, now: float) -> set[str]:
        """Re-dispatch the tasks of jobs whose lease expired (their worker is gone)."""
        touched: set[str] = set()
        for job in self.leases.expired(self.id):
            self._released_jobs.append(job.job_id)
            if job.error or job.session_id is None:
                self.log.error("lease of an unknown or unreadable job dropped",
                               job=job.job_id[:200], error=job.error or "no jobmap entry")
                continue
            run = self.runs.get(job.session_id)
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

    # --- commit ----------------------------------------------------------------------

    def _commit(self, touched: set[str]) -> None:
        commit: Commit = self.broker.commit()
        runs = [run for sid in touched if (run := self.runs.get(sid)) is not None]
        # Jobs are sized for all the work in flight (what became ready now included),
        # not only this run's: while the workers have a backlog, a run's few tasks in
        # one job cost no parallelism, save a job each, and a job that holds a whole
        # group lets its worker run the group's join at once (local continuation).
        in_flight = sum(len(run.scheduler.inflight) for run in self.runs.values())
        for run in runs:
            self._write_checkpoints(run)
            run.write(commit, self.max_batch, self.leases.live_workers, in_flight)
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
        ended: list[RunState] = []
        for sid in touched:
            run = self.runs.get(sid)
            if run is not None and self._after_commit(run):
                ended.append(run)
        self._expire(ended)

    def _write_checkpoints(self, run: RunState) -> None:
        """Write the checkpoints the run asked for (before the commit that notes them).
        Checkpoints in one step may take longer to write than the leader lease lasts:
        it is kept before each, or the commit would be refused, again after every
        reload."""
        for request, path in write_requested(self.broker, run, self.checkpoint_dir, self.log,
                                             before_each=self._keep_lease):
            waiting_for = request.metadata.get("waiting_for") or []
            if waiting_for:
                self.feedback.note_timeouts(waiting_for, path)

    def _after_commit(self, run: RunState) -> bool:
        """Drop the run once it is over; True if it was."""
        if run.end is None:
            return False
        del self.runs[run.session_id]
        self.auto_checkpoints.forget(run.session_id)
        self.log.info("run finished", session=run.session_id, status=run.end.status.value,
                      error=str(run.end.error) if run.end.error else None,
                      steps=run.scheduler.steps)
        return True

    def _housekeeping(self) -> None:
        """What keeps Redis from growing with every run and worker there ever was."""
        self._sweep_expiring()
        # Runs (and their feedback requests) submitted before this may have expired.
        before = time.time() - self.run_ttl_s
        for _page in range(_PRUNE_PAGES):
            self._keep_lease()
            if not self.broker.indexes.prune(before, _PRUNED_PER_INDEX)[1]:
                break
        self._keep_lease()
        lost = self.broker.workers.forget_lost(FORGET_LOST_AFTER_S)
        if lost:
            self.log.info("lost workers forgotten", workers=lost[:20], count=len(lost))
        self.broker.leader.forget_silent(FORGET_LOST_AFTER_S)
        risk = eviction_risk(self.broker.client)
        if risk != self._eviction_risk:  # said once, and again when it changes
            if risk is not None:
                self.log.warning("redis may drop keys", reason=risk)
            self._eviction_risk = risk

    def _sweep_expiring(self) -> None:
        """Give the data of ended runs that missed `_expire` its TTL (never a run this
        coordinator drives: it was submitted again)."""
        sessions = [sid for sid in self.broker.runs.expiring(_EXPIRY_SWEEP_RUNS)
                    if sid not in self.runs]
        if not sessions:
            return
        ended, forget = [], []
        for sid, loaded in self.broker.runs.load_many(sessions).items():
            if isinstance(loaded, UnknownSessionError):
                forget.append(sid)  # gone already
            elif isinstance(loaded, GraflowError):
                record = self._readable_end(sid, loaded)
                if record is not None:  # its graph unreadable: only its own keys
                    ended.append((record, []))
                else:
                    forget.append(sid)
            elif not loaded[0].status.finished:
                forget.append(sid)  # live again: its end lists it again
            else:
                ended.append((loaded[0], loaded[1].code_blobs()))
        self.broker.runs.not_expiring(forget)
        if ended:
            self.broker.runs.expire_many(ended, self.run_ttl_s)
            self.log.info("data of ended runs given its TTL late", runs=len(ended))

    def _readable_end(self, session_id: str, error: GraflowError) -> RunRecord | None:
        """The record of an ended run whose data does not load as a whole (``error``):
        its own keys still get their TTL. None if the record does not read either (its
        data then keeps no TTL) or the run is going again."""
        try:
            record = self.broker.runs.record(session_id)
        except GraflowError as exc:
            self.log.error("ended run unreadable: its data keeps no TTL", session=session_id,
                           error=str(exc))
            return None
        if not record.status.finished:
            return None
        self.log.warning("ended run partly unreadable: its data gets its TTL all the same",
                         session=session_id, error=str(error))
        return record

    def _expire(self, ended: list[RunState]) -> None:
        """Finished runs keep their data for ``run_ttl_s``, then Redis drops it (every
        run that ended in this step, in one round trip: no SCAN, no thread)."""
        if not ended:
            return
        try:
            self.broker.runs.expire_many(
                [(run.record, run.scheduler.shape.code_blobs()) for run in ended],
                self.run_ttl_s)
        except (*TRANSIENT_ERRORS, ResponseError) as exc:  # only the clean-up is missed
            self.log.warning("could not set the TTL of finished runs",
                             sessions=[run.session_id for run in ended], error=str(exc))


__all__ = ["Coordinator", "NotLeaderError", "StaleStateError"]
