"""The CLI end to end, as a new user drives it: ``graflow-dist up``, then ``submit``,
``status``, ``runs``, ``watch``, ``cancel``, ``checkpoints list`` and ``resume`` against it,
and Ctrl-C to stop it all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from graflow_dist.broker.connection import REDIS_URL_ENV
from graflow_dist.broker.keys import Keyspace

CLI = Callable[..., subprocess.CompletedProcess[str]]
UpProcess = Any  # conftest.UpProcess
RQ = Path(sys.executable).parent / "rq"

SQUARES_WORKFLOW = textwrap.dedent("""
    from pathlib import Path

    from graflow_dist import task, workflow

    RAN = Path(__file__).with_name("ran.log")  # tasks run on workers of this host


    def ran(name):
        with RAN.open("a") as log:
            log.write(name + "\\n")


    with workflow("squares") as wf:

        @task
        def numbers():
            ran("numbers")
            return list(range(1, 11))

        @task(inject_context=True)
        def squares(ctx, numbers):
            ran("squares")
            ctx.checkpoint(metadata={"stage": "squares"})
            return [n * n for n in numbers]

        @task
        def total(squares):
            ran("total")
            return sum(squares)

        numbers >> squares >> total
""")

BLOCKING_WORKFLOW = textwrap.dedent("""
    import time
    from pathlib import Path

    from graflow_dist import task, workflow

    HERE = Path(__file__).parent


    def build():
        with workflow("blocking") as wf:

            @task
            def wait_for_release():
                (HERE / "started").touch()
                deadline = time.monotonic() + 30
                while not (HERE / "release").exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                return "released"

            @task
            def after(wait_for_release):
                (HERE / "after_ran").touch()

            wait_for_release >> after
        return wf
""")


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def squares_run(up_cluster: UpProcess) -> tuple[str, subprocess.CompletedProcess[str]]:
    """``submit squares.py:wf --wait`` with the URL in ``GRAFLOW_DIST_REDIS_URL``;
    returns the session id and the finished command."""
    (up_cluster.cwd / "squares.py").write_text(SQUARES_WORKFLOW)
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    proc = ok(subprocess.run(
        [str(Path(sys.executable).parent / "graflow-dist"), "submit", "squares.py:wf",
         "--wait"], cwd=up_cluster.cwd, env={**env, REDIS_URL_ENV: up_cluster.url},
        capture_output=True, text=True, timeout=60))
    return proc.stdout.splitlines()[0].strip(), proc


def test_up_prints_its_url_and_runs_a_coordinator_and_two_workers(
    up_cluster: UpProcess, processes: Any,
) -> None:
    assert urlsplit(up_cluster.url).hostname == "127.0.0.1"
    assert f"export GRAFLOW_DIST_REDIS_URL={up_cluster.url}" in up_cluster.stdout()
    with redis.Redis.from_url(up_cluster.url) as client:
        keyspace = Keyspace.from_env()
        assert client.exists(keyspace.leader)
        assert client.zcard(keyspace.workers) == 2
    info = subprocess.run([str(RQ), "info", "-u", up_cluster.url, "--only-workers"],
                          capture_output=True, text=True, timeout=60)
    assert "2 workers" in info.stdout
    # redis-server, the coordinator, the workers and the web console are children of `up`.
    assert len(processes.children(up_cluster.pid)) == 5
    (line,) = [ln for ln in up_cluster.stdout().splitlines() if "web console: " in ln]
    console = line.split("web console: ")[1].strip()
    assert console.startswith("http://127.0.0.1:")
    assert httpx.get(console + "api/workers", timeout=30).json()["workers"]


def test_up_gives_its_redis_a_random_password_kept_out_of_argv_and_logs(
    up_cluster: UpProcess, processes: Any,
) -> None:
    parts = urlsplit(up_cluster.url)
    password = parts.password or ""
    assert len(password) >= 32
    with redis.Redis(host="127.0.0.1", port=parts.port, socket_timeout=5) as anonymous, \
            pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    services = [up_cluster.pid, *processes.children(up_cluster.pid)]
    for pid in services:
        assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes(), \
            f"the password is in the argv of pid {pid}"
    logs = Path(re.search(r"logs: (\S+)", up_cluster.stderr()).group(1))
    written = [p for p in logs.rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in written)
    for path in written:
        assert password.encode() not in path.read_bytes(), f"the password is in {path}"


def test_submit_wait_prints_the_session_and_result(
    squares_run: tuple[str, subprocess.CompletedProcess[str]],
) -> None:
    session, proc = squares_run
    assert len(session) == 32
    assert proc.stdout.splitlines()[1:] == [f"run {session} completed", "result: 385"]


def test_status_shows_a_finished_run(
    up_cluster: UpProcess, squares_run: tuple[str, subprocess.CompletedProcess[str]],
    graflow_dist: CLI,
) -> None:
    session, _ = squares_run
    out = ok(graflow_dist("--redis-url", up_cluster.url, "status", session)).stdout
    assert f"session:  {session}" in out
    assert "workflow: squares" in out
    assert "status:   completed" in out
    assert "tasks:    3 done, 0 running, 0 pending, 0 failed (of 3)" in out

    record = json.loads(ok(graflow_dist("--redis-url", up_cluster.url, "status", session,
                                        "--json")).stdout)
    assert (record["session_id"], record["status"]) == (session, "completed")


def test_runs_lists_the_run(
    up_cluster: UpProcess, squares_run: tuple[str, subprocess.CompletedProcess[str]],
    graflow_dist: CLI,
) -> None:
    session, _ = squares_run
    lines = ok(graflow_dist("--redis-url", up_cluster.url, "runs")).stdout.splitlines()
    line = next((x for x in lines if x.startswith(session)), None)
    assert line is not None, lines
    assert "completed" in line and "3/3" in line and "squares" in line


def test_watch_a_run_to_its_end(up_cluster: UpProcess, graflow_dist: CLI) -> None:
    submitted = ok(graflow_dist("--redis-url", up_cluster.url, "submit", "squares.py:wf",
                                cwd=up_cluster.cwd))
    session = submitted.stdout.strip()
    watched = ok(graflow_dist("--redis-url", up_cluster.url, "watch", session))
    assert watched.stdout.strip().splitlines()[-1] == f"run {session} completed"


def test_checkpoints_list_and_resume(
    up_cluster: UpProcess, squares_run: tuple[str, subprocess.CompletedProcess[str]],
    graflow_dist: CLI,
) -> None:
    session, _ = squares_run
    listed = ok(graflow_dist("checkpoints", "list", session, cwd=up_cluster.cwd)).stdout
    lines = listed.splitlines()
    assert len(lines) == 1, listed
    assert "step 2" in lines[0] and "'stage': 'squares'" in lines[0]
    checkpoint = next(word for word in lines[0].split() if word.endswith(".pkl"))
    assert f"checkpoints/{session}/" in checkpoint
    assert session in ok(graflow_dist("checkpoints", "list", cwd=up_cluster.cwd)).stdout
    other = ok(graflow_dist("checkpoints", "list", "no-such-session", cwd=up_cluster.cwd))
    assert other.stdout == "" and "no checkpoints found" in other.stderr

    ran_log = up_cluster.cwd / "ran.log"
    ran_before = ran_log.read_text().splitlines()
    resumed = ok(graflow_dist("--redis-url", up_cluster.url, "resume", checkpoint, "--wait",
                              cwd=up_cluster.cwd))
    assert resumed.stdout.splitlines() == [session, f"run {session} completed", "result: 385"]
    # Only the task after the checkpoint ran again.
    assert ran_log.read_text().splitlines()[len(ran_before):] == ["total"]


def test_cancel_a_running_run(up_cluster: UpProcess, graflow_dist: CLI) -> None:
    folder = up_cluster.cwd / "blocking"
    folder.mkdir()
    (folder / "blocking.py").write_text(BLOCKING_WORKFLOW)
    url = ["--redis-url", up_cluster.url]
    session = ok(graflow_dist(*url, "submit", "blocking/blocking.py:build",
                              cwd=up_cluster.cwd)).stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while not (folder / "started").exists():
            assert time.monotonic() < deadline, "the blocking task never started"
            time.sleep(0.02)
        assert "status:   running" in ok(graflow_dist(*url, "status", session)).stdout
        cancelled = ok(graflow_dist(*url, "cancel", session, "--reason", "user pressed stop"))
        assert cancelled.stdout.strip() == f"cancellation of {session} requested"
        watched = graflow_dist(*url, "watch", session)
    finally:
        (folder / "release").touch()
    assert watched.returncode == 1
    assert "Traceback" not in watched.stderr
    assert f"run {session} cancelled" in watched.stdout
    assert "WorkflowCancelledError" in watched.stderr and "user pressed stop" in watched.stderr
    status = ok(graflow_dist(*url, "status", session)).stdout
    assert "status:   cancelled" in status
    assert "user pressed stop" in status
    assert not (folder / "after_ran").exists()


def test_ctrl_c_stops_up_and_everything_it_started(
    tmp_path: Path, start_up: Callable[..., UpProcess], processes: Any,
) -> None:
    up = start_up(tmp_path, "--workers", "2")
    services = processes.children(up.pid)
    assert len(services) == 5, "redis-server, a coordinator, two workers and the console"
    executors = {pid for service in services for pid in processes.children(service)}
    assert len(executors) == 2, "each worker runs its tasks in an executor process"
    with redis.Redis.from_url(up.url) as client:
        assert client.ping()
    assert up.interrupt() == 0
    assert "Traceback" not in up.stderr()
    assert up.stderr().rstrip().endswith("stopped")
    assert not [pid for pid in services | executors if processes.running(pid)], \
        "services left running"
    with redis.Redis.from_url(up.url, socket_connect_timeout=1) as client, \
            pytest.raises(redis.ConnectionError):
        client.ping()


@pytest.mark.parametrize("extras", ["test extras", "none"])
def test_up_demo_runs_the_demo_and_exits(tmp_path: Path, graflow_dist: CLI, extras: str,
                                         env_without_optional: dict[str, str]) -> None:
    """The README's Quick start, also as its install leaves it: without the optional
    modules (OpenTelemetry, networkx, matplotlib) that the test extra installs."""
    env = env_without_optional if extras == "none" else None
    proc = ok(graflow_dist("up", "--demo", "--no-ui", cwd=tmp_path, env=env,
                           timeout_s=120))
    output = proc.stdout + proc.stderr
    assert "result: sum of squares = 1240, refined estimate = 156.75" in output
    assert "run completed" in output
    # The progress line and the summary count the same things (tasks, not the group).
    assert " 20 done 0 running 0 pending 0 failed" in output
    assert "completed tasks: 20 of 20;" in output
    assert list((tmp_path / "checkpoints").iterdir()), "the demo's loop checkpoints"


def test_submit_wait_of_a_failing_run_exits_1_with_the_task_error(
    up_cluster: UpProcess, graflow_dist: CLI
) -> None:
    (up_cluster.cwd / "failing.py").write_text(textwrap.dedent("""
        from graflow_dist import task, workflow

        with workflow("failing") as wf:

            @task
            def load():
                return {"rows": 0}

            @task
            def divide(load):
                return 100 / load["rows"]

            load >> divide
    """))
    proc = graflow_dist("--redis-url", up_cluster.url, "submit", "failing.py:wf", "--wait",
                        cwd=up_cluster.cwd)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    session = proc.stdout.strip()
    assert proc.stderr.strip() == (f"run {session} failed: task 'divide' failed: "
                                   "ZeroDivisionError: division by zero")


def test_a_checkpoint_the_cluster_refused_is_reported(
    up_cluster: UpProcess, graflow_dist: CLI
) -> None:
    """The run goes on (as it does on a cluster), and every command that shows the run's
    end says which checkpoint was not written and why."""
    (up_cluster.cwd / "escaping.py").write_text(textwrap.dedent("""
        from graflow_dist import task, workflow

        with workflow("escaping") as wf:

            @task(inject_context=True)
            def save(ctx):
                ctx.checkpoint(path="../../elsewhere/save")
                return "saved"
    """))
    url = ("--redis-url", up_cluster.url)
    proc = ok(graflow_dist(*url, "submit", "escaping.py:wf", "--wait", cwd=up_cluster.cwd))
    session = proc.stdout.splitlines()[0]
    assert proc.stdout.splitlines()[1:] == [f"run {session} completed", "result: 'saved'"]
    refusal = (f"warning: run {session}: a checkpoint was not written: checkpoint "
               "../../elsewhere/save: refused: outside the coordinator's checkpoint "
               "directory ")
    assert proc.stderr.startswith(refusal), proc.stderr
    assert "CheckpointWarning" not in proc.stderr and "client.py" not in proc.stderr

    watched = ok(graflow_dist(*url, "watch", session))
    assert watched.stdout.strip().splitlines()[-1] == f"run {session} completed"
    assert watched.stderr.splitlines()[-1].startswith(refusal), watched.stderr  # after the bar
    status = ok(graflow_dist(*url, "status", session)).stdout
    assert "checkpoint failed: checkpoint ../../elsewhere/save: refused: outside" in status
    assert "checkpoint: " not in status
