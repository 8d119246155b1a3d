"""What the tests' clusters share: fast failure detection, and where they keep things.

Imported by the conftest files and harnesses of every test package (tests/ is on
sys.path), so no suite spells these out again.
"""

from __future__ import annotations

from pathlib import Path

# Leases of 2 s renewed every 0.5 s: a lost worker's tasks come back within ~2.5 s.
LEASE_S = 2.0
HEARTBEAT_S = 0.5
GRACE_PERIOD_S = 5.0
LEADER_LEASE_S = 2.0
WORKER_OPTIONS = ["--lease-s", str(LEASE_S), "--heartbeat-s", str(HEARTBEAT_S),
                  "--grace-period-s", str(GRACE_PERIOD_S)]


def coordinator_options(root: Path, *extra: str) -> list[str]:
    """Checkpoints without absolute paths go to ``root / "checkpoints"``."""
    return ["--checkpoint-dir", str(root / "checkpoints"), *extra]


def checkpoint_dir_of(cluster: object) -> Path:
    """The checkpoint directory a test cluster's coordinators were given: checkpoints a
    task asks for on the cluster must lie inside it (the coordinator refuses others)."""
    options = list(getattr(cluster, "coordinator_options", []))
    return Path(options[options.index("--checkpoint-dir") + 1])
