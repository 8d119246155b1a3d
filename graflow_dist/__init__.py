"""graflow-dist: Graflow-compatible workflows, run in process or on a Redis cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow_dist.channels import Channel, MemoryChannel
from graflow_dist.core.checkpoint import CheckpointManager, CheckpointMetadata
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.engine import WorkflowEngine
from graflow_dist.core.retry import RetryPolicy
from graflow_dist.core.task import (
    AtLeastNGroupPolicy,
    BestEffortGroupPolicy,
    CriticalGroupPolicy,
    ParallelGroup,
    StrictGroupPolicy,
    TaskWrapper,
    chain,
    parallel,
)
from graflow_dist.core.workflow import workflow

if TYPE_CHECKING:
    from graflow_dist.client import Client, WorkflowRun

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The client pulls in redis and rq; keep `import graflow_dist` light for in-process use.
    if name in ("Client", "WorkflowRun"):
        from graflow_dist import client  # noqa: PLC0415 - see tests/test_layers.py

        return getattr(client, name)
    raise AttributeError(f"module 'graflow_dist' has no attribute {name!r}")


__all__ = [
    "AtLeastNGroupPolicy",
    "BestEffortGroupPolicy",
    "Channel",
    "CheckpointManager",
    "CheckpointMetadata",
    "Client",
    "CriticalGroupPolicy",
    "ExecutionContext",
    "MemoryChannel",
    "ParallelGroup",
    "RetryPolicy",
    "StrictGroupPolicy",
    "TaskExecutionContext",
    "TaskWrapper",
    "WorkflowEngine",
    "WorkflowRun",
    "chain",
    "parallel",
    "task",
    "workflow",
]
