"""The pure scheduler: a state machine from task events to dispatch decisions.

No I/O, no threads, no clocks (drivers pass ``now``). The in-process engine and the
distributed coordinator both drive it, so both write identical checkpoints.
"""

from __future__ import annotations

import uuid
from collections import Counter

from graflow_dist.errors import (
    CycleLimitExceededError,
    DeadLetterError,
    DeadlockError,
    MaxStepsExceededError,
    ParallelGroupError,
    RetryLimitExceededError,
    TaskExecutionError,
    TaskTimeoutError,
    UnknownTaskError,
    WorkflowCancelledError,
)
from graflow_dist.scheduler.continuation import refusal
from graflow_dist.scheduler.events import (
    CheckpointRequest,
    Decision,
    RunEnd,
    RunStatus,
    TaskOutcome,
)
from graflow_dist.scheduler.frontier import FrontierSnapshot, ParkedTask
from graflow_dist.scheduler.groups import GroupRun, group_satisfied
from graflow_dist.scheduler.journal import Journal
from graflow_dist.scheduler.specs import GraphShape, TaskSpec

DEFAULT_MAX_STEPS = 10_000
DEFAULT_CRASH_LIMIT = 3


class Scheduler:
    """Holds the frontier of one run and turns events into decisions.

    Parameters
    ----------
    shape:
        The graph structure; dynamic tasks are added to it as they appear.
    session_id:
        The run's id; goes into snapshots.
    max_steps:
        The run ends with ``MAX_STEPS`` once this many task executions finished
        while work remained.
    crash_limit:
        Lost attempts (dead workers) of one task before it is dead-lettered.
    epoch:
        Prefix of the dispatch tokens this instance issues; a fresh one per instance
        keeps tokens unique across restarts and resumes (fencing relies on it).
    """

    def __init__(
        self,
        shape: GraphShape,
        session_id: str,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        crash_limit: int = DEFAULT_CRASH_LIMIT,
        epoch: str | None = None,
    ) -> None:
        self.shape = shape
        self.session_id = session_id
        self.max_steps = max_steps
        self.crash_limit = crash_limit
        self.epoch = epoch or uuid.uuid4().hex[:8]
        self.steps = 0
        self.completed: dict[str, None] = {}
        self.released: set[str] = set()
        self.inflight: dict[str, TaskSpec] = {}
        self.delayed: dict[str, TaskSpec] = {}
        self.cycle_counts: dict[str, int] = {}
        self.groups: dict[str, GroupRun] = {}
        self.active: set[str] = set()
        self.crash_workers: dict[str, list[str]] = {}
        self.parked: dict[str, tuple[TaskSpec, ParkedTask]] = {}  # wake key -> waiting task
        self.dispatch_seq = 0
        self.end: RunEnd | None = None
        self._pending_ids: Counter[str] = Counter()
        self.journal = Journal()

    # --- construction ---------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        shape: GraphShape,
        snapshot: FrontierSnapshot,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        crash_limit: int = DEFAULT_CRASH_LIMIT,
        epoch: str | None = None,
    ) -> Scheduler:
        """A scheduler continuing from ``snapshot``; its pending specs keep their tokens
        (dispatched ones are in flight, retries that never got a job stay delayed until
        `release_due`)."""
        sched = cls(
            shape, snapshot.session_id, max_steps=max_steps, crash_limit=crash_limit, epoch=epoch
        )
        sched.steps = snapshot.steps
        sched.completed = dict.fromkeys(snapshot.completed_tasks)
        sched.released = set(snapshot.released)
        sched.cycle_counts = dict(snapshot.cycle_counts)
        sched.groups = {g: GroupRun.of(p) for g, p in snapshot.groups.items()}
        sched.active = set(snapshot.active)
        sched.crash_workers = {t: list(w) for t, w in snapshot.crash_workers.items()}
        sched.dispatch_seq = snapshot.dispatch_seq
        parked_by_token = {p.token: (key, p) for key, p in snapshot.parked.items()}
        for spec in snapshot.pending_tasks:
            if spec.task_id not in shape.nodes:
                raise UnknownTaskError(spec.task_id, "the restored frontier")
            sched._pending_ids[spec.task_id] += 1
            if spec.token in parked_by_token:
                key, parked = parked_by_token[spec.token]
                sched.parked[key] = (spec, ParkedTask(**parked.to_dict()))
                continue
            # A spec keeps its not_before until it is released (then it is journaled
            # with 0): one with not_before set never got a job, even if it is due now.
            bucket = sched.delayed if spec.not_before > 0 else sched.inflight
            bucket[spec.token] = spec
        sched.journal = Journal()
        return sched

    def snapshot(self) -> FrontierSnapshot:
        pending = sorted(self.pending, key=self.seq_of)
        return FrontierSnapshot(
            session_id=self.session_id,
            steps=self.steps,
            completed_tasks=list(self.completed),
            released=sorted(self.released),
            pending_tasks=pending,
            cycle_counts=dict(self.cycle_counts),
            groups={g: p.progress() for g, p in self.groups.items()},
            active=sorted(self.active),
            dispatch_seq=self.dispatch_seq,
            crash_workers={t: list(w) for t, w in self.crash_workers.items()},
            parked={k: ParkedTask(**p.to_dict()) for k, (_s, p) in self.parked.items()},
        )

    # --- events ---------------------------------------------------------------------

    def start(self, start_nodes: list[str] | None = None) -> Decision:
        """Begin the run at ``start_nodes`` (default: every node without predecessors)."""
        roots = self.shape.roots() if start_nodes is None else list(start_nodes)
        for node in roots:
            if node not in self.shape.nodes:
                raise UnknownTaskError(node, "the workflow graph (start node)")
        decision = Decision()
        if start_nodes is None and not roots and self.shape.nodes:
            # Every node waits on a predecessor: a `>>` cycle with no way in.
            cyclic = [n for n in sorted(self.shape.nodes) if self.shape.on_cycle(n)]
            self._finish(decision, RunStatus.FAILED, DeadlockError(cyclic))
            return decision
        for node in roots:
            self._activate(node)
        for node in roots:
            self._schedule(node, decision)
        self._maybe_finish(decision)
        return decision

    def resume(self, *, reissue: bool = False) -> Decision:
        """After `restore`: the specs to (re)dispatch now; ends the run at once when
        the restored frontier has nothing left to do. With ``reissue`` every pending
        spec gets a new token, fencing off workers of an earlier incarnation, and a fresh
        crash budget (a resume follows a fix, e.g. of a dead-lettered task)."""
        decision = Decision()
        if reissue:
            # Waiting tasks run again: the answer may have come while the run was away
            # (they find it), else they wait anew.
            for key in list(self.parked):
                spec, _parked = self.parked.pop(key)
                self.journal.unpark(key)
                self.inflight[spec.token] = spec
            for bucket in (self.inflight, self.delayed):
                for token in list(bucket):
                    spec = bucket.pop(token)
                    self.journal.drop(token)
                    again = spec.evolve(token=self._token(), crashes=0)
                    bucket[again.token] = again
                    self.journal.put(again)
        decision.dispatch = list(self.inflight.values())
        self._maybe_finish(decision)
        return decision

    def complete(self, token: str, outcome: TaskOutcome,
                 continuation: TaskSpec | None = None) -> Decision:
        """A task run returned normally; ``outcome`` says what it asked for.
        ``continuation`` is the spec its worker proposes for the successor it runs at
        once: adopted (``decision.continued``, pending under the worker's token, not
        dispatched) only if this completion makes exactly that successor ready, else
        ``decision.refused`` says why and the successor is dispatched as usual."""
        decision = Decision()
        spec = None if self.end is not None else self._take(token)
        if spec is None:  # fenced, duplicate, or after the end: the frontier is final
            decision.stale = True
            return decision
        node = spec.task_id
        if outcome.cancel is not None:
            self._finish(
                decision, RunStatus.CANCELLED, WorkflowCancelledError(outcome.cancel, node)
            )
            return decision
        if outcome.iterate and spec.cycle + 1 >= self.shape.node(node).max_cycles:
            self.steps += 1
            error = CycleLimitExceededError(node, self.shape.node(node).max_cycles)
            self._finish(decision, RunStatus.FAILED, error)
            return decision

        self.steps += 1
        self._mark_completed(node, decision)
        self._set_cycles(node, spec.cycle + 1)
        for dyn in outcome.next_tasks:
            for new in dyn.new_shapes():
                if new.node_id not in self.shape.nodes:
                    self.shape.add(new)
                    self.journal.new_nodes.append(new.node_id)
            if dyn.task_id not in self.shape.nodes:
                self._finish(decision, RunStatus.FAILED, UnknownTaskError(
                    dyn.task_id, f"the graph (next_task called by {node!r})"))
                return decision

        skip_successors = outcome.iterate or outcome.terminate is not None
        if outcome.terminate is None:
            if outcome.iterate:
                self._enqueue(spec.evolve(token=self._token(), cycle=spec.cycle + 1,
                                          attempt=1, crashes=0), decision)
            for dyn in outcome.next_tasks:
                if dyn.goto or dyn.shape is None:
                    skip_successors = True  # a jump, or an existing node (Graflow's auto-goto)
                self._activate(dyn.task_id)
                self._schedule(dyn.task_id, decision, force=True)
        if spec.group is not None and not outcome.iterate:
            self._member_done(spec.group, node, None, decision)
        if not skip_successors:
            self._release(node, decision)
        if outcome.checkpoint is not None:
            decision.checkpoint = outcome.checkpoint
        if outcome.terminate is not None:
            self._drop_pending()  # the run is over, also for a checkpoint taken now
            self._finish(decision, RunStatus.TERMINATED, None)
        else:
            self._maybe_finish(decision)
        if continuation is not None:
            self._adopt(spec, outcome, continuation, decision)
        return decision

    def _adopt(self, done: TaskSpec, outcome: TaskOutcome, proposal: TaskSpec,
               decision: Decision) -> None:
        """Put the worker's proposed spec in place of the one just made ready."""
        token = proposal.token
        taken = token in self.inflight or token in self.delayed or any(
            s.token == token for s, _p in self.parked.values())
        decision.refused = refusal(self.shape, done, outcome, decision, proposal, taken)
        if decision.refused:
            return
        ready = decision.dispatch.pop()
        del self.inflight[ready.token]
        self.journal.drop(ready.token)
        adopted = ready.evolve(token=proposal.token)
        self.inflight[adopted.token] = adopted
        self.journal.put(adopted)
        decision.continued = adopted

    def fail(
        self,
        token: str,
        cause: str,
        *,
        now: float = 0.0,
        error: Exception | None = None,
        retryable: bool = True,
    ) -> Decision:
        """A task run raised. It is retried per its policy unless ``retryable`` is False;
        ``error`` replaces the default `TaskExecutionError` as the run's error."""
        decision = Decision()
        spec = None if self.end is not None else self._take(token)
        if spec is None:  # fenced, duplicate, or after the end: the frontier is final
            decision.stale = True
            return decision
        self.steps += 1
        retry = self.shape.node(spec.task_id).retry
        retries_so_far = spec.attempt - 1
        if retryable and retries_so_far < retry.max_retries:
            new_token = self._token()
            delay = retry.delay_before(retries_so_far, new_token)
            again = spec.evolve(token=new_token, attempt=spec.attempt + 1, not_before=now + delay)
            if delay > 0:
                self.delayed[new_token] = again
                self._pending_ids[again.task_id] += 1
                self.journal.put(again)
            else:
                self._enqueue(again.evolve(not_before=0.0), decision)
            self._maybe_finish(decision)
            return decision
        if error is None:
            error_type = RetryLimitExceededError if retry.max_retries else TaskExecutionError
            error = error_type(spec.task_id, cause, spec.attempt, self.session_id)
        if spec.group is not None and retryable:
            self._member_done(spec.group, spec.task_id, cause, decision)
            self._maybe_finish(decision)
            return decision
        self._finish(decision, RunStatus.FAILED, error)
        return decision

    def timed_out(self, token: str, timeout_s: float, *, now: float = 0.0) -> Decision:
        """A task ran past its timeout (its worker process was killed, or the engine
        interrupted it): a failure like any other, retried per its policy; once the
        retries are spent the run fails with `TaskTimeoutError`."""
        spec = self.inflight.get(token)
        if spec is None or self.end is not None:
            decision = Decision()
            decision.stale = True
            return decision
        error = TaskTimeoutError(spec.task_id, timeout_s, spec.attempt, self.session_id)
        return self.fail(token, error.cause, now=now, error=error)

    def crash(self, token: str, cause: str, *, worker: str = "") -> Decision:
        """The worker running ``token`` was lost (lease expired). The task runs again
        with a new token without using its retry budget, until ``crash_limit`` lost
        attempts dead-letter it: the run fails with `DeadLetterError`, the task stays
        pending and the decision asks for a checkpoint to resume from."""
        decision = Decision()
        spec = None if self.end is not None else self._take(token)
        if spec is None:  # fenced, duplicate, or after the end: the frontier is final
            decision.stale = True
            return decision
        workers = self.crash_workers.setdefault(spec.task_id, [])
        if worker:
            workers.append(worker)
        self.journal.crashes.add(spec.task_id)
        crashes = spec.crashes + 1
        if crashes >= self.crash_limit:
            # The task never completed, so it stays pending, and the driver writes a
            # checkpoint of this frontier: `graflow-dist resume` continues it after a fix.
            kept = spec.evolve(crashes=crashes)
            self.inflight[token] = kept
            self._pending_ids[kept.task_id] += 1
            self.journal.put(kept)
            decision.checkpoint = CheckpointRequest(None, {"dead_letter": spec.task_id})
            error = DeadLetterError(spec.task_id, crashes, workers, cause)
            self._finish(decision, RunStatus.FAILED, error)
            return decision
        self._enqueue(spec.evolve(token=self._token(), crashes=crashes), decision)
        return decision

    def hand_back(self, token: str) -> Decision:
        """A worker gave ``token`` back unfinished (graceful shutdown): it runs again
        with a new token, using neither its retry nor its crash budget."""
        decision = Decision()
        spec = None if self.end is not None else self._take(token)
        if spec is None:
            decision.stale = True
            return decision
        self._enqueue(spec.evolve(token=self._token()), decision)
        return decision

    def cancel(self, reason: str) -> Decision:
        """Cancel from outside (a client or the CLI)."""
        decision = Decision()
        if self.end is None:
            self._finish(decision, RunStatus.CANCELLED, WorkflowCancelledError(reason))
        return decision

    def abort(self, error: Exception) -> Decision:
        """Fail the run with ``error`` (e.g. it cannot start)."""
        decision = Decision()
        if self.end is None:
            self._finish(decision, RunStatus.FAILED, error)
        return decision

    def release_due(self, now: float) -> list[TaskSpec]:
        """Retries whose backoff elapsed; they are in flight from now on."""
        due = [s.evolve(not_before=0.0) for s in self.delayed.values() if s.not_before <= now]
        for spec in due:
            del self.delayed[spec.token]
            self.inflight[spec.token] = spec
            self.journal.put(spec)  # stored as dispatched: a takeover must not wait again
        return due

    def drain_journal(self) -> Journal:
        """The changes since the last call (for drivers that persist deltas)."""
        journal, self.journal = self.journal, Journal()
        return journal

    def next_due(self) -> float | None:
        """The next moment `release_due` or `expire_waits` has something to do."""
        return min([*(s.not_before for s in self.delayed.values()),
                    *(p.deadline for _s, p in self.parked.values()
                      if p.deadline and not p.timed_out)], default=None)

    @property
    def pending(self) -> list[TaskSpec]:
        return [*self.inflight.values(), *self.delayed.values(),
                *(spec for spec, _p in self.parked.values())]

    @property
    def waiting(self) -> bool:
        """Only tasks that wait for the outside world are left (the run's status is
        ``waiting``)."""
        return self.end is None and bool(self.parked) and not (self.inflight or self.delayed)

    # --- waiting for the outside world (human feedback) ------------------------------

    def park(self, token: str, wake_key: str, *, deadline: float = 0.0) -> Decision:
        """The task running ``token`` waits for ``wake_key`` (a feedback id) and gave its
        worker back: it stays pending and runs again from its start once `wake` is
        called with that key. At ``deadline`` (epoch seconds; 0: none) `expire_waits`
        asks for a checkpoint of the waiting run."""
        decision = Decision()
        spec = self.inflight.get(token) if self.end is None else None
        if spec is None or wake_key in self.parked:
            decision.stale = True
            return decision
        del self.inflight[token]
        parked = ParkedTask(token, deadline)
        self.parked[wake_key] = (spec, parked)
        self.journal.park(wake_key, parked)
        return decision

    def wake(self, wake_key: str) -> Decision:
        """The answer for ``wake_key`` arrived: its task runs again (a new token)."""
        decision = Decision()
        entry = self.parked.pop(wake_key, None) if self.end is None else None
        if entry is None:
            decision.stale = True
            return decision
        spec, _parked = entry
        self.journal.unpark(wake_key)
        self.journal.drop(spec.token)
        self._unpend(spec.task_id)
        self._enqueue(spec.evolve(token=self._token()), decision)
        return decision

    def expire_waits(self, now: float) -> Decision:
        """Waits whose deadline passed: the decision asks for a checkpoint of the run
        (which keeps waiting; a late answer still wakes the task)."""
        decision = Decision()
        expired = [key for key, (_s, p) in self.parked.items()
                   if p.deadline and not p.timed_out and p.deadline <= now]
        for key in expired:
            spec, parked = self.parked[key]
            parked.timed_out = True
            self.journal.park(key, parked)
        if expired and self.end is None:
            decision.checkpoint = CheckpointRequest(None, {"waiting_for": sorted(expired),
                                                           "reason": "feedback timeout"})
        return decision

    # --- internals ------------------------------------------------------------------

    def _token(self) -> str:
        self.dispatch_seq += 1
        return f"{self.epoch}.{self.dispatch_seq}"

    @staticmethod
    def seq_of(spec: TaskSpec) -> tuple[str, int]:
        epoch, _, seq = spec.token.rpartition(".")
        return (epoch, int(seq) if seq.isdigit() else 0)

    def _take(self, token: str) -> TaskSpec | None:
        spec = self.inflight.pop(token, None)
        if spec is not None:
            self._unpend(spec.task_id)
            self.journal.drop(token)
        return spec

    def _unpend(self, task_id: str) -> None:
        left = self._pending_ids[task_id] - 1
        if left > 0:
            self._pending_ids[task_id] = left
        else:  # no zero entries: a finished fan-out leaves nothing behind
            del self._pending_ids[task_id]

    def _activate(self, node: str) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if current in self.active or current not in self.shape.nodes:
                continue
            self.active.add(current)
            self.journal.activated.append(current)
            shape = self.shape.node(current)
            stack.extend(shape.successors)
            stack.extend(shape.members or ())

    def _enqueue(self, spec: TaskSpec, decision: Decision) -> None:
        self.inflight[spec.token] = spec
        self._pending_ids[spec.task_id] += 1
        self.journal.put(spec)
        decision.dispatch.append(spec)

    def _schedule(self, node: str, decision: Decision, *, force: bool = False) -> None:
        """Make ``node`` ready, unless it is already pending (joins run once)."""
        if self._pending_ids[node] > 0 and not force:
            return
        shape = self.shape.node(node)
        if shape.is_group:
            previous = self.groups.get(node)
            self.groups[node] = GroupRun(shape.members or [])
            self.journal.group_started(node, list(previous.succeeded) + list(previous.failed)
                                       if previous is not None else [])
            for member in shape.members or []:
                self._enqueue(self._spec_for(member, group=node), decision)
            return
        self._enqueue(self._spec_for(node), decision)

    def _spec_for(self, node: str, group: str | None = None) -> TaskSpec:
        return TaskSpec(
            task_id=node, token=self._token(), cycle=self.cycle_counts.get(node, 0), group=group
        )

    def _release(self, node: str, decision: Decision) -> None:
        if node not in self.released:
            self.released.add(node)
            self.journal.released.append(node)
        for succ in self.shape.node(node).successors:
            preds = [p for p in self.shape.node(succ).predecessors if p in self.active]
            if all(p in self.released for p in preds):
                self._schedule(succ, decision)

    def _member_done(
        self, group: str, member: str, failure: str | None, decision: Decision
    ) -> None:
        progress = self.groups.get(group)
        seq = None if progress is None else progress.finish(member, failure)
        if seq is None:
            return
        self.journal.group_done.append((group, member, seq, failure))
        if progress.outstanding:
            return
        policy = self.shape.node(group).policy
        assert policy is not None
        if not group_satisfied(policy, progress):
            error = ParallelGroupError(group, policy.describe(), progress.failed)
            self._finish(decision, RunStatus.FAILED, error)
            return
        self._mark_completed(group, decision)
        self._set_cycles(group, self.cycle_counts.get(group, 0) + 1)
        self._release(group, decision)

    def _mark_completed(self, node: str, decision: Decision) -> None:
        if node not in self.completed:  # first-completion order, no duplicates
            self.completed[node] = None
            self.journal.completed.append(node)
        decision.completed.append(node)

    def _set_cycles(self, node: str, count: int) -> None:
        self.cycle_counts[node] = count
        self.journal.cycles[node] = count

    def _drop_pending(self) -> None:
        for bucket in (self.inflight, self.delayed):
            for token, spec in list(bucket.items()):
                del bucket[token]
                self._unpend(spec.task_id)
                self.journal.drop(token)
        for key, (spec, _parked) in list(self.parked.items()):
            del self.parked[key]
            self._unpend(spec.task_id)
            self.journal.unpark(key)
            self.journal.drop(spec.token)

    def _maybe_finish(self, decision: Decision) -> None:
        if self.end is not None:
            return
        if self.inflight or self.delayed or self.parked:
            if self.steps >= self.max_steps:
                pending = sorted({s.task_id for s in self.pending})
                self._finish(
                    decision, RunStatus.MAX_STEPS, MaxStepsExceededError(self.max_steps, pending)
                )
            return
        blocked = self._blocked_on_cycle()
        if blocked:
            self._finish(decision, RunStatus.FAILED, DeadlockError(blocked))
        else:
            self._finish(decision, RunStatus.COMPLETED, None)

    def _blocked_on_cycle(self) -> list[str]:
        """Nodes that some released predecessor was waiting to start, that never ran,
        and sit on a `>>` cycle: they can never become ready."""
        blocked = []
        for node in sorted(self.active - set(self.completed)):
            preds = self.shape.node(node).predecessors
            if any(p in self.released for p in preds) and self.shape.on_cycle(node):
                blocked.append(node)
        return blocked

    def _finish(self, decision: Decision, status: RunStatus, error: Exception | None) -> None:
        self.end = RunEnd(status, error)
        decision.end = self.end


__all__ = ["Scheduler", "CheckpointRequest", "DEFAULT_MAX_STEPS", "DEFAULT_CRASH_LIMIT"]
