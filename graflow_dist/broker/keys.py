"""Every Redis key and hash field graflow-dist uses, in one place.

Run data is namespaced per deployment prefix (``GRAFLOW_DIST_PREFIX``, default
``graflow``) and per session, so concurrent runs never share a key. Queues are RQ's own
keys (``rq:queue:<name>``, ``rq:job:<id>``) so that ``rq info`` and KEDA see them. The
Lua scripts get these names from here too (see `graflow_dist.broker.scripts`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from graflow_dist.names import check_prefix

PREFIX_ENV = "GRAFLOW_DIST_PREFIX"
DEFAULT_PREFIX = "graflow"

# RQ's own layout (rq 2.x / 3.x): queue list, job hash, started ("wip") and failed
# registries, the set of queues and of workers.
RQ_QUEUE = "rq:queue:"
RQ_JOB = "rq:job:"
RQ_WIP = "rq:wip:"
RQ_FAILED = "rq:failed:"
RQ_QUEUES = "rq:queues"
RQ_WORKER = "rq:worker:"
RQ_WORKERS = "rq:workers"

# Redis type names (as TYPE reports them).
STRING, HASH, LIST, SET, ZSET, STREAM = "string", "hash", "list", "set", "zset", "stream"

# The single field of an event stream entry (msgpack `Event`).
EVENT_FIELD = "d"
# The field of a run's `ended` stream entry.
ENDED_FIELD = "status"
# The lease owner recorded while the coordinator re-dispatches an expired job.
REAPER = "reaper"


class RunField:
    """Fields of a run's ``meta`` hash."""

    SESSION_ID = "session_id"
    STATUS = "status"
    GRAPH_HASH = "graph_hash"
    TRACE_ID = "trace_id"
    WORKFLOW = "workflow"
    START_NODE = "start_node"
    MAX_STEPS = "max_steps"
    DEFAULT_MAX_CYCLES = "default_max_cycles"
    DEFAULT_MAX_RETRIES = "default_max_retries"
    CRASH_LIMIT = "crash_limit"
    QUEUE = "queue"
    RESUME = "resume"
    INCARNATION = "incarnation"  # new at every submit/resume: older jobs are skipped
    TRACEPARENT = "traceparent"  # W3C trace context of the submission
    TOTAL = "total"
    DONE = "done"
    RUNNING = "running"  # tasks in claimed jobs (kept by the job scripts)
    PENDING = "pending"
    FAILED = "failed"
    STEPS = "steps"
    DISPATCH_SEQ = "dispatch_seq"
    SUBMITTED_AT = "submitted_at"
    STARTED_AT = "started_at"
    UPDATED_AT = "updated_at"
    FINISHED_AT = "finished_at"
    LAST_TASK = "last_task"
    ERROR = "error"
    ERROR_TYPE = "error_type"
    ERROR_DATA = "error_data"
    LAST_CHECKPOINT = "last_checkpoint"
    CHECKPOINT_ERROR = "checkpoint_error"


class JobField:
    """Fields of an ``rq:job:<id>`` hash: RQ's own, and ours (``gf_``)."""

    STATUS = "status"
    DATA = "data"
    ORIGIN = "origin"
    DESCRIPTION = "description"
    TIMEOUT = "timeout"
    CREATED_AT = "created_at"
    ENQUEUED_AT = "enqueued_at"
    STARTED_AT = "started_at"
    ENDED_AT = "ended_at"
    WORKER_NAME = "worker_name"
    EXC_INFO = "exc_info"
    SESSION = "gf_session"
    TASKS = "gf_tasks"
    INCARNATION = "gf_incarnation"
    LEASE_S = "gf_lease_s"


class WorkerField:
    """Fields of RQ's worker hash that our scripts keep current (and RQ's own)."""

    STATE = "state"
    BIRTH = "birth"
    SUCCESSFUL_JOBS = "successful_job_count"
    FAILED_JOBS = "failed_job_count"


def default_prefix() -> str:
    return os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX


@dataclass(frozen=True)
class RunKeys:
    """The keys of one run (session)."""

    prefix: str
    session_id: str

    def _k(self, name: str) -> str:
        return f"{self.prefix}:run:{self.session_id}:{name}"

    @property
    def meta(self) -> str:  # HASH `RunField` -> value
        return self._k("meta")

    @property
    def shape(self) -> str:  # HASH node_id -> msgpack NodeShape
        return self._k("shape")

    def staged_shape(self, incarnation: str) -> str:  # HASH written ahead of a submission
        return self._k(f"shape:{incarnation}")

    @property
    def completed(self) -> str:  # ZSET task_id -> completion order
        return self._k("completed")

    @property
    def released(self) -> str:  # SET
        return self._k("released")

    @property
    def pending(self) -> str:  # HASH token -> msgpack TaskSpec
        return self._k("pending")

    @property
    def cycles(self) -> str:  # HASH task_id -> count
        return self._k("cycles")

    @property
    def groups(self) -> str:  # HASH group_id -> msgpack GroupProgress
        return self._k("groups")

    @property
    def group_ends(self) -> str:  # HASH "group\x00member" -> msgpack [seq, failure or nil]
        return self._k("groupends")

    @property
    def active(self) -> str:  # SET
        return self._k("active")

    @property
    def crashes(self) -> str:  # HASH task_id -> msgpack [worker, ...]
        return self._k("crashes")

    @property
    def parked(self) -> str:  # HASH wake key (feedback id) -> msgpack ParkedTask
        return self._k("parked")

    @property
    def dynamic(self) -> str:  # HASH task_id -> signed cloudpickle of a dynamic task
        return self._k("dynamic")

    @property
    def feedback(self) -> str:  # SET of the run's feedback ids
        return self._k("feedback")

    @property
    def ended(self) -> str:  # STREAM with one entry once the run is over (wakes waiters)
        return self._k("ended")

    @property
    def tasks(self) -> str:  # HASH task_id -> msgpack TaskRecord (its last report)
        return self._k("tasks")

    @property
    def channel_index(self) -> str:  # SET of the run's channel key names (no SCAN needed)
        return self._k("chkeys")

    @property
    def channel_prefix(self) -> str:
        return f"{self.prefix}:ch:{self.session_id}:"

    def channel(self, key: str) -> str:
        return self.channel_prefix + key

    def channel_write(self, write_id: str) -> str:  # STRING, short TTL: a write applied
        return self._k(f"chw:{write_id}")

    def lock(self, key: str) -> str:
        return f"{self.prefix}:lock:{self.session_id}:{key}"

    def key_types(self) -> dict[str, str]:
        """The run's keys (not its channel) with the Redis type each holds."""
        return {self.meta: HASH, self.shape: HASH, self.completed: ZSET,
                self.released: SET, self.pending: HASH, self.cycles: HASH,
                self.groups: HASH, self.group_ends: HASH, self.active: SET,
                self.crashes: HASH, self.parked: HASH, self.dynamic: HASH,
                self.feedback: SET, self.tasks: HASH, self.ended: STREAM,
                self.channel_index: SET}

    def frontier_keys(self) -> list[str]:
        return [self.meta, self.shape, self.completed, self.released, self.pending,
                self.cycles, self.groups, self.group_ends, self.active, self.crashes,
                self.parked, self.dynamic, self.feedback, self.ended]

    def state_keys(self) -> list[str]:
        """The frontier proper (what a submission from a checkpoint replaces)."""
        return [self.completed, self.released, self.pending, self.cycles, self.groups,
                self.group_ends, self.active, self.crashes, self.parked]


@dataclass(frozen=True)
class Keyspace:
    """Keys shared by a deployment (coordinators, workers, clients). The prefix is
    checked here: it is part of every key and of the Lua scripts' constants."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        check_prefix(self.prefix, f"deployment prefix ({PREFIX_ENV})")

    @classmethod
    def from_env(cls, prefix: str | None = None) -> Keyspace:
        return cls(prefix or default_prefix())

    def run(self, session_id: str) -> RunKeys:
        return RunKeys(self.prefix, session_id)

    @property
    def run_key_head(self) -> str:
        """``RunKeys(...).meta`` is ``run_key_head + session_id + run_meta_tail`` (Lua)."""
        return f"{self.prefix}:run:"

    @property
    def run_meta_tail(self) -> str:
        return ":meta"

    @property
    def queue_name(self) -> str:
        return self.prefix

    @staticmethod
    def rq_queue(name: str) -> str:
        return RQ_QUEUE + name

    @staticmethod
    def rq_job(job_id: str) -> str:
        return RQ_JOB + job_id

    @staticmethod
    def rq_failed(name: str) -> str:
        return RQ_FAILED + name

    @staticmethod
    def rq_wip(name: str) -> str:
        return RQ_WIP + name

    @staticmethod
    def rq_worker(name: str) -> str:
        return RQ_WORKER + name

    def wake(self, queue: str) -> str:  # LIST of at most one token: wakes idle workers
        return f"{self.prefix}:wake:{queue}"

    @property
    def leases(self) -> str:  # ZSET job_id -> lease expiry (epoch seconds)
        return f"{self.prefix}:leases"

    @property
    def lease_owner(self) -> str:  # HASH job_id -> worker name
        return f"{self.prefix}:lease:owner"

    @property
    def jobmap(self) -> str:  # HASH job_id -> msgpack [session_id, [tokens]]
        return f"{self.prefix}:jobmap"

    @property
    def events(self) -> str:  # STREAM of submissions and completions
        return f"{self.prefix}:events"

    @property
    def dead_events(self) -> str:  # STREAM of events no coordinator could read
        return f"{self.prefix}:events:dead"

    @property
    def cursor(self) -> str:  # last applied event id
        return f"{self.prefix}:events:cursor"

    @property
    def leader(self) -> str:
        return f"{self.prefix}:coordinator:leader"

    @property
    def leader_epoch(self) -> str:
        return f"{self.prefix}:coordinator:epoch"

    @property
    def commits(self) -> str:  # number of fenced coordinator commits (lost-write check)
        return f"{self.prefix}:coordinator:commits"

    def staged_commit(self, coordinator_id: str) -> str:  # STRING: a large commit's payload
        return f"{self.prefix}:coordinator:commit:{coordinator_id}"

    @property
    def active_runs(self) -> str:  # SET of running session ids
        return f"{self.prefix}:runs:active"

    @property
    def expiring_runs(self) -> str:  # ZSET ended session id -> end time, until its TTL is set
        return f"{self.prefix}:runs:expiring"

    @property
    def all_runs(self) -> str:  # ZSET session_id -> submit time
        return f"{self.prefix}:runs"

    @property
    def workers(self) -> str:  # ZSET worker name -> last heartbeat
        return f"{self.prefix}:workers"

    @property
    def worker_stats(self) -> str:  # HASH worker name -> msgpack WorkerStats
        return f"{self.prefix}:workers:stats"

    @property
    def coordinators(self) -> str:  # ZSET coordinator id -> last lease attempt
        return f"{self.prefix}:coordinators"

    def blob(self, content_hash: str) -> str:  # a graph's manifest, by its hash
        return f"{self.prefix}:blob:{content_hash}"

    def code(self, content_hash: str) -> str:  # a signed code blob, by its hash
        return f"{self.prefix}:code:{content_hash}"

    def feedback(self, feedback_id: str) -> str:  # HASH request, response, session, time
        return f"{self.prefix}:feedback:req:{feedback_id}"

    @property
    def feedback_index(self) -> str:  # ZSET feedback id -> created time
        return f"{self.prefix}:feedback:index"

    @property
    def feedback_pending(self) -> str:  # ZSET feedback id -> created time, while open
        return f"{self.prefix}:feedback:pending"

    @property
    def checkpoint_index(self) -> str:  # ZSET base -> created time
        return f"{self.prefix}:checkpoints"

    def checkpoint(self, base: str) -> str:  # HASH suffix -> bytes
        return f"{self.prefix}:checkpoint:{base}"

    def expected_type(self, key: str) -> str | None:
        """The type graflow-dist keeps in ``key`` (None: a channel key, whose values
        are the user's, or not a key of ours)."""
        fixed = self.key_types().get(key)
        if fixed is not None:
            return fixed
        p = self.prefix + ":"
        for head, kind in ((RQ_QUEUE, LIST), (RQ_JOB, HASH), (RQ_WIP, ZSET), (RQ_FAILED, ZSET),
                           (RQ_WORKER, HASH), (RQ_WORKERS, SET), (p + "wake:", LIST),
                           (p + "blob:", STRING), (p + "checkpoint:", HASH),
                           (p + "feedback:req:", HASH)):
            if key.startswith(head) and ":" not in key[len(head):]:
                return kind
        if key.startswith(self.run_key_head):
            session_id, _, name = key[len(self.run_key_head):].rpartition(":")
            return RunKeys(self.prefix, session_id).key_types().get(key) if session_id else None
        return None

    @property
    def quarantine_head(self) -> str:
        """Keys found holding the wrong type are moved to ``quarantine_head + stamp +
        ':' + key`` (see the ``quarantine`` script)."""
        return f"{self.prefix}:quarantine:"

    def key_types(self, queue: str | None = None) -> dict[str, str]:
        """The deployment's own keys (and those of ``queue``, default: the prefix's
        queue) with the Redis type each holds."""
        q = queue or self.queue_name
        return {
            self.events: STREAM, self.dead_events: STREAM, self.cursor: STRING,
            self.commits: STRING, self.leader: STRING, self.leader_epoch: STRING,
            self.leases: ZSET, self.lease_owner: HASH, self.jobmap: HASH,
            self.active_runs: SET, self.expiring_runs: ZSET, self.all_runs: ZSET,
            self.workers: ZSET,
            self.worker_stats: HASH, self.coordinators: ZSET, self.feedback_index: ZSET,
            self.feedback_pending: ZSET, self.checkpoint_index: ZSET,
            self.rq_queue(q): LIST, self.wake(q): LIST, self.rq_wip(q): ZSET,
            self.rq_failed(q): ZSET, RQ_QUEUES: SET,
        }
