"""What deploy/README.md says about the processes matches what they do (the behaviour
itself is tested in tests/cli/test_worker_pool.py and tests/observability)."""

from __future__ import annotations

import inspect

from deploy.rendering import REPO
from graflow_dist.cli import service_commands

DEPLOY_README = REPO / "deploy" / "README.md"


def test_the_workers_metrics_port_is_described_as_it_is() -> None:
    text = " ".join(DEPLOY_README.read_text().split())
    assert "try to bind the same metrics port" not in text
    assert "P+1+i" not in text  # executors serve no port of their own
    worker = " ".join(inspect.getdoc(service_commands.worker.callback).split())
    # The code's own description: one supervisor over N executors, one metrics port.
    assert "a supervisor and N executor processes" in worker
    assert "the metrics port serves the N executors' summed metrics" in text
