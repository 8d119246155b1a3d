"""The Redis layout of a run's frontier: load it whole, persist it as deltas.

Writers produce command lists (``[["HSET", key, field, value], ...]``) that the caller
commits in one fenced transaction together with the jobs it enqueues, so Redis always
holds a consistent frontier.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis

from graflow_dist.broker.keys import RunField, RunKeys
from graflow_dist.broker.record import RunRecord
from graflow_dist.errors import GraflowError, UnknownSessionError, WireError
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.frontier import FrontierSnapshot, GroupProgress
from graflow_dist.scheduler.groups import GroupRun
from graflow_dist.scheduler.journal import Journal
from graflow_dist.scheduler.specs import GraphShape, NodeShape, TaskSpec, copy_shape
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.fields import int_text, mapping, submap
from graflow_dist.wire.messages import packb, unpackb
from graflow_dist.wire.specs import (
    decode_spec,
    encode_spec,
    frontier_from_dict,
    group_progress_from_dict,
    node_shape_from_dict,
    parked_from_dict,
)

Command = list[Any]
_SHAPE_SCAN = 2000  # shape entries read per round trip
# More pending specs than this are encoded only as the commit is sent, in chunks.
DEFERRED_SPECS = 1000
_SPEC_CHUNK = 500
# A run its client started, of at most this many nodes, travels whole in its
# submission event: the coordinator takes it over without reading it back.
STARTED_EVENT_MAX_NODES = 64


class Deferred:
    """Commands made only when a commit is encoded, from data captured when the
    commit was put together: a large fan-out's specs are never all encoded at once."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Iterable[Command]]) -> None:
        self.make = make


def expand(commands: Iterable[Command | Deferred]) -> Iterator[Command]:
    """The commands of a list that may hold `Deferred` parts, in order."""
    for command in commands:
        if isinstance(command, Deferred):
            yield from command.make()
        else:
            yield command


def shape_commands(key: str, shape: GraphShape, nodes: list[str] | None = None, *,
                   chunk: int = 0) -> Iterator[Command]:
    """HSETs of the nodes' shapes into hash ``key`` (all, or ``nodes``), ``chunk``
    nodes per command (0: one command), made as they are consumed."""
    chosen = list(shape.nodes) if nodes is None else nodes
    step = chunk or max(1, len(chosen))
    for start in range(0, len(chosen), step):
        cmd: Command = ["HSET", key]
        for node_id in chosen[start:start + step]:
            cmd += [node_id, packb(shape.nodes[node_id].to_dict())]
        yield cmd


def frontier_commands(keys: RunKeys, frontier: FrontierSnapshot) -> list[Command]:
    """Replace a run's whole frontier (a submission from a checkpoint)."""
    cmds: list[Command] = [["DEL", *keys.state_keys()]]
    if frontier.completed_tasks:
        cmd: Command = ["ZADD", keys.completed]
        for i, task_id in enumerate(frontier.completed_tasks):
            cmd += [i, task_id]
        cmds.append(cmd)
    for key, members in ((keys.released, frontier.released), (keys.active, frontier.active)):
        if members:
            cmds.append(["SADD", key, *members])
    _hset(cmds, keys.pending, {s.token: packb(encode_spec(s)) for s in frontier.pending_tasks})
    _hset(cmds, keys.cycles, dict(frontier.cycle_counts))
    _hset(cmds, keys.groups, {g: packb(p.to_dict()) for g, p in frontier.groups.items()})
    _hset(cmds, keys.crashes, {t: packb(w) for t, w in frontier.crash_workers.items()})
    _hset(cmds, keys.parked, {k: packb(p.to_dict()) for k, p in frontier.parked.items()})
    cmds.append(["HSET", keys.meta, RunField.STEPS, frontier.steps,
                 RunField.DISPATCH_SEQ, frontier.dispatch_seq])
    return cmds


def journal_commands(keys: RunKeys, scheduler: Scheduler, journal: Journal,
                     progress: dict[str, Any] | None = None) -> list[Command | Deferred]:
    """Persist what changed in ``scheduler`` since the last drain (``progress``: its
    `progress_meta`, when the caller also sends it elsewhere)."""
    cmds: list[Command | Deferred] = []
    if journal.pending_del:
        cmds.append(["HDEL", keys.pending, *journal.pending_del])
    puts = list(journal.pending_put.values())
    if len(puts) > DEFERRED_SPECS:
        cmds.append(Deferred(lambda: _spec_puts(keys.pending, puts)))
    else:
        cmds += _spec_puts(keys.pending, puts)
    if journal.completed:
        base = len(scheduler.completed) - len(journal.completed)
        cmd: Command = ["ZADD", keys.completed, "NX"]
        for i, task_id in enumerate(journal.completed):
            cmd += [base + i, task_id]
        cmds.append(cmd)
    if journal.released:
        cmds.append(["SADD", keys.released, *journal.released])
    if journal.activated:
        cmds.append(["SADD", keys.active, *journal.activated])
    _hset(cmds, keys.cycles, dict(journal.cycles))
    # A started group is written whole once; then only the ends of its members.
    for group, ended_before in journal.groups_started.items():
        if ended_before:
            cmds.append(["HDEL", keys.group_ends, *(group_end_field(group, m)
                                                    for m in ended_before)])
    _hset(cmds, keys.groups, {g: packb(scheduler.groups[g].progress().to_dict())
                              for g in journal.groups_started if g in scheduler.groups})
    _hset(cmds, keys.group_ends, {group_end_field(g, m): packb([seq, failure])
                                  for g, m, seq, failure in journal.group_done})
    _hset(cmds, keys.crashes, {t: packb(scheduler.crash_workers.get(t, []))
                               for t in journal.crashes})
    if journal.parked_del:
        cmds.append(["HDEL", keys.parked, *journal.parked_del])
    _hset(cmds, keys.parked, {k: packb(p.to_dict()) for k, p in journal.parked_put.items()})
    cmds += shape_commands(keys.shape, scheduler.shape, journal.new_nodes)
    progress = progress_meta(scheduler) if progress is None else progress
    cmds.append(["HSET", keys.meta, *(x for item in progress.items() for x in item)])
    return cmds


def progress_meta(scheduler: Scheduler) -> dict[str, Any]:
    """The record's progress fields as ``scheduler`` stands."""
    done = len(scheduler.completed) - sum(1 for g in scheduler.groups if g in scheduler.completed)
    return {RunField.STEPS: scheduler.steps, RunField.DISPATCH_SEQ: scheduler.dispatch_seq,
            RunField.DONE: done, RunField.PENDING: len(scheduler.pending),
            RunField.UPDATED_AT: repr(time.time())}


def _spec_puts(key: str, specs: list[TaskSpec]) -> Iterator[Command]:
    for start in range(0, len(specs), _SPEC_CHUNK):
        cmd: Command = ["HSET", key]
        for spec in specs[start:start + _SPEC_CHUNK]:
            cmd += [spec.token, packb(encode_spec(spec))]
        yield cmd


def group_end_field(group: str, member: str) -> str:
    return f"{group}\x00{member}"


def _with_ends(groups: dict[str, GroupProgress], ends: dict[bytes, bytes], what: str
               ) -> dict[str, GroupProgress]:
    """Group progress as written when each group started, with its members' ends
    applied in the order they happened."""
    applied: dict[str, list[tuple[int, str, str | None]]] = {}
    for raw_field, raw in ends.items():
        group, sep, member = _text(raw_field, what).partition("\x00")
        end = unpackb(raw, what)
        if not (sep and isinstance(end, list) and len(end) == 2 and type(end[0]) is int
                and (end[1] is None or isinstance(end[1], str))):
            raise WireError(f"{what}: malformed end of group member {raw_field!r:.60}")
        applied.setdefault(group, []).append((end[0], member, end[1]))
    for group, done in applied.items():
        progress = groups.get(group)
        if progress is None:
            raise WireError(f"{what}: ends recorded for group {group!r}, never started")
        run = GroupRun.of(progress)
        for _seq, member, failure in sorted(done, key=lambda d: d[0]):
            run.finish(member, failure)
        groups[group] = run.progress()
    return groups


def _hset(cmds: list[Any], key: str, mapping: dict[str, Any]) -> None:
    if mapping:
        cmd: Command = ["HSET", key]
        for k, v in mapping.items():
            cmd += [k, v]
        cmds.append(cmd)


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise WireError(f"{what}: {raw[:40]!r} is not UTF-8") from None


def load_run(client: redis.Redis, keys: RunKeys) -> tuple[RunRecord, GraphShape,
                                                          FrontierSnapshot]:
    """Everything a coordinator needs to drive a run, read in one round trip (a large
    graph's shape in more, a chunk at a time: only the coordinator changes it while
    the run is active); anything malformed raises `WireError` (the run fails, the
    coordinator goes on)."""
    loaded = load_runs(client, [keys])[keys.session_id]
    if isinstance(loaded, GraflowError):
        raise loaded
    return loaded


def load_runs(client: redis.Redis, runs: list[RunKeys]
              ) -> dict[str, tuple[RunRecord, GraphShape, FrontierSnapshot] | GraflowError]:
    """`load_run` for several runs, in one round trip; a run that cannot be loaded
    maps to its error (`UnknownSessionError`, `WireError`)."""
    pipe = client.pipeline(transaction=True)
    for keys in runs:
        _queue_reads(pipe, keys)
    replies = pipe.execute()
    out: dict[str, tuple[RunRecord, GraphShape, FrontierSnapshot] | GraflowError] = {}
    for i, keys in enumerate(runs):
        try:
            out[keys.session_id] = _decode_run(client, keys,
                                               replies[i * _READS:(i + 1) * _READS])
        except GraflowError as exc:
            out[keys.session_id] = exc
    return out


_READS = 11  # commands `_queue_reads` queues per run


def _queue_reads(pipe: Any, keys: RunKeys) -> None:
    pipe.hgetall(keys.meta)
    pipe.hscan(keys.shape, 0, count=_SHAPE_SCAN)
    pipe.zrange(keys.completed, 0, -1)
    pipe.smembers(keys.released)
    pipe.hgetall(keys.pending)
    pipe.hgetall(keys.cycles)
    pipe.hgetall(keys.groups)
    pipe.hgetall(keys.group_ends)
    pipe.smembers(keys.active)
    pipe.hgetall(keys.crashes)
    pipe.hgetall(keys.parked)


def _decode_run(client: redis.Redis, keys: RunKeys, replies: list[Any]
                ) -> tuple[RunRecord, GraphShape, FrontierSnapshot]:
    session_id = keys.session_id
    (meta, shape, completed, released, pending, cycles, groups, ends, active, crashes,
     parked) = replies
    if not meta:
        raise UnknownSessionError(session_id)
    record = RunRecord.from_meta(session_id, meta)
    what = f"run {session_id!r} frontier"
    graph = GraphShape()
    shared: dict[Any, Any] = {}  # node ids are keys and shape fields: one string each
    cursor, chunk = shape
    small = not cursor  # one chunk: a small graph, likely submitted many times
    while True:
        for k, v in chunk.items():
            if small:
                graph.nodes[_text(k, what)] = _small_node(v, what)
            else:
                node_id = shared.setdefault(_text(k, what), _text(k, what))
                graph.nodes[node_id] = node_shape_from_dict(unpackb(v, what), what, shared)
        if not cursor:
            break
        cursor, chunk = client.hscan(keys.shape, cursor, count=_SHAPE_SCAN)
    crash_workers: dict[str, list[str]] = {}
    for k, v in crashes.items():
        workers = unpackb(v, what)
        if not isinstance(workers, list) or not all(isinstance(w, str) for w in workers):
            raise WireError(f"{what}: crash record of {k!r} is not a list of workers")
        crash_workers[_text(k, what)] = workers
    frontier = FrontierSnapshot(
        session_id=session_id,
        steps=record.steps,
        completed_tasks=[_text(c, what) for c in completed],
        released=sorted(_text(r, what) for r in released),
        pending_tasks=[decode_spec(unpackb(v, what), what) for v in pending.values()],
        cycle_counts={_text(k, what): int_text(v.decode(errors="replace"), what, minimum=0)
                      for k, v in cycles.items()},
        groups=_with_ends({_text(k, what): group_progress_from_dict(unpackb(v, what), what)
                           for k, v in groups.items()}, ends, what),
        active=sorted(_text(a, what) for a in active),
        dispatch_seq=record.dispatch_seq,
        crash_workers=crash_workers,
        parked={_text(k, what): parked_from_dict(unpackb(v, what), what)
                for k, v in parked.items()},
    )
    frontier.pending_tasks.sort(key=Scheduler.seq_of)
    check_frontier(graph, frontier, what)
    return record, graph, frontier


def started_body(meta: dict[str, Any], shape_fields: list[Any],
                 frontier: FrontierSnapshot) -> dict[str, Any]:
    """What the submission event of a run its client started carries (`Event.started`):
    the record's fields, the shape's hash fields (node id, encoded node, ...) and the
    frontier, exactly as the submission writes them to Redis with the event."""
    return {"m": {k: v if isinstance(v, str) else str(v) for k, v in meta.items()},
            "sh": shape_fields, "fr": frontier.to_dict()}


def decode_started(session_id: str, body: Any
                   ) -> tuple[RunRecord, GraphShape, FrontierSnapshot]:
    """`load_run`, from a `started_body` instead of Redis (`WireError` naming what is
    malformed)."""
    what = f"run {session_id!r} submission event"
    meta = submap(mapping(body, what), "m", what)
    if not all(isinstance(v, str) for v in meta.values()):
        raise WireError(f"{what}: record fields must be strings")
    record = RunRecord.from_text_meta(session_id, meta, f"{what}: record")
    if record.status is not RunStatus.RUNNING or record.resume:
        raise WireError(f"{what}: not a run its client started (status "
                        f"{record.status.value}, resume {record.resume})")
    fields = body.get("sh")
    if not (isinstance(fields, list) and fields and len(fields) % 2 == 0
            and len(fields) <= 2 * STARTED_EVENT_MAX_NODES):
        raise WireError(f"{what}: the shape must be node ids and encoded nodes, at most "
                        f"{STARTED_EVENT_MAX_NODES}")
    graph = GraphShape()
    for node_id, raw in zip(fields[0::2], fields[1::2], strict=True):
        if not isinstance(node_id, str) or not isinstance(raw, bytes):
            raise WireError(f"{what}: a shape entry is not a node id and an encoded node")
        graph.nodes[node_id] = _small_node(raw, what)
    frontier = frontier_from_dict(body.get("fr"), f"{what}: frontier")
    if frontier.session_id != session_id:
        raise WireError(f"{what}: the frontier is of another run")
    if (frontier.steps, frontier.dispatch_seq) != (record.steps, record.dispatch_seq):
        raise WireError(f"{what}: the frontier's counters are not the record's")
    tokens = [s.token for s in frontier.pending_tasks]
    if len(set(tokens)) != len(tokens):
        raise WireError(f"{what}: a pending token appears twice")
    frontier.pending_tasks.sort(key=Scheduler.seq_of)
    check_frontier(graph, frontier, what)
    return record, graph, frontier


# Node shapes of small graphs as stored, decoded: many runs of one workflow store the
# same bytes. Each run gets a copy of its own (a scheduler may change its nodes).
_SMALL_NODES: dict[bytes, NodeShape] = {}
_SMALL_NODES_MAX = 20_000


def _small_node(raw: bytes, what: str) -> NodeShape:
    node = _SMALL_NODES.get(raw)
    if node is None:
        node = node_shape_from_dict(unpackb(raw, what), what)
        if len(_SMALL_NODES) >= _SMALL_NODES_MAX:
            _SMALL_NODES.clear()
        _SMALL_NODES[raw] = node
    return copy_shape(node)


def check_frontier(shape: GraphShape, frontier: FrontierSnapshot, what: str) -> None:
    """Every task a frontier names is a node of the graph (`WireError` otherwise): a
    frontier someone else wrote must fail its run, not the scheduler."""
    named = {*frontier.completed_tasks, *frontier.released, *frontier.active,
             *frontier.cycle_counts, *frontier.groups, *frontier.crash_workers,
             *(s.task_id for s in frontier.pending_tasks),
             *(t for g in frontier.groups.values() for t in (*g.outstanding, *g.succeeded,
                                                             *g.failed))}
    unknown = sorted(named - set(shape.nodes))
    if unknown:
        raise WireError(f"{what}: names tasks that are not in the run's graph: "
                        f"{', '.join(repr(t) for t in unknown[:5])}")
