"""The submitting process dies right after submit; the run completes and attach() finds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from graflow_dist import Client
from reliability.harness import wait_run

SUBMITTER = '''
import os, signal, sys, time
from graflow_dist import Client, task, workflow

with workflow("orphan") as wf:
    @task
    def slow() -> int:
        time.sleep(0.5)
        return 20

    @task
    def double(slow: int) -> int:
        return slow * 2 + 2

    slow >> double

run = Client(sys.argv[1]).submit(wf)
print(run.session_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the client is gone the moment submit returned
'''


def test_run_survives_its_client_and_can_be_attached(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(workers=1)
    script = tmp_path / "submitter.py"
    script.write_text(SUBMITTER)
    done = subprocess.run([sys.executable, str(script), cluster.url], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == -9, done.stderr
    session_id = done.stdout.strip()
    run = Client(cluster.url).attach(session_id)
    assert wait_run(run, timeout_s=30) == 42
    assert run.get_result("slow") == 20
