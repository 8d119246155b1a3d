"""Which coordinator runs a group's members in an in-process run: one after another
(``direct``), in threads (``threading``) or on a cluster's workers (``redis``; a run
submitted to a cluster runs every group that way anyway)."""

from __future__ import annotations

from typing import Any

from graflow_dist.coordination.coordinator import (
    CoordinationBackend,
    DirectCoordinator,
    TaskCoordinator,
)
from graflow_dist.coordination.threading_coordinator import ThreadingCoordinator
from graflow_dist.core.context import ExecutionContext


def in_process_coordinator(group: Any, context: ExecutionContext) -> TaskCoordinator:
    """The coordinator an in-process run of ``context`` uses for ``group``."""
    backend = getattr(group, "backend", None)
    config = getattr(group, "backend_config", {})
    if backend is CoordinationBackend.THREADING:
        return ThreadingCoordinator(config.get("thread_count"))
    if backend is CoordinationBackend.REDIS:
        from graflow_dist.coordination.redis_coordinator import (  # noqa: PLC0415
            DEFAULT_GROUP_TIMEOUT_S,
            RedisCoordinator,
            cluster_broker,
        )

        broker = cluster_broker(config, getattr(group, "redis_client", None))
        return RedisCoordinator(broker, context, group.task_id,
                                config.get("timeout", DEFAULT_GROUP_TIMEOUT_S))
    return DirectCoordinator()


__all__ = ["in_process_coordinator"]
