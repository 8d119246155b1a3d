"""Started parallel groups as the scheduler tracks them, and their evaluation against
their policy (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from graflow_dist.scheduler.frontier import GroupProgress
from graflow_dist.scheduler.specs import GroupPolicySpec


class GroupRun:
    """A started group: which members are still out (an ordered set: a member's end
    costs O(1) however large the group), which succeeded, which failed and why."""

    __slots__ = ("outstanding", "succeeded", "failed")

    def __init__(self, outstanding: Iterable[str], succeeded: Iterable[str] = (),
                 failed: dict[str, str] | None = None) -> None:
        self.outstanding = dict.fromkeys(outstanding)
        self.succeeded = list(succeeded)
        self.failed = dict(failed or {})

    @classmethod
    def of(cls, progress: GroupProgress) -> GroupRun:
        return cls(progress.outstanding, progress.succeeded, progress.failed)

    def progress(self) -> GroupProgress:
        return GroupProgress(list(self.outstanding), list(self.succeeded), dict(self.failed))

    def finish(self, member: str, failure: str | None) -> int | None:
        """Record ``member``'s end; its sequence number within this round, or None if
        it was not outstanding."""
        if member not in self.outstanding:
            return None
        del self.outstanding[member]
        seq = len(self.succeeded) + len(self.failed)
        if failure is None:
            self.succeeded.append(member)
        else:
            self.failed[member] = failure
        return seq


def group_satisfied(policy: GroupPolicySpec, progress: GroupProgress | GroupRun) -> bool:
    """Whether a group whose members all finished may release its successors."""
    if policy.kind == "best_effort":
        return True
    if policy.kind == "at_least_n":
        return len(progress.succeeded) >= policy.min_success
    if policy.kind == "critical":
        return not any(t in progress.failed for t in policy.critical_tasks)
    return not progress.failed
