"""Graflow's ``graflow.exceptions`` names, for code moving over by import rename."""

from graflow_dist.errors import (  # noqa: F401
    CycleLimitExceededError,
    DuplicateTaskError,
    GraflowError,
    GraflowRuntimeError,
    GraflowWorkflowCanceledError,
    GraphCompilationError,
    ParallelGroupError,
    RetryLimitExceededError,
    TaskExecutionError,
)

TaskError = TaskExecutionError
