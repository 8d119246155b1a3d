"""Every Redis key graflow-dist uses, in one place.

Run data is namespaced per deployment prefix (``GRAFLOW_DIST_PREFIX``, default
``graflow``) and per session, so concurrent runs never share a key. Queues are RQ's
own keys (``rq:queue:<name>``, ``rq:job:<id>``) so that ``rq info`` and KEDA see them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PREFIX_ENV = "GRAFLOW_DIST_PREFIX"
DEFAULT_PREFIX = "graflow"


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
    def meta(self) -> str:  # HASH: status, counters, error, settings
        return self._k("meta")

    @property
    def shape(self) -> str:  # HASH node_id -> msgpack NodeShape
        return self._k("shape")

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
    def active(self) -> str:  # SET
        return self._k("active")

    @property
    def crashes(self) -> str:  # HASH task_id -> msgpack [worker, ...]
        return self._k("crashes")

    @property
    def dynamic(self) -> str:  # HASH task_id -> signed cloudpickle of a dynamic task
        return self._k("dynamic")

    @property
    def ended(self) -> str:  # STREAM with one entry once the run is over (wakes waiters)
        return self._k("ended")

    @property
    def channel_prefix(self) -> str:
        return f"{self.prefix}:ch:{self.session_id}:"

    def channel(self, key: str) -> str:
        return self.channel_prefix + key

    def lock(self, key: str) -> str:
        return f"{self.prefix}:lock:{self.session_id}:{key}"

    def frontier_keys(self) -> list[str]:
        return [self.meta, self.shape, self.completed, self.released, self.pending,
                self.cycles, self.groups, self.active, self.crashes, self.dynamic, self.ended]


@dataclass(frozen=True)
class Keyspace:
    """Keys shared by a deployment (coordinators, workers, clients)."""

    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, prefix: str | None = None) -> Keyspace:
        return cls(prefix or default_prefix())

    def run(self, session_id: str) -> RunKeys:
        return RunKeys(self.prefix, session_id)

    @property
    def queue_name(self) -> str:
        return self.prefix

    @staticmethod
    def rq_queue(name: str) -> str:
        return f"rq:queue:{name}"

    @staticmethod
    def rq_job(job_id: str) -> str:
        return f"rq:job:{job_id}"

    @staticmethod
    def rq_failed(name: str) -> str:
        return f"rq:failed:{name}"

    def wake(self, queue: str) -> str:
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

    @property
    def active_runs(self) -> str:  # SET of running session ids
        return f"{self.prefix}:runs:active"

    @property
    def all_runs(self) -> str:  # ZSET session_id -> submit time
        return f"{self.prefix}:runs"

    @property
    def workers(self) -> str:  # ZSET worker name -> last heartbeat
        return f"{self.prefix}:workers"

    def blob(self, content_hash: str) -> str:
        return f"{self.prefix}:blob:{content_hash}"

    @property
    def checkpoint_index(self) -> str:  # ZSET base -> created time
        return f"{self.prefix}:checkpoints"

    def checkpoint(self, base: str) -> str:  # HASH suffix -> bytes
        return f"{self.prefix}:checkpoint:{base}"
