"""Coordination of parallel groups (Graflow's ``graflow.coordination``).

``coordination.executor`` (which coordinator an in-process run uses) and
``coordination.redis_coordinator`` (members on a cluster) sit above the core they drive,
so importing this package does not load them; the engine imports them directly.
"""

from graflow_dist.coordination.coordinator import (
    CoordinationBackend,
    DirectCoordinator,
    TaskCoordinator,
    resolve_backend,
)
from graflow_dist.coordination.threading_coordinator import ThreadingCoordinator

__all__ = [
    "CoordinationBackend",
    "DirectCoordinator",
    "TaskCoordinator",
    "ThreadingCoordinator",
    "resolve_backend",
]
