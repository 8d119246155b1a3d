"""Evaluation of a finished parallel group against its policy (pure)."""

from __future__ import annotations

from graflow_dist.scheduler.frontier import GroupProgress
from graflow_dist.scheduler.specs import GroupPolicySpec


def group_satisfied(policy: GroupPolicySpec, progress: GroupProgress) -> bool:
    """Whether a group whose members all finished may release its successors."""
    if policy.kind == "best_effort":
        return True
    if policy.kind == "at_least_n":
        return len(progress.succeeded) >= policy.min_success
    if policy.kind == "critical":
        return not any(t in progress.failed for t in policy.critical_tasks)
    return not progress.failed
