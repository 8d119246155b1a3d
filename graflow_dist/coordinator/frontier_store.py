"""The Redis layout of a run's frontier: load it whole, persist it as deltas.

Writers produce command lists (``[["HSET", key, field, value], ...]``) that the caller
commits in one fenced transaction together with the jobs it enqueues, so Redis always
holds a consistent frontier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from graflow_dist.errors import UnknownSessionError
from graflow_dist.scheduler.frontier import FrontierSnapshot, GroupProgress
from graflow_dist.scheduler.journal import Journal
from graflow_dist.scheduler.specs import GraphShape, NodeShape
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.keyspace import Keyspace, RunKeys
from graflow_dist.wire.messages import packb, spec_from_wire, spec_to_wire, unpackb

Command = list[Any]


@dataclass
class RunInfo:
    """A run's settings and status, from its ``meta`` hash."""

    session_id: str
    status: str = "submitted"
    graph_hash: str = ""
    trace_id: str = ""
    workflow: str = ""
    start_node: str | None = None
    max_steps: int = 10_000
    default_max_cycles: int = 10
    default_max_retries: int = 0
    crash_limit: int = 3
    queue: str = "graflow"
    resume: bool = False
    incarnation: str = ""  # new at every submit/resume: jobs of an earlier one are skipped
    traceparent: str = ""  # W3C trace context of the submission, handed to every batch
    extra: dict[str, str] = field(default_factory=dict)

    def to_meta(self) -> dict[str, str]:
        return {
            "session_id": self.session_id, "status": self.status, "graph_hash": self.graph_hash,
            "trace_id": self.trace_id, "workflow": self.workflow,
            "start_node": self.start_node or "", "max_steps": str(self.max_steps),
            "default_max_cycles": str(self.default_max_cycles),
            "default_max_retries": str(self.default_max_retries),
            "crash_limit": str(self.crash_limit), "queue": self.queue,
            "resume": "1" if self.resume else "0", "incarnation": self.incarnation,
            "traceparent": self.traceparent,
            **self.extra,
        }

    @classmethod
    def from_meta(cls, session_id: str, meta: dict[bytes, bytes]) -> RunInfo:
        m = {k.decode(): v.decode() for k, v in meta.items()}
        return cls(
            session_id=session_id, status=m.get("status", "submitted"),
            graph_hash=m.get("graph_hash", ""), trace_id=m.get("trace_id", session_id),
            workflow=m.get("workflow", ""), start_node=m.get("start_node") or None,
            max_steps=int(m.get("max_steps", 10_000)),
            default_max_cycles=int(m.get("default_max_cycles", 10)),
            default_max_retries=int(m.get("default_max_retries", 0)),
            crash_limit=int(m.get("crash_limit", 3)), queue=m.get("queue", "graflow"),
            resume=m.get("resume") == "1", incarnation=m.get("incarnation", ""),
            traceparent=m.get("traceparent", ""), extra=m,
        )


def shape_commands(
    keys: RunKeys, shape: GraphShape, nodes: list[str] | None = None
) -> list[Command]:
    chosen = shape.nodes if nodes is None else {n: shape.nodes[n] for n in nodes}
    if not chosen:
        return []
    cmd: Command = ["HSET", keys.shape]
    for node_id, node in chosen.items():
        cmd += [node_id, packb(node.to_dict())]
    return [cmd]


def frontier_commands(keys: RunKeys, frontier: FrontierSnapshot) -> list[Command]:
    """Replace a run's whole frontier (a submission from a checkpoint)."""
    cmds: list[Command] = [["DEL", keys.completed, keys.released, keys.pending, keys.cycles,
                            keys.groups, keys.active, keys.crashes]]
    if frontier.completed_tasks:
        cmd: Command = ["ZADD", keys.completed]
        for i, task_id in enumerate(frontier.completed_tasks):
            cmd += [i, task_id]
        cmds.append(cmd)
    for key, members in ((keys.released, frontier.released), (keys.active, frontier.active)):
        if members:
            cmds.append(["SADD", key, *members])
    _hset(cmds, keys.pending, {s.token: packb(spec_to_wire(s)) for s in frontier.pending_tasks})
    _hset(cmds, keys.cycles, {k: v for k, v in frontier.cycle_counts.items()})
    _hset(cmds, keys.groups, {g: packb(p.to_dict()) for g, p in frontier.groups.items()})
    _hset(cmds, keys.crashes, {t: packb(w) for t, w in frontier.crash_workers.items()})
    cmds.append(["HSET", keys.meta, "steps", frontier.steps,
                 "dispatch_seq", frontier.dispatch_seq])
    return cmds


def journal_commands(keys: RunKeys, scheduler: Scheduler, journal: Journal) -> list[Command]:
    """Persist what changed in ``scheduler`` since the last drain."""
    cmds: list[Command] = []
    if journal.pending_del:
        cmds.append(["HDEL", keys.pending, *journal.pending_del])
    _hset(cmds, keys.pending, {t: packb(spec_to_wire(s)) for t, s in journal.pending_put.items()})
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
    _hset(cmds, keys.groups, {g: packb(scheduler.groups[g].to_dict())
                              for g in journal.groups if g in scheduler.groups})
    _hset(cmds, keys.crashes, {t: packb(scheduler.crash_workers.get(t, []))
                               for t in journal.crashes})
    cmds += shape_commands(keys, scheduler.shape, journal.new_nodes)
    cmds.append(["HSET", keys.meta, "steps", scheduler.steps,
                 "dispatch_seq", scheduler.dispatch_seq,
                 "done", len(scheduler.completed) - sum(
                     1 for g in scheduler.groups if g in scheduler.completed),
                 "pending", len(scheduler.inflight) + len(scheduler.delayed),
                 "updated_at", repr(time.time())])
    return cmds


def _hset(cmds: list[Command], key: str, mapping: dict[str, Any]) -> None:
    if mapping:
        cmd: Command = ["HSET", key]
        for k, v in mapping.items():
            cmd += [k, v]
        cmds.append(cmd)


def load_run(client: redis.Redis, keyspace: Keyspace, session_id: str
             ) -> tuple[RunInfo, GraphShape, FrontierSnapshot]:
    """Everything the coordinator needs to drive a run, read in one round trip."""
    keys = keyspace.run(session_id)
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(keys.meta)
    pipe.hgetall(keys.shape)
    pipe.zrange(keys.completed, 0, -1)
    pipe.smembers(keys.released)
    pipe.hgetall(keys.pending)
    pipe.hgetall(keys.cycles)
    pipe.hgetall(keys.groups)
    pipe.smembers(keys.active)
    pipe.hgetall(keys.crashes)
    meta, shape, completed, released, pending, cycles, groups, active, crashes = pipe.execute()
    if not meta:
        raise UnknownSessionError(session_id)
    info = RunInfo.from_meta(session_id, meta)
    what = f"run {session_id}"
    graph = GraphShape({k.decode(): NodeShape.from_dict(unpackb(v, what))
                        for k, v in shape.items()})
    frontier = FrontierSnapshot(
        session_id=session_id,
        steps=int(info.extra.get("steps", 0)),
        completed_tasks=[c.decode() for c in completed],
        released=sorted(r.decode() for r in released),
        pending_tasks=[spec_from_wire(unpackb(v, what), what) for v in pending.values()],
        cycle_counts={k.decode(): int(v) for k, v in cycles.items()},
        groups={k.decode(): GroupProgress.from_dict(unpackb(v, what)) for k, v in groups.items()},
        active=sorted(a.decode() for a in active),
        dispatch_seq=int(info.extra.get("dispatch_seq", 0)),
        crash_workers={k.decode(): list(unpackb(v, what)) for k, v in crashes.items()},
    )
    frontier.pending_tasks.sort(key=Scheduler._seq_of)
    return info, graph, frontier


# Lua's unpack() takes at most ~8,000 values; commit commands stay far below that.
MAX_COMMAND_ARGS = 1000
# (leading arguments kept in every piece, arguments per item) of variadic commands.
_VARIADIC = {"HSET": (2, 2), "HDEL": (2, 1), "SADD": (2, 1), "SREM": (2, 1), "DEL": (1, 1),
             "RPUSH": (2, 1), "ZADD": (2, 2)}


def chunked(commands: list[Command], limit: int = MAX_COMMAND_ARGS) -> list[Command]:
    """Split long variadic commands into pieces of at most ``limit`` arguments."""
    out: list[Command] = []
    for cmd in commands:
        shape = _VARIADIC.get(str(cmd[0]))
        if shape is None or len(cmd) <= limit:
            out.append(cmd)
            continue
        head, step = shape
        if cmd[0] == "ZADD" and len(cmd) > 2 and cmd[2] in ("NX", "XX"):
            head += 1
        per_piece = max(step, (limit - head) // step * step)
        for start in range(head, len(cmd), per_piece):
            out.append(cmd[:head] + cmd[start:start + per_piece])
    return out
