"""The Lua scripts: the few places where atomicity needs more than MULTI/EXEC.

Each script is a ``.lua`` file of this package. What it runs is: a header of ``local``
constants generated from Python (key prefixes, hash fields, return codes, limits: one
definition each, here and in `graflow_dist.broker.keys`), then ``lib.lua`` (the blocks
several scripts share), then the script. Every script touches only graflow-dist and RQ
keys on a single Redis (RQ itself is not Redis Cluster safe either).
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache
from importlib import resources
from typing import Any

import redis

from graflow_dist.broker.keys import (
    REAPER,
    RQ_JOB,
    RQ_WIP,
    JobField,
    Keyspace,
    RunField,
    WorkerField,
)
from graflow_dist.scheduler.events import RunStatus

# The longest command a commit may carry. Lua's unpack() fails beyond ~8,000 values
# (LUAI_MAXCSTACK), half-way through a commit; the coordinator splits variadic commands
# into pieces of at most this many arguments and the script refuses anything longer.
MAX_COMMAND_ARGS = 1000
# RQ's started registry holds a claimed job this long past its lease, so that RQ's own
# clean-up never fails one of our jobs (our reaper decides).
RQ_WIP_EXTRA_S = 86400
# How long a malformed job stays in RQ's failed registry.
RQ_FAILED_TTL_S = 365 * 86400


class ApplyResult(IntEnum):
    """``fenced_apply``: 0 or more is the number of commands that failed inside."""

    NOT_LEADER = -1
    STATE_BEHIND = -2
    COMMAND_TOO_LONG = -3


class LeaderResult(IntEnum):
    """``leader_acquire`` returns an epoch (> 0) or NOT_ACQUIRED; ``leader_release``
    RELEASED or NOT_HELD."""

    NOT_ACQUIRED = 0
    NOT_HELD = 0
    RELEASED = 1


class LeaseResult(IntEnum):
    """``finish`` and ``fail_job``."""

    LEASE_LOST = 0
    RELEASED = 1


class ReapResult(IntEnum):
    """``reap_mark`` and ``lease_grace`` (else a list / a count)."""

    NOT_LEADER = -1


SCRIPT_NAMES = ("fenced_apply", "leader_acquire", "leader_release", "claim", "extend",
                "finish", "fail_job", "reap_mark", "lease_grace")


def _lua_literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if any(c in text for c in "'\\\n"):
        raise ValueError(f"not a safe Lua string constant: {text!r}")
    return f"'{text}'"


def header(keyspace: Keyspace) -> str:
    """The generated ``local`` constants every script starts with."""
    constants: dict[str, Any] = {
        "RQ_JOB": RQ_JOB, "RQ_WIP": RQ_WIP, "REAPER": REAPER,
        "RUN_KEY_HEAD": keyspace.run_key_head, "RUN_META_TAIL": keyspace.run_meta_tail,
        "MAX_COMMAND_ARGS": MAX_COMMAND_ARGS, "RQ_WIP_EXTRA_S": RQ_WIP_EXTRA_S,
        "RQ_FAILED_TTL_S": RQ_FAILED_TTL_S, "SUPERSEDED": RunStatus.SUPERSEDED.value,
        "F_RUN_RUNNING": RunField.RUNNING, "F_RUN_STATUS": RunField.STATUS,
        "F_RUN_INCARNATION": RunField.INCARNATION,
        "F_WORKER_STATE": WorkerField.STATE,
        "F_WORKER_SUCCESSFUL_JOBS": WorkerField.SUCCESSFUL_JOBS,
        "F_WORKER_FAILED_JOBS": WorkerField.FAILED_JOBS,
    }
    for name in ("STATUS", "DATA", "ORIGIN", "STARTED_AT", "ENDED_AT", "WORKER_NAME",
                 "EXC_INFO", "SESSION", "TASKS", "INCARNATION", "LEASE_S"):
        constants[f"F_JOB_{name}"] = getattr(JobField, name)
    for enum in (ApplyResult, LeaderResult, LeaseResult, ReapResult):
        for name, member in enum.__members__.items():  # aliases (equal values) too
            constants[name] = int(member)
    return "".join(f"local {name} = {_lua_literal(v)}\n" for name, v in constants.items())


def _read(name: str) -> str:
    return resources.files("graflow_dist.broker").joinpath("lua", f"{name}.lua").read_text()


@lru_cache(maxsize=64)
def source(name: str, keyspace: Keyspace) -> str:
    """The full text of script ``name`` as Redis runs it."""
    return header(keyspace) + _read("lib") + _read(name)


class Scripts:
    """The scripts, callable on a client (EVALSHA, loaded on demand) or queued on a
    pipeline (plain EVAL: no NOSCRIPT failure inside a transaction after a Redis
    restart emptied the script cache)."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace) -> None:
        self.client = client
        self._sources = {name: source(name, keyspace) for name in SCRIPT_NAMES}
        self._scripts = {name: client.register_script(src) for name, src in self._sources.items()}

    def call(self, name: str, keys: list[str], args: list[Any],
             pipe: redis.client.Pipeline | None = None) -> Any:
        if pipe is not None:
            return pipe.eval(self._sources[name], len(keys), *keys, *args)
        return self._scripts[name](keys=keys, args=args)


def as_args(values: list[Any]) -> list[bytes | str]:
    """Stringify command arguments (Lua turns floats into lossy numbers otherwise)."""
    out: list[bytes | str] = []
    for v in values:
        if isinstance(v, bytes | str):
            out.append(v)
        elif isinstance(v, float):
            out.append(repr(v))
        else:
            out.append(str(v))
    return out
