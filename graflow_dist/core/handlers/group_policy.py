"""Group policies at Graflow's module path (``graflow.core.handlers.group_policy``)."""

from graflow_dist.core.task import (
    AtLeastNGroupPolicy,
    BestEffortGroupPolicy,
    CriticalGroupPolicy,
    GroupPolicy,
    StrictGroupPolicy,
)

GroupExecutionPolicy = GroupPolicy  # Graflow's name for the base class

__all__ = [
    "AtLeastNGroupPolicy",
    "BestEffortGroupPolicy",
    "CriticalGroupPolicy",
    "GroupExecutionPolicy",
    "StrictGroupPolicy",
]
