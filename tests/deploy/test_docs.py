"""What deploy/README.md says about the processes matches what they do (the behaviour
itself is tested in tests/cli/test_worker_pool.py and tests/observability)."""

from __future__ import annotations

import inspect
import re

from deploy.rendering import REPO
from graflow_dist.cli import service_commands

DEPLOY_README = REPO / "deploy" / "README.md"


def test_the_pools_metrics_ports_are_described_as_they_are() -> None:
    text = " ".join(DEPLOY_README.read_text().split())
    assert "try to bind the same metrics port" not in text
    pool = " ".join(inspect.getdoc(service_commands._worker_pool).split())
    # The code's own description: the pool on P, child i on P + 1 + i.
    assert "serves /livez and /readyz" in pool and "P + 1 + i" in pool
    assert re.search(r"metrics port P then serves the pool's `/livez`, `/readyz`", text)
    assert "child i (0..N-1) serves its task metrics on port P+1+i" in text
