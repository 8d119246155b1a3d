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

import msgpack
import redis
from redis.exceptions import NoScriptError

from graflow_dist.broker.keys import (
    EVENT_FIELD,
    REAPER,
    RQ_JOB,
    RQ_WIP,
    JobField,
    Keyspace,
    RunField,
    WorkerField,
)
from graflow_dist.errors import PermissionDeniedError, WrongTypeError
from graflow_dist.scheduler.events import FINISHED_STATUSES, RunStatus

# The longest command a commit may carry. Lua's unpack() fails beyond ~8,000 values
# (LUAI_MAXCSTACK), half-way through a commit; the coordinator splits variadic commands
# into pieces of at most this many arguments and the script refuses anything longer.
MAX_COMMAND_ARGS = 1000
# RQ's started registry holds a claimed job this long past its lease, so that RQ's own
# clean-up never fails one of our jobs (our reaper decides).
RQ_WIP_EXTRA_S = 86400
# How long a malformed job stays in RQ's failed registry.
RQ_FAILED_TTL_S = 365 * 86400
# How long a key moved aside for holding the wrong type is kept for inspection.
QUARANTINE_TTL_S = 7 * 86400
# Sanity bounds on numbers the scripts read from job hashes (anything else is ignored).
MAX_JOB_TASKS = 1_000_000
MAX_LEASE_S = 86400


class ApplyResult(IntEnum):
    """``fenced_apply``: 0 or more is the number of commands that failed inside."""

    NOT_LEADER = -1
    STATE_BEHIND = -2
    COMMAND_TOO_LONG = -3
    STAGED_INCOMPLETE = -4  # a staged payload is not as long as the leader wrote it
    COMMITTED_BEFORE = -5  # this commit landed already: sent again after a lost reply


class LeaderResult(IntEnum):
    """``leader_acquire`` returns an epoch (> 0) or NOT_ACQUIRED; ``leader_release``
    RELEASED or NOT_HELD."""

    NOT_ACQUIRED = 0
    NOT_HELD = 0
    RELEASED = 1


class LeaseResult(IntEnum):
    """``finish``, ``fail_job`` and ``report`` (HELD: mode 'held', still ours;
    CONTINUED: mode 'continue'; mode 'ahead' releases, as 'release' or 'claim')."""

    LEASE_LOST = 0
    RELEASED = 1
    HELD = 1
    CONTINUED = 2  # mode 'continue': the proposal was recorded, the job stays ours


class ReapResult(IntEnum):
    """``reap_mark`` and ``lease_grace`` (else a list / a count)."""

    NOT_LEADER = -1


class RefusedResult(IntEnum):
    """First element of a list any script may return instead of its result, having
    written nothing: ``[WRONG_TYPE, key, type it holds, ...]`` (someone else wrote a
    key the script needs; `quarantine` moves it aside), or ``[PERMISSION_DENIED,
    command, key]`` (the ACL refuses a command of a commit)."""

    WRONG_TYPE = -9
    PERMISSION_DENIED = -8


class SubmitResult(IntEnum):
    """``submit_run`` (the first element of its reply)."""

    SUBMITTED = 1
    RUN_ACTIVE = -1
    CODE_MISSING = -2


class ExpireResult(IntEnum):
    """``expire_run``."""

    RESUBMITTED = 0
    EXPIRED = 1
    MORE = 2


SCRIPT_NAMES = ("fenced_apply", "leader_acquire", "leader_release", "claim", "extend",
                "finish", "fail_job", "report", "reap_mark", "lease_grace", "quarantine",
                "expire_run", "submit_run", "prune_index", "channel_push")


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
        "QUARANTINE_HEAD": keyspace.quarantine_head, "QUARANTINE_TTL_S": QUARANTINE_TTL_S,
        "MAX_JOB_TASKS": MAX_JOB_TASKS, "MAX_LEASE_S": MAX_LEASE_S,
        "FINISHED_STATUSES": "," + ",".join(sorted(s.value for s in FINISHED_STATUSES)) + ",",
        "F_RUN_RUNNING": RunField.RUNNING, "F_RUN_STATUS": RunField.STATUS,
        "F_RUN_INCARNATION": RunField.INCARNATION, "F_EVENT": EVENT_FIELD,
        "F_WORKER_STATE": WorkerField.STATE,
        "F_WORKER_SUCCESSFUL_JOBS": WorkerField.SUCCESSFUL_JOBS,
        "F_WORKER_FAILED_JOBS": WorkerField.FAILED_JOBS,
        "FEEDBACK_KEY_HEAD": keyspace.feedback(""), "FEEDBACK_PENDING": keyspace.feedback_pending,
    }
    for name in ("STATUS", "DATA", "ORIGIN", "STARTED_AT", "ENDED_AT", "WORKER_NAME",
                 "EXC_INFO", "SESSION", "TASKS", "INCARNATION", "LEASE_S"):
        constants[f"F_JOB_{name}"] = getattr(JobField, name)
    for enum in (ApplyResult, LeaderResult, LeaseResult, ReapResult, RefusedResult,
                 ExpireResult, SubmitResult):
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
        """Run script ``name`` (queued on ``pipe`` if given: then pass its result to
        `refused` yourself). Raises `WrongTypeError` or `PermissionDeniedError` when
        the script refused to write anything."""
        if pipe is not None:
            return pipe.eval(self._sources[name], len(keys), *keys, *args)
        return refused(self._scripts[name](keys=keys, args=args), name)

    def call_many(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run script ``name`` once per ``(keys, args)`` in one round trip (not atomic
        as a whole; by hash, the script's text sent again only to a Redis that lost
        it); the replies, as `call` returns them."""
        sha = self._scripts[name].sha
        replies = self._pipelined(sha, calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis restarted meanwhile: those never ran
            self.client.script_load(self._sources[name])
            for i, reply in zip(missing, self._pipelined(sha, [calls[i] for i in missing]),
                                strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [refused(reply, name) for reply in replies]

    def _pipelined(self, sha: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)


def refused(result: Any, name: str) -> Any:
    """``result`` of script ``name``, unless the script refused (see `RefusedResult`):
    then the error saying why."""
    if not (isinstance(result, list) and result and isinstance(result[0], int)
            and result[0] in (RefusedResult.WRONG_TYPE, RefusedResult.PERMISSION_DENIED)):
        return result
    words = [w.decode(errors="replace") if isinstance(w, bytes) else str(w)
             for w in result[1:]]
    if result[0] == RefusedResult.PERMISSION_DENIED:
        command, key = (words + ["", ""])[:2]
        raise PermissionDeniedError(
            f"{name}: the Redis user may not run {command} on {key!r}; nothing was written. "
            "Grant the ACL in docs/security.md")
    keys = dict(zip(words[0::2], words[1::2], strict=False))
    shown = ", ".join(f"{k} holds a {t}" for k, t in keys.items())
    raise WrongTypeError(f"{name}: keys of the wrong type ({shown}); nothing was written",
                         keys)


def as_args(values: list[Any]) -> list[bytes | str]:
    """Stringify command arguments (Lua turns floats into lossy numbers otherwise)."""
    out: list[bytes | str] = []
    for v in values:
        kind = type(v)
        if kind is str or kind is bytes:
            out.append(v)
        elif kind is int:
            out.append(str(v))
        elif kind is float:
            out.append(repr(v))
        elif isinstance(v, bytes | str):
            out.append(v)
        elif isinstance(v, float):
            out.append(repr(v))
        else:
            out.append(str(v))
    return out


def pack_command(command: list[Any]) -> bytes:
    """One command as a script's payload holds it (msgpack; Redis's Lua msgpack has no
    bin type, so bytes go as raw strings)."""
    return msgpack.packb(as_args(command), use_bin_type=False)
