"""How a parallel group's members run: ``ParallelGroup.with_execution(backend=...)``.

The scheduler decides *when* members run and applies the group's policy; a coordinator
only decides *how* a driver runs the members that are ready together. In process,
``direct`` runs them one after another and ``threading`` at the same time in threads
(`graflow_dist.coordination.executor` picks one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, TypeVar

from graflow_dist.errors import CoordinationError

T = TypeVar("T")
R = TypeVar("R")


class CoordinationBackend(Enum):
    """Graflow's coordination backends."""

    REDIS = "redis"
    THREADING = "threading"
    DIRECT = "direct"


def resolve_backend(backend: str | CoordinationBackend | None) -> CoordinationBackend | None:
    """``backend`` as a `CoordinationBackend` (None stays None: the default)."""
    if backend is None or isinstance(backend, CoordinationBackend):
        return backend
    if isinstance(backend, str):
        for candidate in CoordinationBackend:
            if backend.lower() in (candidate.value, candidate.name.lower()):
                return candidate
    known = ", ".join(repr(b.value) for b in CoordinationBackend)
    raise CoordinationError(
        f"unknown coordination backend {backend!r}: use one of {known} or a "
        "CoordinationBackend member"
    )


def check_backend_config(backend: CoordinationBackend | None,
                         config: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``config`` without live connections (a group travels pickled with its
    graph); ``thread_count`` must be a positive integer."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise CoordinationError(f"backend_config must be a dict, got {type(config).__name__}")
    cleaned = {k: v for k, v in config.items() if k != "redis_client"}
    count = cleaned.get("thread_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or count < 1):
        raise CoordinationError(
            f"backend_config thread_count must be a positive integer, got {count!r}"
        )
    return cleaned


class TaskCoordinator(ABC):
    """Runs a batch of ready members of one group and returns their outcomes in order."""

    @abstractmethod
    def run_members(self, members: Sequence[T], run: Callable[[T], R]) -> list[R]:
        """``[run(m) for m in members]``, in any concurrency, results in input order."""


class DirectCoordinator(TaskCoordinator):
    """One member after the other, in the calling thread."""

    def run_members(self, members: Sequence[T], run: Callable[[T], R]) -> list[R]:
        return [run(member) for member in members]


__all__ = [
    "CoordinationBackend",
    "DirectCoordinator",
    "TaskCoordinator",
    "check_backend_config",
    "resolve_backend",
]
