"""Plain data the scheduler works on: task specs and the shape of the graph.

Everything here is serialisable to JSON and msgpack without pickle, so it can go into
`.state.json` checkpoints and onto Redis queues as is.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_MAX_CYCLES = 10


@dataclass(frozen=True)
class RetrySettings:
    """How often and how late a failed task is tried again (pure data, mirrors
    `graflow_dist.RetryPolicy`).

    The delay before retry ``k`` (0-based count of retries so far) is
    ``min(initial_interval * backoff_factor**k, max_interval)``, times a factor in
    [0.5, 1.5) when ``jitter`` is set (derived from the dispatch token, so the pure
    scheduler stays deterministic).
    """

    max_retries: int = 0
    initial_interval: float = 0.0
    backoff_factor: float = 2.0
    max_interval: float = 60.0
    jitter: bool = False

    def delay_before(self, retries_so_far: int, token: str = "") -> float:
        delay = min(self.initial_interval * self.backoff_factor**retries_so_far, self.max_interval)
        if self.jitter and delay > 0:
            delay *= 0.5 + (zlib.crc32(token.encode()) % 1000) / 1000
        return delay


@dataclass(frozen=True)
class GroupPolicySpec:
    """A parallel group's success rule: ``strict``, ``best_effort``, ``at_least_n``
    (with ``min_success``) or ``critical`` (with ``critical_tasks``)."""

    kind: str = "strict"
    min_success: int = 0
    critical_tasks: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "at_least_n":
            return f"at_least_n({self.min_success})"
        if self.kind == "critical":
            return f"critical({', '.join(self.critical_tasks)})"
        return self.kind


NO_RETRY = RetrySettings()


@dataclass(slots=True, eq=False)
class NodeShape:
    """What the scheduler needs to know about one node; no user code. ``code`` is the
    hash of the code blob that holds the node's executable ("" for a node added while
    the run ran: its code is stored with the run)."""

    node_id: str
    # Sequences: a decoded node without edges shares one empty tuple (most of a fan-out).
    successors: Sequence[str] = field(default_factory=list)
    predecessors: Sequence[str] = field(default_factory=list)
    members: list[str] | None = None  # set for parallel groups
    policy: GroupPolicySpec | None = None
    max_cycles: int = DEFAULT_MAX_CYCLES
    retry: RetrySettings = NO_RETRY  # frozen: one instance serves every plain node
    timeout: float | None = None  # seconds a run of the task may take (None: no limit)
    code: str = ""

    @property
    def is_group(self) -> bool:
        return self.members is not None

    def __eq__(self, other: object) -> bool:
        # Edges compare as sequences: a decoded node without edges holds ().
        if not isinstance(other, NodeShape):
            return NotImplemented
        return (self.node_id == other.node_id
                and list(self.successors) == list(other.successors)
                and list(self.predecessors) == list(other.predecessors)
                and self.members == other.members and self.policy == other.policy
                and self.max_cycles == other.max_cycles and self.retry == other.retry
                and self.timeout == other.timeout and self.code == other.code)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq

    def to_dict(self) -> dict[str, Any]:
        # Written out by hand: dataclasses.asdict dominated submitting large graphs.
        policy = self.policy
        retry = self.retry
        return {
            "node_id": self.node_id,
            "successors": list(self.successors),
            "predecessors": list(self.predecessors),
            "members": list(self.members) if self.members is not None else None,
            "policy": None if policy is None else {
                "kind": policy.kind, "min_success": policy.min_success,
                "critical_tasks": list(policy.critical_tasks)},
            "max_cycles": self.max_cycles,
            "retry": {"max_retries": retry.max_retries,
                      "initial_interval": retry.initial_interval,
                      "backoff_factor": retry.backoff_factor,
                      "max_interval": retry.max_interval, "jitter": retry.jitter},
            "timeout": self.timeout,
            "code": self.code,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeShape:
        policy = data.get("policy")
        return cls(
            node_id=data["node_id"],
            successors=list(data.get("successors", [])),
            predecessors=list(data.get("predecessors", [])),
            members=list(data["members"]) if data.get("members") is not None else None,
            policy=GroupPolicySpec(
                kind=policy["kind"],
                min_success=policy.get("min_success", 0),
                critical_tasks=tuple(policy.get("critical_tasks", ())),
            )
            if policy
            else None,
            max_cycles=data.get("max_cycles", DEFAULT_MAX_CYCLES),
            retry=RetrySettings(**data.get("retry", {})),
            timeout=data.get("timeout"),
            code=data.get("code", ""),
        )


def copy_shape(node: NodeShape) -> NodeShape:
    """A node shape of its own with the same (shared, never changed in place) parts."""
    return NodeShape(node.node_id, node.successors, node.predecessors, node.members,
                     node.policy, node.max_cycles, node.retry, node.timeout, node.code)


@dataclass
class GraphShape:
    """The structure of a workflow graph: nodes, edges, groups, limits."""

    nodes: dict[str, NodeShape] = field(default_factory=dict)

    def node(self, node_id: str) -> NodeShape:
        return self.nodes[node_id]

    def member_ids(self) -> set[str]:
        return {m for s in self.nodes.values() if s.members for m in s.members}

    def only_sink(self) -> str:
        """The one task that ends the graph (no successors, not in a group), or "" if
        there are several, or a group ends it."""
        members = None
        found = ""
        for node_id, node in self.nodes.items():
            if node.successors:
                continue
            if members is None:
                members = self.member_ids()
            if node_id in members:
                continue
            if found or node.is_group:
                return ""
            found = node_id
        return found

    def roots(self) -> list[str]:
        members = self.member_ids()
        return [
            n for n, s in self.nodes.items() if not s.predecessors and n not in members
        ]

    def on_cycle(self, node_id: str) -> bool:
        seen: set[str] = set()
        stack = list(self.nodes[node_id].successors)
        while stack:
            current = stack.pop()
            if current == node_id:
                return True
            if current in seen or current not in self.nodes:
                continue
            seen.add(current)
            stack.extend(self.nodes[current].successors)
        return False

    def add(self, shape: NodeShape) -> None:
        self.nodes[shape.node_id] = shape

    def code_blobs(self) -> list[str]:
        """The hashes of the code blobs that hold the graph's executables."""
        return list(dict.fromkeys(s.code for s in self.nodes.values() if s.code))

    def to_dict(self) -> dict[str, Any]:
        return {n: s.to_dict() for n, s in self.nodes.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphShape:
        return cls({n: NodeShape.from_dict(s) for n, s in data.items()})


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One schedulable execution of a task.

    Parameters
    ----------
    task_id:
        The node to run.
    token:
        Dispatch token, unique within a session; a completion is applied only when it
        carries the token of a spec that is still in flight (fencing).
    cycle:
        How many iterations of this task came before (0 on its first run).
    attempt:
        1-based attempt under the user's retry policy.
    crashes:
        Attempts lost to dead workers; they do not consume the retry budget.
    group:
        The parallel group this execution belongs to, if any.
    not_before:
        Earliest time (epoch seconds) to run it; used for retry backoff.
    """

    task_id: str
    token: str
    cycle: int = 0
    attempt: int = 1
    crashes: int = 0
    group: str | None = None
    not_before: float = 0.0

    def evolve(self, **changes: Any) -> TaskSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict dominated checkpoints of large frontiers.
        return {"task_id": self.task_id, "token": self.token, "cycle": self.cycle,
                "attempt": self.attempt, "crashes": self.crashes, "group": self.group,
                "not_before": self.not_before}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        return cls(**known)
