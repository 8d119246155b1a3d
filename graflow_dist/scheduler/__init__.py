"""The pure frontier state machine shared by the in-process engine and the coordinator."""

from graflow_dist.scheduler.events import (
    CheckpointRequest,
    Decision,
    NextTask,
    RunEnd,
    RunStatus,
    TaskOutcome,
)
from graflow_dist.scheduler.frontier import FrontierSnapshot, GroupProgress
from graflow_dist.scheduler.specs import (
    DEFAULT_MAX_CYCLES,
    GraphShape,
    GroupPolicySpec,
    NodeShape,
    RetrySettings,
    TaskSpec,
)
from graflow_dist.scheduler.state import DEFAULT_CRASH_LIMIT, DEFAULT_MAX_STEPS, Scheduler

__all__ = [
    "CheckpointRequest",
    "DEFAULT_CRASH_LIMIT",
    "DEFAULT_MAX_CYCLES",
    "DEFAULT_MAX_STEPS",
    "Decision",
    "FrontierSnapshot",
    "GraphShape",
    "GroupPolicySpec",
    "GroupProgress",
    "NextTask",
    "NodeShape",
    "RetrySettings",
    "RunEnd",
    "RunStatus",
    "Scheduler",
    "TaskOutcome",
    "TaskSpec",
]
