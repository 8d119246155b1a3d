"""RunStore: runs as Redis holds them: submitted, looked up, listed, loaded, expired."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import ResponseError, WatchError

from graflow_dist.broker.channel_data import (
    channel_key_names,
    clear_channel,
    queue_channel_writes,
    read_channel,
)
from graflow_dist.broker.code import DEFAULT_BLOB_TTL_S, CodeStore
from graflow_dist.broker.connection import is_wrong_type
from graflow_dist.broker.events import EventLog
from graflow_dist.broker.feedback import FeedbackStore
from graflow_dist.broker.frontier import frontier_commands, load_run, shape_commands
from graflow_dist.broker.keys import (
    ENDED_FIELD,
    HASH,
    SET,
    STREAM,
    ZSET,
    Keyspace,
    RunField,
    RunKeys,
)
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.repair import KeyRepair, Quarantined
from graflow_dist.errors import GraflowError, RunActiveError, UnknownSessionError, WireError
from graflow_dist.names import is_session_id
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import GraphShape, NodeShape
from graflow_dist.wire.messages import RESUME, SUBMIT, Event, unpackb
from graflow_dist.wire.specs import node_shape_from_dict

_SUBMIT_ATTEMPTS = 5
# Graphs with more nodes have their shape written ahead of the submission, in chunks.
STAGED_SHAPE_NODES = 5_000
_SHAPE_CHUNK_NODES = 500
_STAGED_SHAPE_TTL_S = 3600


class RunStore:
    """The runs of one deployment.

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
        self.events = EventLog(client, keyspace)
        self.feedback = FeedbackStore(client, keyspace)
        self.repair = KeyRepair(client, keyspace)
        self.code = CodeStore(client, keyspace)

    # --- submitting -------------------------------------------------------------------

    def submit(self, record: RunRecord, manifest: bytes | None, shape: GraphShape,
               frontier: FrontierSnapshot | None, channel_values: dict[str, bytes],
               *, replace_channel: bool, dynamic: dict[str, bytes] | None = None,
               keep_channel: bool = False) -> None:
        """Store a new incarnation of ``record``'s session with its graph's manifest
        (None: already stored; its code blobs must be, see `CodeStore`), shape,
        frontier (a resume) and channel data, and announce it, in one transaction.
        ``dynamic`` are tasks added by an earlier incarnation (signed blobs);
        ``keep_channel`` lifts the TTL an earlier incarnation's end gave the channel.

        Raises `RunActiveError` when the session is still active, or when another
        client submitted it at the same moment.
        """
        keys = self.keyspace.run(record.session_id)
        # Deployment keys someone overwrote with another type would half-apply the
        # transaction below (MULTI does not stop at a failing command): move them
        # aside first, and if one is planted meanwhile, again, then write it all again.
        ks = self.keyspace
        expected = {ks.active_runs: SET, ks.all_runs: ZSET, ks.events: STREAM}
        self.repair.quarantine_typed(expected)
        staged = None
        if len(shape.nodes) > STAGED_SHAPE_NODES:
            staged = keys.staged_shape(record.incarnation)
            self._stage_shape(staged, shape)
        try:
            # Optimistic: a concurrent change of the run's record (another client's
            # submission, the coordinator expiring the previous incarnation) means: look
            # again. Two clients submitting one session: one of them gets through.
            for _attempt in range(_SUBMIT_ATTEMPTS):
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        self._submit_watched(pipe, keys, record, manifest, shape, frontier,
                                             channel_values, replace_channel, dynamic or {},
                                             keep_channel, staged)
                        staged = None  # renamed into place
                        return
                    except WatchError:
                        continue
                    except ResponseError as exc:
                        if not is_wrong_type(exc):
                            raise
                        self.repair.quarantine_typed({**expected, **keys.key_types()})
            raise RunActiveError(f"run {record.session_id} kept changing while it was "
                                 "submitted; is another client submitting it? attach to it "
                                 "instead")
        finally:
            if staged is not None:
                self.client.delete(staged)

    def _stage_shape(self, staged: str, shape: GraphShape) -> None:
        """Write a large graph's shape ahead of its submission, a chunk per round trip,
        under a key of its own (renamed into place by the submission): the client never
        holds the whole shape encoded at once."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(staged)
        queued = 0
        for cmd in shape_commands(staged, shape, chunk=_SHAPE_CHUNK_NODES):
            pipe.execute_command(*cmd)
            queued += 1
            if queued % 8 == 0:
                pipe.execute()
        pipe.expire(staged, _STAGED_SHAPE_TTL_S)  # gone if the submission never happens
        pipe.execute()

    def _submit_watched(self, pipe: Any, keys: RunKeys, record: RunRecord,
                        manifest: bytes | None,
                        shape: GraphShape, frontier: FrontierSnapshot | None,
                        channel_values: dict[str, bytes], replace_channel: bool,
                        dynamic: dict[str, bytes], keep_channel: bool,
                        staged: str | None) -> None:
        session_id = record.session_id
        pipe.watch(keys.meta)
        try:
            raw_status = pipe.hget(keys.meta, RunField.STATUS)
        except ResponseError as exc:
            if not is_wrong_type(exc):
                raise
            raw_status = None  # not a record at all: replaced below
        status = RunStatus.parse((raw_status or b"").decode(errors="replace"))
        ours = pipe.hget(keys.meta, RunField.INCARNATION) == record.incarnation.encode() \
            if raw_status is not None else False  # our own attempt, written in part
        if status is not None and not status.finished and not ours:
            raise RunActiveError(f"run {session_id} is already active on this cluster "
                                 f"(status {status.value}); cancel it first")
        if replace_channel:
            # The run's channel becomes exactly the given values (an earlier incarnation
            # of this session, e.g. another resume, may have left keys behind).
            clear_channel(self.client, keys)
        kept = list(channel_key_names(self.client, keys)) if keep_channel else []
        pipe.multi()
        if manifest is not None:
            pipe.set(self.keyspace.blob(record.graph_hash), manifest, ex=DEFAULT_BLOB_TTL_S)
        pipe.delete(*keys.frontier_keys())
        if frontier is None:  # a new run: no task history (a resume keeps it)
            pipe.delete(keys.tasks)
        else:
            pipe.persist(keys.tasks)
        if dynamic:
            pipe.hset(keys.dynamic, mapping=dynamic)
        for key in kept:
            pipe.persist(key)
        pipe.hset(keys.meta, mapping=record.settings_meta())
        if staged is not None:
            pipe.rename(staged, keys.shape)
            pipe.persist(keys.shape)
        else:
            for cmd in shape_commands(keys.shape, shape):
                pipe.execute_command(*cmd)
        if frontier is not None:
            for cmd in frontier_commands(keys, frontier):
                pipe.execute_command(*cmd)
        queue_channel_writes(pipe, keys, channel_values)
        pipe.sadd(self.keyspace.active_runs, session_id)
        pipe.zadd(self.keyspace.all_runs, {session_id: record.submitted_at or time.time()})
        self.events.publish(Event(RESUME if frontier is not None else SUBMIT, session_id), pipe)
        pipe.execute()

    # --- reading ------------------------------------------------------------------------

    def exists(self, session_id: str) -> bool:
        return bool(self.client.exists(self.keyspace.run(session_id).meta))

    def record(self, session_id: str) -> RunRecord:
        """The run's record; `UnknownSessionError` if there is none, `WireError` if it
        is damaged."""
        meta_key = self.keyspace.run(session_id).meta
        with self._typed(f"run {session_id!r} record", {meta_key: HASH}):
            meta = self.client.hgetall(meta_key)
        if not meta:
            raise UnknownSessionError(session_id)
        return RunRecord.from_meta(session_id, meta)

    @contextmanager
    def _typed(self, what: str, expected: dict[str, str]) -> Iterator[None]:
        """Turn a WRONGTYPE reply while using ``expected``'s keys into a
        `WrongTypeError` naming them."""
        try:
            yield
        except ResponseError as exc:
            if not is_wrong_type(exc):
                raise
            raise self.repair.wrong_type_error(what, expected) from None

    def statuses(self, session_ids: list[str]) -> dict[str, RunStatus | None]:
        """The status of each run, in one round trip; None for a run that does not
        exist (expired, wiped) or whose status is unreadable."""
        pipe = self.client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.hget(self.keyspace.run(sid).meta, RunField.STATUS)
        return {sid: RunStatus.parse((raw or b"").decode(errors="replace"))
                for sid, raw in zip(session_ids, pipe.execute(), strict=True)}

    def recent(self, limit: int = 50, offset: int = 0) -> list[RunRecord]:
        """Runs newest first (damaged records are left out)."""
        if limit <= 0:
            return []
        raw_ids = self.client.zrevrange(self.keyspace.all_runs, offset, offset + limit - 1)
        ids = [s.decode(errors="replace") for s in raw_ids]
        ids = [sid for sid in ids if is_session_id(sid)]
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(self.keyspace.run(sid).meta)
        records = []
        for sid, meta in zip(ids, pipe.execute(raise_on_error=False), strict=True):
            if not meta or isinstance(meta, Exception):
                continue
            try:
                records.append(RunRecord.from_meta(sid, meta))
            except WireError:
                continue
        return records

    def load(self, session_id: str) -> tuple[RunRecord, GraphShape, FrontierSnapshot]:
        """Record, graph shape and frontier of a run, in one round trip (`WireError`,
        or its `WrongTypeError`, if anything stored is damaged)."""
        keys = self.keyspace.run(session_id)
        with self._typed(f"run {session_id!r}", keys.key_types()):
            return load_run(self.client, keys)

    def active_ids(self) -> tuple[list[str], list[bytes]]:
        """The active runs' session ids, and the members of the active set that are no
        session id at all (someone else wrote them)."""
        with self._typed("the active runs", {self.keyspace.active_runs: SET}):
            members = self.client.smembers(self.keyspace.active_runs)
        valid: list[str] = []
        invalid: list[bytes] = []
        for raw in members:
            text = raw.decode(errors="replace")
            if is_session_id(text):
                valid.append(text)
            else:
                invalid.append(raw)
        return sorted(valid), invalid

    def forget_active(self, members: list[bytes]) -> None:
        """Remove members from the active set (ones that are no session id)."""
        if members:
            self.client.srem(self.keyspace.active_runs, *members)

    def node_shapes(self, session_id: str, node_ids: list[str]) -> dict[str, NodeShape]:
        """The shapes of the run's nodes ``node_ids`` that exist (its graph's and those
        added while it ran)."""
        if not node_ids:
            return {}
        key = self.keyspace.run(session_id).shape
        with self._typed(f"run {session_id!r} shape", {key: HASH}):
            raw = self.client.hmget(key, node_ids)
        what = f"run {session_id!r} shape"
        return {n: node_shape_from_dict(unpackb(v, what), what)
                for n, v in zip(node_ids, raw, strict=True) if v is not None}

    def dynamic_ids(self, session_id: str) -> list[str]:
        """The tasks added while the run ran (``next_task``), sorted."""
        key = self.keyspace.run(session_id).dynamic
        with self._typed(f"run {session_id!r} dynamic tasks", {key: HASH}):
            raw = self.client.hkeys(key)
        return sorted(k.decode(errors="replace") for k in raw)

    def dynamic_blobs(self, session_id: str) -> dict[str, bytes]:
        """Tasks added while the run ran (``next_task``), signed and cloudpickled."""
        key = self.keyspace.run(session_id).dynamic
        with self._typed(f"run {session_id!r} dynamic tasks", {key: HASH}):
            raw = self.client.hgetall(key)
        return {k.decode(errors="replace"): v for k, v in raw.items()}

    def dynamic_blob(self, session_id: str, task_id: str) -> bytes | None:
        key = self.keyspace.run(session_id).dynamic
        with self._typed(f"run {session_id!r} dynamic tasks", {key: HASH}):
            return self.client.hget(key, task_id)

    def channel_values(self, session_id: str) -> dict[str, bytes]:
        """The run's channel, every value still encoded."""
        return read_channel(self.client, self.keyspace.run(session_id))

    def wait_ended(self, session_id: str, block_s: float) -> None:
        """Block up to ``block_s`` for the run's end (the coordinator appends to its
        ``ended`` stream; XREAD does not consume, so any number of waiters wake)."""
        try:
            self.client.xread({self.keyspace.run(session_id).ended: "0-0"}, count=1,
                              block=max(1, int(block_s * 1000)))
        except ResponseError as exc:
            if not is_wrong_type(exc):
                raise
            time.sleep(block_s)  # not a stream (someone else wrote it): just wait

    # --- writing (coordinator) ------------------------------------------------------------

    def fail(self, session_id: str, error: GraflowError, *, recreate: bool = False
             ) -> list[Quarantined]:
        """End a run that cannot be driven (e.g. its stored state is damaged) as
        failed, so that its waiters return; its keys that hold the wrong type are
        quarantined first (returned). A run without a record is only dropped from the
        active set (its data expired, or it never existed), unless ``recreate`` (its
        record was quarantined: a failed record says why)."""
        keys = self.keyspace.run(session_id)
        moved = self.repair.quarantine_typed(keys.key_types())
        if not (moved or recreate) and not self.client.exists(keys.meta):
            self.client.srem(self.keyspace.active_runs, session_id)
            return moved
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(keys.meta, mapping={
            RunField.STATUS: RunStatus.FAILED.value, RunField.ERROR: f"cannot load run: {error}",
            RunField.ERROR_TYPE: type(error).__name__,
            RunField.FINISHED_AT: repr(time.time())})
        pipe.srem(self.keyspace.active_runs, session_id)
        pipe.xadd(keys.ended, {ENDED_FIELD: RunStatus.FAILED.value})
        pipe.execute()
        return moved

    def note_checkpoint(self, session_id: str, path: str | None = None,
                        error: str | None = None) -> None:
        """Record where the run's last checkpoint went, or why it failed."""
        field = RunField.LAST_CHECKPOINT if error is None else RunField.CHECKPOINT_ERROR
        meta = self.keyspace.run(session_id).meta
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(meta)
                if pipe.type(meta) != HASH.encode():
                    return  # the run's data is gone (expired, wiped): never recreate it
                pipe.multi()
                pipe.hset(meta, field, error or path or "")
                pipe.execute()
            except WatchError:
                return  # replaced meanwhile by a new submission: not its checkpoint

    def expire(self, record: RunRecord, ttl_s: int, code: Iterable[str] = ()) -> bool:
        """Give a finished run's data and its graph (manifest and the code blobs
        ``code``) a TTL; False (nothing changes) if the session was submitted again
        meanwhile, so its data is live."""
        keys = self.keyspace.run(record.session_id)
        channel_keys = list(channel_key_names(self.client, keys))
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.meta)
                if pipe.type(keys.meta) != HASH.encode():
                    return False
                current = pipe.hget(keys.meta, RunField.INCARNATION)
                if (current or b"").decode(errors="replace") != record.incarnation:
                    return False
                pipe.multi()
                for key in [*keys.frontier_keys(), keys.tasks, *channel_keys,
                            *self.code.keys(record.graph_hash, code)]:
                    pipe.expire(key, ttl_s)
                pipe.execute()
            except WatchError:
                return False  # changed meanwhile: a new submission owns the data now
        self.feedback.expire(record.session_id, ttl_s)
        return True
