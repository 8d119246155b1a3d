"""Hostile or broken command-line input: one clear line (or click's usage error), never a
traceback: non-UTF-8 and glob session ids, bad prefixes, nonsense durations, weak
secrets, tampered checkpoints."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli_errors import one_line_error

from graflow_dist import task, workflow

CLI = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize("session", [b"\xff\xfe-not-utf8", b"*", b"../../..", b"a:b"])
@pytest.mark.parametrize("command", ["status", "watch", "cancel"])
def test_hostile_session_ids(redis_url: str, graflow_dist: CLI, command: str,
                             session: bytes) -> None:
    line = one_line_error(graflow_dist("--redis-url", redis_url, command, session))
    assert "invalid session id" in line


def test_a_prefix_with_a_separator(redis_url: str, graflow_dist: CLI) -> None:
    line = one_line_error(graflow_dist("--redis-url", redis_url, "--prefix", "a:b", "runs"))
    assert "invalid deployment prefix" in line and "'a:b'" in line


@pytest.mark.parametrize("option", [["--lease-s", "nan"], ["--lease-s", "-1"],
                                    ["--heartbeat-s", "inf"], ["--concurrency", "0"],
                                    ["--metrics-port", "70000"], ["--queue", "q:x"],
                                    ["--name", "*"], ["--max-result-bytes", "0"]])
def test_nonsense_worker_options_are_usage_errors(redis_url: str, graflow_dist: CLI,
                                                  option: list[str]) -> None:
    proc = graflow_dist("--redis-url", redis_url, "worker", *option)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"Invalid value for '{option[0]}'" in proc.stderr


def test_a_continuation_longer_than_a_job_can_carry_is_a_usage_error(
        redis_url: str, graflow_dist: CLI) -> None:
    proc = graflow_dist("--redis-url", redis_url, "coordinator", "--max-continuation", "2000")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "Invalid value for '--max-continuation'" in proc.stderr and "1024" in proc.stderr


@pytest.mark.parametrize("service", ["worker", "coordinator"])
@pytest.mark.parametrize(("secret", "message"), [("", "is set but empty"),
                                                 ("abc", "holds 3 characters")])
def test_services_refuse_a_weak_or_empty_secret(redis_url: str, graflow_dist: CLI,
                                                env_with: Callable[..., dict[str, str]],
                                                service: str, secret: str,
                                                message: str) -> None:
    proc = graflow_dist("--redis-url", redis_url, service,
                        env=env_with(GRAFLOW_DIST_SECRET=secret))
    assert message in one_line_error(proc)


@pytest.fixture
def checkpoint_base(tmp_path: Path) -> Path:
    base = tmp_path / "ck" / "run"
    with workflow("to-tamper") as wf:

        @task(inject_context=True)
        def first(ctx) -> int:  # noqa: ANN001
            ctx.checkpoint(path=str(base))
            return 1

        @task
        def second(first: int) -> int:
            return first + 1

        first >> second
    wf.execute()
    return base


@pytest.mark.parametrize(("suffix", "change", "cause"), [
    (".state.json", {"pending_tasks": [{"task_id": "second", "token": "e.1",
                                        "not_before": "soon"}]}, "not_before"),
    (".state.json", {"cycle_counts": []}, "cycle_counts"),
    (".meta.json", {"schema_version": [1]}, "unknown schema_version"),
])
def test_resume_of_a_tampered_checkpoint(redis_url: str, graflow_dist: CLI,
                                         checkpoint_base: Path, suffix: str,
                                         change: dict[str, object], cause: str) -> None:
    path = Path(f"{checkpoint_base}{suffix}")
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    line = one_line_error(graflow_dist("--redis-url", redis_url, "resume",
                                       f"{checkpoint_base}.pkl"))
    assert line.startswith(f"error: checkpoint {path}: ") and cause in line
