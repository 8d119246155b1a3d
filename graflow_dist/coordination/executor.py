"""Which coordinator runs a group's members in an in-process run.

``redis`` runs members on a cluster's workers: that happens when the workflow is
submitted to a cluster (where every group runs that way), not inside an in-process run.
"""

from __future__ import annotations

from typing import Any

from graflow_dist.coordination.coordinator import (
    CoordinationBackend,
    DirectCoordinator,
    TaskCoordinator,
)
from graflow_dist.coordination.threading_coordinator import ThreadingCoordinator
from graflow_dist.errors import CoordinationError


def in_process_coordinator(group_id: str, backend: CoordinationBackend | None,
                           config: dict[str, Any]) -> TaskCoordinator:
    """The coordinator an in-process run uses for group ``group_id``."""
    if backend is CoordinationBackend.THREADING:
        return ThreadingCoordinator(config.get("thread_count"))
    if backend is CoordinationBackend.REDIS:
        raise CoordinationError(
            f"parallel group {group_id!r} uses backend='redis', which runs its members on a "
            "cluster: submit the workflow to one (Client(url).submit(wf), "
            "wf.execute(client=...), or GRAFLOW_DIST_CLUSTER for run_context), or use "
            "backend='threading' to run it in this process"
        )
    return DirectCoordinator()


__all__ = ["in_process_coordinator"]
