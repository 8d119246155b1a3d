"""ConsoleQueries: what the web console reads (runs filtered and paged, one run in
detail, workers, queues, coordinators), each in a few round trips, decoded here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from graflow_dist.broker.channel_data import channel_key_names
from graflow_dist.broker.frontier import load_run
from graflow_dist.broker.jobs import decode_jobmap, job_id_prefix
from graflow_dist.broker.keys import RQ_QUEUE, RQ_QUEUES, JobField, Keyspace, WorkerField
from graflow_dist.broker.leader import LeaderLease
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.task_states import task_states
from graflow_dist.broker.workers import LIVE_WORKER_WINDOW_S
from graflow_dist.errors import WireError
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import GraphShape
from graflow_dist.wire.task_records import TaskRecord, WorkerStats

# Runs looked at per round trip while filtering, and at most per query.
_SCAN_CHUNK = 200
DEFAULT_SCAN_LIMIT = 20_000
# Channel keys listed at most on a run's page.
DEFAULT_CHANNEL_KEYS_SHOWN = 200
# A coordinator that has not tried the lease for this long is shown as gone.
COORDINATOR_WINDOW_S = 15.0


@dataclass
class RunFilter:
    """Which runs to list: any of ``statuses`` (all if empty), a workflow name, a
    session id prefix."""

    statuses: frozenset[RunStatus] = frozenset()
    workflow: str | None = None
    session_prefix: str | None = None

    def matches(self, record: RunRecord) -> bool:
        return ((not self.statuses or record.status in self.statuses)
                and (not self.workflow or record.workflow == self.workflow)
                and (not self.session_prefix
                     or record.session_id.startswith(self.session_prefix)))


@dataclass
class RunPage:
    records: list[RunRecord]
    offset: int
    limit: int
    has_more: bool


@dataclass
class RunView:
    """One run as the console shows it."""

    record: RunRecord
    shape: GraphShape
    frontier: FrontierSnapshot
    tasks: dict[str, TaskRecord]
    running: dict[str, str]  # dispatch token -> worker holding it
    states: dict[str, str]  # node id -> drawing state


@dataclass
class WorkerView:
    name: str
    heartbeat_at: float
    stats: WorkerStats | None
    rq_state: str = ""
    rq_jobs_done: int = 0
    rq_jobs_failed: int = 0
    held_jobs: list[str] = field(default_factory=list)

    def to_dict(self, now: float) -> dict[str, Any]:
        stats = self.stats
        uptime = now - stats.started_at if stats and stats.started_at else None
        done = stats.tasks_done if stats else 0
        return {
            "name": self.name, "heartbeat_age_s": max(0.0, now - self.heartbeat_at),
            "live": now - self.heartbeat_at <= LIVE_WORKER_WINDOW_S,
            "queue": stats.queue if stats else None, "host": stats.host if stats else None,
            "pid": stats.pid if stats else None, "uptime_s": uptime,
            "tasks_done": done, "tasks_failed": stats.tasks_failed if stats else 0,
            "throughput_per_s": done / uptime if uptime and uptime > 0 else None,
            "current_session": (stats.current_session or None) if stats else None,
            "current_tasks": stats.current_tasks if stats else [],
            "rq_state": self.rq_state or None, "rq_jobs_done": self.rq_jobs_done,
            "rq_jobs_failed": self.rq_jobs_failed, "held_jobs": self.held_jobs,
        }


@dataclass
class QueueView:
    name: str
    depth: int  # jobs waiting
    oldest_enqueued_at: str | None  # RQ's timestamp of the job at the head
    oldest_job: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "depth": self.depth, "oldest_job": self.oldest_job,
                "oldest_enqueued_at": self.oldest_enqueued_at,
                "oldest_wait_s": _age_of_rq_stamp(self.oldest_enqueued_at)}


def _age_of_rq_stamp(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        whole, _, frac = stamp.rstrip("Z").partition(".")
        at = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone
        return max(0.0, time.time() - at - float(f"0.{frac or 0}"))
    except ValueError:
        return None


class ConsoleQueries:
    """Read-only queries of the web console.

    Parameters
    ----------
    client:
        Redis client (bytes responses).
    keyspace:
        Key layout.
    """

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self.keyspace = keyspace
        self.leader = LeaderLease(client, keyspace)

    # --- runs ---------------------------------------------------------------------------

    def runs(self, run_filter: RunFilter | None = None, limit: int = 50, offset: int = 0,
             scan_limit: int = DEFAULT_SCAN_LIMIT) -> RunPage:
        """Runs newest first that match ``run_filter``, ``limit`` of them after skipping
        ``offset`` matches; looks at ``scan_limit`` runs at most. Runs whose data
        expired or is damaged are left out."""
        run_filter = run_filter or RunFilter()
        limit, offset = max(0, limit), max(0, offset)
        matched: list[RunRecord] = []
        start = 0
        while start < scan_limit:
            ids = [s.decode(errors="replace") for s in self.client.zrevrange(
                self.keyspace.all_runs, start, start + _SCAN_CHUNK - 1)]
            if not ids:
                break
            start += len(ids)
            for record in self._records(ids):
                if run_filter.matches(record):
                    matched.append(record)
            if len(matched) > offset + limit:
                break
        page = matched[offset:offset + limit]
        return RunPage(page, offset, limit, has_more=len(matched) > offset + limit)

    def _records(self, ids: list[str]) -> Iterable[RunRecord]:
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self.keyspace.run(sid).meta)
        for sid, meta in zip(ids, pipe.execute(), strict=True):
            if meta:
                try:
                    yield RunRecord.from_meta(sid, meta)
                except WireError:
                    continue

    def workflows(self, scan_limit: int = 1000) -> list[str]:
        """Workflow names of the newest ``scan_limit`` runs (for a filter menu)."""
        ids = [s.decode(errors="replace") for s in self.client.zrevrange(
            self.keyspace.all_runs, 0, scan_limit - 1)]
        return sorted({r.workflow for r in self._records(ids) if r.workflow})

    # --- one run --------------------------------------------------------------------------

    def run(self, session_id: str) -> RunView:
        """A run with its graph, frontier, task records and what workers hold of it;
        `UnknownSessionError` if there is none, `WireError` if its data is damaged."""
        keys = self.keyspace.run(session_id)
        record, shape, frontier = load_run(self.client, keys)
        tasks = self.task_records(session_id)
        running = self.running_tokens(session_id)
        states = task_states(shape, frontier, tasks, set(running), record.status.active)
        return RunView(record, shape, frontier, tasks, running, states)

    def task_records(self, session_id: str) -> dict[str, TaskRecord]:
        raw = self.client.hgetall(self.keyspace.run(session_id).tasks)
        what = f"run {session_id!r} task record"
        out: dict[str, TaskRecord] = {}
        for k, v in raw.items():
            task_id = k.decode(errors="replace")
            try:
                out[task_id] = TaskRecord.decode(task_id, v, what)
            except WireError:
                continue  # one damaged record hides that task's detail, not the run
        return out

    def running_tokens(self, session_id: str) -> dict[str, str]:
        """Dispatch tokens of the run in jobs that workers hold now -> worker."""
        prefix = job_id_prefix(session_id)
        held = [j.decode(errors="replace")
                for j in self.client.zrange(self.keyspace.leases, 0, -1)]
        mine = [j for j in held if j.startswith(prefix)]
        if not mine:
            return {}
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keyspace.jobmap, mine)
        pipe.hmget(self.keyspace.lease_owner, mine)
        entries, owners = pipe.execute()
        out: dict[str, str] = {}
        for job_id, entry, owner in zip(mine, entries, owners, strict=True):
            if entry is None:
                continue
            try:
                _sid, tokens = decode_jobmap(entry, job_id)
            except WireError:
                continue
            for token in tokens:
                out[token] = (owner or b"").decode(errors="replace")
        return out

    def channel_keys(self, session_id: str, limit: int = DEFAULT_CHANNEL_KEYS_SHOWN
                     ) -> tuple[list[str], bool]:
        """Up to ``limit`` channel key names of the run (sorted), and whether there
        are more."""
        keys = self.keyspace.run(session_id)
        base = len(keys.channel_prefix)
        names: list[str] = []
        for raw in channel_key_names(self.client, keys):
            names.append(raw.decode(errors="replace")[base:])
            if len(names) > limit:
                break
        return sorted(names[:limit]), len(names) > limit

    # --- the deployment -----------------------------------------------------------------

    def workers(self) -> list[WorkerView]:
        """Every registered worker: our heartbeat and stats, RQ's view of it, the jobs
        it holds."""
        beats = self.client.zrange(self.keyspace.workers, 0, -1, withscores=True)
        names = [n.decode(errors="replace") for n, _ in beats]
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keyspace.worker_stats)
        pipe.hgetall(self.keyspace.lease_owner)
        for name in names:
            pipe.hmget(self.keyspace.rq_worker(name), [
                WorkerField.STATE, WorkerField.SUCCESSFUL_JOBS, WorkerField.FAILED_JOBS])
        stats_raw, owners, *rq_rows = pipe.execute()
        held: dict[str, list[str]] = {}
        for job, owner in owners.items():
            held.setdefault(owner.decode(errors="replace"), []).append(
                job.decode(errors="replace"))
        views = []
        for (raw_name, beat), name, rq_row in zip(beats, names, rq_rows, strict=True):
            stats = None
            if raw_name in stats_raw:
                try:
                    stats = WorkerStats.decode(name, stats_raw[raw_name])
                except WireError:
                    stats = None
            state, done, failed = ((v or b"").decode(errors="replace") for v in rq_row)
            views.append(WorkerView(name, float(beat), stats, state, _int(done), _int(failed),
                                    sorted(held.get(name, []))))
        return views

    def queues(self) -> list[QueueView]:
        """RQ queues of this Redis: depth and the oldest waiting job."""
        names = sorted(q.decode(errors="replace").removeprefix(RQ_QUEUE)
                       for q in self.client.smembers(RQ_QUEUES))
        if self.keyspace.queue_name not in names:
            names.append(self.keyspace.queue_name)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.keyspace.rq_queue(name))
            pipe.lindex(self.keyspace.rq_queue(name), 0)
        replies = pipe.execute()
        heads = [(h.decode(errors="replace") if h else None) for h in replies[1::2]]
        pipe = self.client.pipeline(transaction=False)
        for head in heads:
            if head is not None:
                pipe.hget(self.keyspace.rq_job(head), JobField.ENQUEUED_AT)
        stamps = iter(pipe.execute())
        views = []
        for name, depth, head in zip(names, replies[0::2], heads, strict=True):
            stamp = next(stamps) if head is not None else None
            views.append(QueueView(name, int(depth),
                                   stamp.decode(errors="replace") if stamp else None, head))
        return views

    def coordinators(self) -> dict[str, Any]:
        """Coordinators seen recently, the leader and its fencing epoch."""
        now = time.time()
        holder = self.leader.holder()
        seen = self.leader.coordinators()
        return {
            "leader": holder, "epoch": self.leader.epoch(),
            "coordinators": [
                {"id": cid, "last_seen_age_s": max(0.0, now - at), "leader": cid == holder,
                 "live": now - at <= COORDINATOR_WINDOW_S}
                for cid, at in sorted(seen.items())],
        }

    def running_jobs(self) -> int:
        return int(self.client.zcard(self.keyspace.leases))


def _int(raw: str) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0
