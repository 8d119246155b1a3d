"""Members of a parallel group run at the same time, in threads of this process."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from graflow_dist.coordination.coordinator import TaskCoordinator

T = TypeVar("T")
R = TypeVar("R")


class ThreadingCoordinator(TaskCoordinator):
    """Runs a group's ready members in a thread pool of ``thread_count`` threads
    (default: one per CPU, as in Graflow)."""

    def __init__(self, thread_count: int | None = None) -> None:
        self.thread_count = thread_count or os.cpu_count() or 1

    def run_members(self, members: Sequence[T], run: Callable[[T], R]) -> list[R]:
        if len(members) <= 1:
            return [run(member) for member in members]
        workers = min(self.thread_count, len(members))
        with ThreadPoolExecutor(max_workers=workers,
                                thread_name_prefix="ThreadingCoordinator") as pool:
            return list(pool.map(run, members))
