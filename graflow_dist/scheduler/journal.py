"""Journal: what changed in a scheduler since the driver last looked.

The coordinator persists these deltas to Redis (atomically with the tasks it
enqueues) instead of rewriting the whole frontier after every event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graflow_dist.scheduler.specs import TaskSpec


@dataclass
class Journal:
    pending_put: dict[str, TaskSpec] = field(default_factory=dict)
    pending_del: set[str] = field(default_factory=set)
    completed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    activated: list[str] = field(default_factory=list)
    cycles: dict[str, int] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    crashes: set[str] = field(default_factory=set)
    new_nodes: list[str] = field(default_factory=list)

    def put(self, spec: TaskSpec) -> None:
        self.pending_del.discard(spec.token)
        self.pending_put[spec.token] = spec

    def drop(self, token: str) -> None:
        # Added since the last drain: it never reached the store, so just forget it.
        if self.pending_put.pop(token, None) is None:
            self.pending_del.add(token)

    def __bool__(self) -> bool:
        return any(
            (self.pending_put, self.pending_del, self.completed, self.released,
             self.activated, self.cycles, self.groups, self.crashes, self.new_nodes)
        )
