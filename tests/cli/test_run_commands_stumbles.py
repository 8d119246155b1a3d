"""submit, status, watch as a newcomer meets them: typed JSON, no silent wait without a
coordinator, Ctrl-C that says the run goes on, and a run's age in `watch`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLI = Callable[..., subprocess.CompletedProcess[str]]
GRAFLOW_DIST = Path(sys.executable).parent / "graflow-dist"
# Runs a command with Ctrl-C acting as on a terminal: a test suite started in the
# background of a shell without job control (nohup, `cmd &` in a script) inherits
# SIGINT ignored, and Python then leaves it ignored, as it should for a user.
WITH_CTRL_C = [sys.executable, "-c", "import os, signal, sys; "
               "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"]

FLOWS = textwrap.dedent("""
    import time
    from pathlib import Path

    from graflow_dist import task, workflow

    HERE = Path(__file__).parent

    with workflow("quick") as wf:

        @task
        def one():
            return 1

        @task
        def two(one):
            return one + 1

        one >> two

    with workflow("slow") as slow:

        @task
        def four_seconds():
            (HERE / "started").touch()
            time.sleep(4)
            return "slept"
""")


def write_flows(directory: Path) -> Path:
    (directory / "flows.py").write_text(FLOWS)
    return directory


def wait_for(path: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_status_json_has_numbers_and_flags(
        tmp_path: Path, cluster: object, redis_url: str, graflow_dist: CLI) -> None:
    write_flows(tmp_path)
    submitted = graflow_dist("--redis-url", redis_url, "submit", "flows.py:wf", "--wait",
                             cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    session = submitted.stdout.split()[0]
    record = json.loads(graflow_dist("--redis-url", redis_url, "status", session,
                                     "--json").stdout)
    assert (record["status"], record["workflow"]) == ("completed", "quick")
    assert (record["done"], record["total"], record["failed"], record["pending"]) == (2, 2, 0, 0)
    assert isinstance(record["steps"], int) and isinstance(record["max_steps"], int)
    assert isinstance(record["submitted_at"], float)
    assert record["finished_at"] >= record["submitted_at"]
    assert record["resume"] is False


def test_submit_wait_without_a_coordinator_says_so(
        tmp_path: Path, redis_url: str, graflow_dist: CLI) -> None:
    write_flows(tmp_path)
    proc = graflow_dist("--redis-url", redis_url, "submit", "flows.py:wf", "--wait",
                        "--timeout", "1", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == ("warning: no coordinator is running for prefix 'graflow' on this "
                        "Redis: the run waits until one starts (graflow-dist coordinator, "
                        "or graflow-dist up)")
    # The client starts a fresh run itself (a coordinator takes it over when one runs):
    # nothing completes without one.
    assert "still running after 1.0 s (0/2 tasks done)" in lines[-1]


def test_ctrl_c_on_submit_wait_says_the_run_goes_on(
        tmp_path: Path, cluster: object, redis_url: str, graflow_dist: CLI,
        env_with: Callable[..., Any]) -> None:
    write_flows(tmp_path)
    proc = subprocess.Popen([*WITH_CTRL_C, str(GRAFLOW_DIST), "--redis-url", redis_url,
                             "submit", "flows.py:slow", "--wait"], cwd=tmp_path, env=env_with(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    session = proc.stdout.readline().strip()  # what the user sees before pressing Ctrl-C
    wait_for(tmp_path / "started")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out == "" and "Aborted!" not in err and "Traceback" not in err
    assert (f"stopped waiting; run {session} goes on on the cluster. Re-attach with: "
            f"graflow-dist watch {session}") in err
    watched = graflow_dist("--redis-url", redis_url, "watch", session)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.strip() == f"run {session} completed"


def test_watch_shows_the_runs_age_not_the_watchers(
        tmp_path: Path, cluster: object, redis_url: str, graflow_dist: CLI) -> None:
    write_flows(tmp_path)
    session = graflow_dist("--redis-url", redis_url, "submit", "flows.py:slow",
                           cwd=tmp_path).stdout.strip()
    wait_for(tmp_path / "started")
    time.sleep(2.5)
    started_watching = time.monotonic()
    watched = graflow_dist("--redis-url", redis_url, "watch", session)
    assert watched.returncode == 0, watched.stderr
    watching_s = time.monotonic() - started_watching
    shown = re.findall(r"\b0:00:(\d\d)\b", watched.stderr)
    assert shown, watched.stderr
    # The run took about 4 s; the watcher saw only its last ~1.5 s.
    assert int(shown[-1]) >= 4 > watching_s
