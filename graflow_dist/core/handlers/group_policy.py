"""Parallel group policies, at Graflow's module path
(``graflow.core.handlers.group_policy``): whether a group whose members all finished
may release its successors."""

from __future__ import annotations

from collections.abc import Iterable

from graflow_dist.scheduler.specs import GroupPolicySpec


class GroupPolicy:
    """Base of the object-style group policies (Graflow's names)."""

    def to_spec(self, members: list[str]) -> GroupPolicySpec:
        raise NotImplementedError


class StrictGroupPolicy(GroupPolicy):
    def to_spec(self, members: list[str]) -> GroupPolicySpec:
        return GroupPolicySpec("strict")


class BestEffortGroupPolicy(GroupPolicy):
    def to_spec(self, members: list[str]) -> GroupPolicySpec:
        return GroupPolicySpec("best_effort")


class AtLeastNGroupPolicy(GroupPolicy):
    """The group succeeds when at least ``min_success`` members succeeded."""

    def __init__(self, min_success: int) -> None:
        if min_success < 1:
            raise ValueError(f"AtLeastNGroupPolicy: min_success must be >= 1, got {min_success}")
        self.min_success = min_success

    def to_spec(self, members: list[str]) -> GroupPolicySpec:
        if self.min_success > len(members):
            raise ValueError(
                f"AtLeastNGroupPolicy({self.min_success}) cannot be met by a group of "
                f"{len(members)} tasks ({', '.join(members)})"
            )
        return GroupPolicySpec("at_least_n", min_success=self.min_success)


class CriticalGroupPolicy(GroupPolicy):
    """The group succeeds when every task in ``critical_task_ids`` succeeded."""

    def __init__(self, critical_task_ids: Iterable[str]) -> None:
        self.critical_task_ids = list(critical_task_ids)

    def to_spec(self, members: list[str]) -> GroupPolicySpec:
        unknown = [t for t in self.critical_task_ids if t not in members]
        if unknown:
            raise ValueError(
                f"CriticalGroupPolicy: {unknown} are not members of the group ({members})"
            )
        return GroupPolicySpec("critical", critical_tasks=tuple(self.critical_task_ids))


_POLICY_NAMES: dict[str, type[GroupPolicy]] = {
    "strict": StrictGroupPolicy,
    "best_effort": BestEffortGroupPolicy,
}


def policy_spec(policy: str | GroupPolicy, members: list[str]) -> GroupPolicySpec:
    if isinstance(policy, GroupPolicy):
        return policy.to_spec(members)
    if policy in _POLICY_NAMES:
        return _POLICY_NAMES[policy]().to_spec(members)
    raise ValueError(
        f"unknown group policy {policy!r}: use 'strict', 'best_effort', "
        "AtLeastNGroupPolicy(n) or CriticalGroupPolicy([...])"
    )


GroupExecutionPolicy = GroupPolicy  # Graflow's name for the base class

__all__ = [
    "AtLeastNGroupPolicy",
    "BestEffortGroupPolicy",
    "CriticalGroupPolicy",
    "GroupExecutionPolicy",
    "GroupPolicy",
    "StrictGroupPolicy",
    "policy_spec",
]
