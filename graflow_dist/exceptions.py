"""Graflow's ``graflow.exceptions`` module path: the same classes as
`graflow_dist.errors` (one hierarchy), under the names Graflow code imports."""

from graflow_dist.errors import (
    CycleLimitExceededError,
    DuplicateTaskError,
    GraflowError,
    GraflowRuntimeError,
    GraflowWorkflowCanceledError,
    GraphCompilationError,
    ParallelGroupError,
    RetryLimitExceededError,
    TaskError,
    TaskExecutionError,
)

__all__ = [
    "CycleLimitExceededError",
    "DuplicateTaskError",
    "GraflowError",
    "GraflowRuntimeError",
    "GraflowWorkflowCanceledError",
    "GraphCompilationError",
    "ParallelGroupError",
    "RetryLimitExceededError",
    "TaskError",
    "TaskExecutionError",
]
