"""Coordination of parallel groups (Graflow's ``graflow.coordination``)."""

from graflow_dist.coordination.coordinator import (
    CoordinationBackend,
    DirectCoordinator,
    TaskCoordinator,
    resolve_backend,
)
from graflow_dist.coordination.executor import in_process_coordinator
from graflow_dist.coordination.threading_coordinator import ThreadingCoordinator

__all__ = [
    "CoordinationBackend",
    "DirectCoordinator",
    "TaskCoordinator",
    "ThreadingCoordinator",
    "in_process_coordinator",
    "resolve_backend",
]
