"""RunStore: runs as Redis holds them: submitted, looked up, listed, loaded, expired."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import ResponseError

from graflow_dist.broker.channel_data import read_channel
from graflow_dist.broker.code import DEFAULT_BLOB_TTL_S, CodeStore
from graflow_dist.broker.commit import chunked
from graflow_dist.broker.connection import is_wrong_type
from graflow_dist.broker.events import EventLog
from graflow_dist.broker.feedback import FeedbackStore
from graflow_dist.broker.frontier import decode_started, load_run, load_runs, shape_commands
from graflow_dist.broker.keys import ENDED_FIELD, HASH, SET, Keyspace, RunField
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.repair import KeyRepair, Quarantined
from graflow_dist.broker.scripts import (
    ExpireResult,
    Scripts,
    SubmitResult,
    pack_command,
)
from graflow_dist.broker.submission import Submission, submission_commands
from graflow_dist.errors import (
    CodeMissingError,
    GraflowError,
    RunActiveError,
    UnknownSessionError,
    WireError,
    WrongTypeError,
)
from graflow_dist.names import is_session_id
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.specs import GraphShape, NodeShape
from graflow_dist.wire.messages import SUBMIT, Event, unpackb
from graflow_dist.wire.specs import node_shape_from_dict

# Graphs with more nodes have their shape written ahead of the submission, in chunks.
STAGED_SHAPE_NODES = 5_000
_SHAPE_CHUNK_NODES = 500
_STAGED_SHAPE_TTL_S = 3600
# Channel keys given a TTL per `expire_run` call: a few ms of Redis time each.
_EXPIRE_CHUNK = 2000


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
        self.scripts = Scripts(client, keyspace)

    # --- submitting -------------------------------------------------------------------

    def submit(self, submission: Submission) -> None:
        """Store a new incarnation of a session (see `Submission`) and announce it, in
        one round trip (a large graph's shape is written ahead, in chunks).

        Raises `RunActiveError` when the session is still active (also when another
        client submitted it first) and `CodeMissingError` when the code it counts on
        being stored is gone (then it must be stored again).
        """
        if self.submit_many([submission]):
            raise CodeMissingError(f"the code of graph {submission.record.graph_hash} is "
                                   "no longer in Redis: store it again")

    def submit_many(self, submissions: list[Submission]) -> list[int]:
        """`submit` several, in one round trip; returns the indices of those refused
        because code they count on is gone. Raises `RunActiveError` naming the sessions
        still active (the others went through)."""
        calls = []
        for sub in submissions:
            record, shape = sub.record, sub.shape
            keys = self.keyspace.run(record.session_id)
            if len(shape.nodes) > STAGED_SHAPE_NODES and sub.staged_shape is None:
                sub.staged_shape = keys.staged_shape(record.incarnation)
                self._stage_shape(sub.staged_shape, shape)
            code_keys = ([] if sub.manifest is not None
                         else self.code.keys(record.graph_hash, sub.code))
            payload = b"".join(pack_command(c) for c in chunked(submission_commands(
                self.keyspace, self.events, sub)))
            calls.append(([keys.meta, keys.channel_index, *code_keys],
                          [int(sub.replace_channel), int(sub.keep_channel),
                           keys.channel_prefix, DEFAULT_BLOB_TTL_S, record.incarnation,
                           payload]))
        try:
            try:
                replies = self._send_submissions(calls)
            except WrongTypeError:
                # Someone else wrote keys we write, with another type: nothing was
                # written. Move them aside, then submit again.
                expected: dict[str, str] = {}
                for sub in submissions:
                    expected.update(self.keyspace.key_types(sub.record.queue))
                    expected.update(self.keyspace.run(sub.record.session_id).key_types())
                self.repair.quarantine_typed(expected)
                replies = self._send_submissions(calls)
        except BaseException:
            self._drop_staged(submissions)
            raise
        refused = [sub for sub, reply in zip(submissions, replies, strict=True)
                   if reply[0] != SubmitResult.SUBMITTED]
        self._drop_staged(refused)
        active = [f"{sub.record.session_id} ({reply[1].decode(errors='replace')})"
                  for sub, reply in zip(submissions, replies, strict=True)
                  if reply[0] == SubmitResult.RUN_ACTIVE]
        if active:
            raise RunActiveError(f"run {', '.join(active)} is already active on this "
                                 "cluster; cancel it first")
        return [i for i, reply in enumerate(replies) if reply[0] == SubmitResult.CODE_MISSING]

    def _send_submissions(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        if len(calls) == 1:
            return [self.scripts.call("submit_run", *calls[0])]
        return self.scripts.call_many("submit_run", calls)

    def _drop_staged(self, submissions: list[Submission]) -> None:
        staged = [sub.staged_shape for sub in submissions if sub.staged_shape is not None]
        for sub in submissions:
            sub.staged_shape = None  # written again if the submission is sent again
        if staged:
            self.client.delete(*staged)

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
        exist (expired, wiped) or whose status is unreadable (also a record of the
        wrong type: loading that run fails it, and one damaged run stops no reader)."""
        pipe = self.client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.hget(self.keyspace.run(sid).meta, RunField.STATUS)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, ResponseError) and not is_wrong_type(reply):
                raise reply
        return {sid: None if isinstance(raw, ResponseError)
                else RunStatus.parse((raw or b"").decode(errors="replace"))
                for sid, raw in zip(session_ids, replies, strict=True)}

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

    def load_many(self, session_ids: list[str]
                  ) -> dict[str, tuple[RunRecord, GraphShape, FrontierSnapshot] | GraflowError]:
        """`load` for several runs in one round trip; a run that cannot be loaded maps
        to its error (a `WrongTypeError` for all of them if any key is of the wrong
        type: each is then loaded on its own, to know whose)."""
        if not session_ids:
            return {}
        runs = [self.keyspace.run(sid) for sid in session_ids]
        try:
            return load_runs(self.client, runs)
        except ResponseError as exc:
            if not is_wrong_type(exc):
                raise
        out: dict[str, tuple[RunRecord, GraphShape, FrontierSnapshot] | GraflowError] = {}
        for sid in session_ids:
            try:
                out[sid] = self.load(sid)
            except GraflowError as err:
                out[sid] = err
        return out

    def started(self, events: list[Event]
                ) -> dict[str, tuple[RunRecord, GraphShape, FrontierSnapshot] | None
                          | WireError]:
        """`load` of small runs their clients started, from their submission events
        (`Event.started`, written with the run), for each run Redis confirms is still
        that incarnation and running (one HMGET each, all in one round trip): None for
        a run that is not (ended, failed on takeover, submitted again: read it), a
        `WireError` for an event whose run does not decode (read it too)."""
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.hmget(self.keyspace.run(event.session_id).meta,
                       [RunField.STATUS, RunField.INCARNATION])
        out: dict[str, tuple[RunRecord, GraphShape, FrontierSnapshot] | None
                  | WireError] = {}
        for event, stored in zip(events, pipe.execute(raise_on_error=False), strict=True):
            if event.kind != SUBMIT:
                out[event.session_id] = WireError(f"a {event.kind} event carries no run")
                continue
            try:
                run = decode_started(event.session_id, event.started)
            except WireError as exc:
                out[event.session_id] = exc
                continue
            record = run[0]
            same = [record.status.value.encode(), record.incarnation.encode()]
            out[event.session_id] = run if stored == same else None
        return out

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

    def outcome_when_ended(self, session_id: str, block_s: float, channel_key: str = ""
                           ) -> tuple[RunRecord, bytes | None]:
        """`wait_ended`, then the run's `record` and the raw value of its channel key
        ``channel_key``, in one round trip: the record once the run ended, or as it
        stands after ``block_s``; the value read after the record (None when absent,
        not a plain value or not asked for), so a waiter that guessed which task ends
        the run needs no second round trip for its result."""
        keys = self.keyspace.run(session_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.xread({keys.ended: "0-0"}, count=1, block=max(1, int(block_s * 1000)))
        pipe.hgetall(keys.meta)
        if channel_key:
            pipe.get(keys.channel(channel_key))
        ended, meta, *result = pipe.execute(raise_on_error=False)
        for reply in (ended, meta):
            if isinstance(reply, Exception) and not (isinstance(reply, ResponseError)
                                                     and is_wrong_type(reply)):
                raise reply
        if isinstance(meta, ResponseError):
            raise self.repair.wrong_type_error(f"run {session_id!r} record", {keys.meta: HASH})
        if isinstance(ended, ResponseError):
            time.sleep(block_s)  # not a stream (someone else wrote it): just wait
        if not meta:
            raise UnknownSessionError(session_id)
        raw = result[0] if result and isinstance(result[0], bytes) else None
        return RunRecord.from_meta(session_id, meta), raw

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

    def expiring(self, limit: int) -> list[str]:
        """Up to ``limit`` ended runs, oldest first, whose data still waits for its TTL
        (the commit that ends a run lists it; `expire` takes it off)."""
        raw = self.client.zrange(self.keyspace.expiring_runs, 0, limit - 1)
        return [sid.decode(errors="replace") for sid in raw]

    def not_expiring(self, session_ids: list[str]) -> None:
        """Take runs off the list of `expiring`: live again, gone, or not readable."""
        if session_ids:
            self.client.zrem(self.keyspace.expiring_runs, *session_ids)

    def expire(self, record: RunRecord, ttl_s: int, code: Iterable[str] = ()) -> bool:
        """Give a finished run's data and its graph (manifest and the code blobs
        ``code``) a TTL; False (nothing changes) if the session was submitted again
        meanwhile, so its data is live."""
        return self.expire_many([(record, list(code))], ttl_s)[0]

    def expire_many(self, finished: list[tuple[RunRecord, list[str]]], ttl_s: int
                    ) -> list[bool]:
        """`expire` for several runs, one round trip per `_EXPIRE_CHUNK` channel keys
        of the largest (the channel's keys come from the run's channel index: no SCAN
        of the keyspace, and no script call blocks Redis for long)."""
        calls = []
        for record, code in finished:
            keys = self.keyspace.run(record.session_id)
            calls.append(([keys.meta, keys.channel_index, keys.feedback,
                           self.keyspace.expiring_runs],
                          [record.incarnation, ttl_s, keys.channel_prefix],
                          [record.session_id, *keys.frontier_keys(), keys.tasks,
                           *self.code.keys(record.graph_hash, code)]))
        expired = [False] * len(calls)
        cursors = {i: "0" for i in range(len(calls))}
        while cursors:
            replies = self.scripts.call_many("expire_run", [
                (calls[i][0], [*calls[i][1], cursor, _EXPIRE_CHUNK, *calls[i][2]])
                for i, cursor in cursors.items()])
            more = {}
            for i, (result, cursor) in zip(cursors, replies, strict=True):
                if result == ExpireResult.MORE:
                    more[i] = cursor
                expired[i] = result == ExpireResult.EXPIRED
            cursors = more
        return expired
