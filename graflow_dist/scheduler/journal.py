"""Journal: what changed in a scheduler since the driver last looked.

The coordinator persists these deltas to Redis (atomically with the tasks it
enqueues) instead of rewriting the whole frontier after every event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graflow_dist.scheduler.frontier import ParkedTask
from graflow_dist.scheduler.specs import TaskSpec


@dataclass
class Journal:
    pending_put: dict[str, TaskSpec] = field(default_factory=dict)
    pending_del: set[str] = field(default_factory=set)
    completed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    cycles: dict[str, int] = field(default_factory=dict)
    # Groups (re)started since the last drain, with the members that had ended in
    # their previous round (whose records go); then members that ended:
    # (group, member, sequence number within the round, failure or None).
    groups_started: dict[str, list[str]] = field(default_factory=dict)
    group_done: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    crashes: set[str] = field(default_factory=set)
    new_nodes: list[str] = field(default_factory=list)
    parked_put: dict[str, ParkedTask] = field(default_factory=dict)
    parked_del: set[str] = field(default_factory=set)

    def put(self, spec: TaskSpec) -> None:
        self.pending_del.discard(spec.token)
        self.pending_put[spec.token] = spec

    def drop(self, token: str) -> None:
        # Also when it was put since the last drain: that put may have been an update
        # of a spec the store already holds (a released retry).
        self.pending_put.pop(token, None)
        self.pending_del.add(token)

    def group_started(self, group: str, ended_before: list[str]) -> None:
        earlier = self.groups_started.get(group, [])
        self.groups_started[group] = [*earlier, *ended_before]
        self.group_done = [d for d in self.group_done if d[0] != group]

    def park(self, wake_key: str, parked: ParkedTask) -> None:
        self.parked_del.discard(wake_key)
        self.parked_put[wake_key] = parked

    def unpark(self, wake_key: str) -> None:
        self.parked_put.pop(wake_key, None)
        self.parked_del.add(wake_key)

    def __bool__(self) -> bool:
        return any(
            (self.pending_put, self.pending_del, self.completed, self.released,
             self.activated, self.cycles, self.groups_started, self.group_done,
             self.crashes, self.new_nodes,
             self.parked_put, self.parked_del)
        )
