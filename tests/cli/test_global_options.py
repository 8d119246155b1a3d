"""Global options work after the command name too, and numbers out of range are refused
with a clear line (not run with a surprising meaning)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from importlib.metadata import version

import pytest

from graflow_dist.embedded import free_port

CLI = Callable[..., subprocess.CompletedProcess[str]]


def usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stderr


@pytest.mark.parametrize("args", [
    pytest.param(["runs"], id="runs"),
    pytest.param(["status", "s-1"], id="status"),
    pytest.param(["watch", "s-1"], id="watch"),
    pytest.param(["worker"], id="worker"),
    pytest.param(["coordinator"], id="coordinator"),
])
def test_redis_url_after_the_command_is_used(graflow_dist: CLI, args: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = graflow_dist(*args, "--redis-url", url, timeout_s=30)
    assert "No such option" not in proc.stderr
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == proc.stderr.strip().splitlines()[0]
    assert proc.stderr.startswith(f"error: cannot reach Redis at {url}")


def test_the_url_after_the_command_wins_over_the_one_before(
        redis_url: str, graflow_dist: CLI) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc = graflow_dist("--redis-url", dead, "runs", "--redis-url", redis_url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_prefix_and_log_options_after_the_command(redis_url: str, graflow_dist: CLI) -> None:
    proc = graflow_dist("status", "no-such-run", "--redis-url", redis_url, "--prefix", "other",
                        "--log-format", "json", "--log-level", "debug")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: unknown session 'no-such-run'")
    bad = graflow_dist("runs", "--log-format", "xml", "--redis-url", redis_url)
    assert "'xml' is not one of 'json', 'console'" in usage_error(bad)


def test_log_format_after_the_command_formats_the_service_logs(
        graflow_dist: CLI) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = graflow_dist("worker", "--redis-url", url, "--startup-timeout-s", "0.3",
                        "--log-format", "json", timeout_s=30)
    assert proc.returncode == 1
    waiting = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert waiting and waiting[0]["event"] == "waiting for redis"


def test_version(graflow_dist: CLI) -> None:
    for flag in ("--version", "-V"):
        proc = graflow_dist(flag)
        assert proc.returncode == 0
        assert proc.stdout.strip() == f"graflow-dist, version {version('graflow-dist')}"


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_runs_refuses_a_limit_below_one(redis_url: str, graflow_dist: CLI, limit: str) -> None:
    err = usage_error(graflow_dist("--redis-url", redis_url, "runs", "--limit", limit))
    assert "Invalid value for '--limit'" in err and ">=1" in err


@pytest.mark.parametrize("command", [["worker", "--concurrency"], ["up", "--workers"]])
def test_worker_counts_below_one_are_refused(graflow_dist: CLI, command: list[str]) -> None:
    err = usage_error(graflow_dist(*command, "0"))
    assert f"Invalid value for '{command[1]}'" in err and ">=1" in err
