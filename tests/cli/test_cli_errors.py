"""Bad input on the command line: one clear line on stderr, exit code 1, never a
traceback, never a password."""

from __future__ import annotations

import contextlib
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from reliability.loopback_proxy import LoopbackProxy

from graflow_dist import Client, task, workflow
from graflow_dist.broker.connection import refused_writes_error, writes_refused
from graflow_dist.embedded import RedisServer, free_port
from graflow_dist.errors import RedisRefusedWritesError

CLI = Callable[..., subprocess.CompletedProcess[str]]
PASSWORD = "correct-horse-battery"
WRONG_PASSWORD = "wrong-staple-guess"

WORKFLOW = """
from graflow_dist import task, workflow

with workflow("tiny") as wf:

    @task
    def only():
        return 1
"""

# Every command that talks to Redis.
REDIS_COMMANDS = [
    pytest.param(["runs"], id="runs"),
    pytest.param(["status", "some-session"], id="status"),
    pytest.param(["watch", "some-session"], id="watch"),
    pytest.param(["cancel", "some-session"], id="cancel"),
    pytest.param(["submit", "wf.py:wf"], id="submit"),
    pytest.param(["worker"], id="worker"),
    pytest.param(["worker", "--concurrency", "2"], id="worker-pool"),
    pytest.param(["coordinator"], id="coordinator"),
    pytest.param(["up", "--workers", "1"], id="up"),
]


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a failed command must print."""
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "wf.py").write_text(WORKFLOW)
    return tmp_path


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(password=PASSWORD, dir=tmp_path_factory.mktemp("auth-redis")) as server:
        yield server


@pytest.mark.parametrize("command", ["status", "watch", "cancel"])
def test_unknown_session(redis_url: str, graflow_dist: CLI, command: str) -> None:
    proc = graflow_dist("--redis-url", redis_url, command, "no-such-session")
    line = one_line_error(proc)
    assert line.startswith("error: unknown session 'no-such-session'")
    assert proc.stdout == ""


@pytest.mark.parametrize("args", REDIS_COMMANDS)
def test_nothing_listening_at_the_redis_url(
    workdir: Path, graflow_dist: CLI, args: list[str]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    line = one_line_error(graflow_dist("--redis-url", url, *args, cwd=workdir, timeout_s=30))
    assert line.startswith(f"error: cannot reach Redis at {url}")


def test_the_redis_url_environment_variable_is_used(
    workdir: Path, graflow_dist: CLI, env_with: Callable[..., dict[str, str]]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = graflow_dist("runs", cwd=workdir, env=env_with(GRAFLOW_DIST_REDIS_URL=url))
    assert one_line_error(proc).startswith(f"error: cannot reach Redis at {url}")


@pytest.mark.parametrize("args", REDIS_COMMANDS)
def test_a_wrong_redis_password(
    protected_redis: RedisServer, workdir: Path, graflow_dist: CLI, args: list[str]
) -> None:
    url = f"redis://:{WRONG_PASSWORD}@127.0.0.1:{protected_redis.port}/0"
    proc = graflow_dist("--redis-url", url, *args, cwd=workdir, timeout_s=30)
    line = one_line_error(proc)
    assert f"127.0.0.1:{protected_redis.port}" in line
    assert "refused the credentials" in line
    assert WRONG_PASSWORD not in proc.stderr + proc.stdout


@pytest.fixture(scope="module")
def not_redis() -> Iterator[int]:
    """A loopback port where something other than Redis answers (as a web server does)."""

    class Http(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(4096)
            self.request.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n<html>no</html>")

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Http) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server.server_address[1]
        server.shutdown()


@pytest.mark.parametrize("args", REDIS_COMMANDS)
def test_a_redis_url_where_something_else_answers(
    not_redis: int, workdir: Path, graflow_dist: CLI, args: list[str]
) -> None:
    url = f"redis://127.0.0.1:{not_redis}/0"
    line = one_line_error(graflow_dist("--redis-url", url, *args, cwd=workdir, timeout_s=30))
    assert line.startswith(f"error: {url} did not answer as a Redis server does"), line
    assert line.endswith("check the host and port in the URL"), line


@pytest.mark.parametrize("args", [["runs"], ["worker"]], ids=["runs", "worker"])
def test_a_missing_redis_password(
    protected_redis: RedisServer, workdir: Path, graflow_dist: CLI, args: list[str]
) -> None:
    url = f"redis://127.0.0.1:{protected_redis.port}/0"
    line = one_line_error(graflow_dist("--redis-url", url, *args, cwd=workdir))
    assert "password" in line


def test_the_right_password_works(protected_redis: RedisServer, graflow_dist: CLI) -> None:
    proc = graflow_dist("--redis-url", protected_redis.url, "runs")
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:port/0"])
def test_a_malformed_redis_url(workdir: Path, graflow_dist: CLI, url: str) -> None:
    line = one_line_error(graflow_dist("--redis-url", url, "runs", cwd=workdir))
    assert line.startswith(f"error: malformed Redis URL {url}")


@pytest.mark.parametrize(("target", "message"), [
    ("missing.py:wf", "no such workflow file: missing.py"),
    ("wf.py:nothing", "has no attribute 'nothing'"),
    ("wf.py", "expected MODULE:ATTR"),
    ("wf.py:__name__", "is a str; expected a workflow(...)"),
])
def test_a_bad_workflow_reference(
    redis_url: str, workdir: Path, graflow_dist: CLI, target: str, message: str
) -> None:
    line = one_line_error(graflow_dist("--redis-url", redis_url, "submit", target,
                                       cwd=workdir))
    assert message in line


def test_resume_of_a_missing_checkpoint(redis_url: str, tmp_path: Path, graflow_dist: CLI) -> None:
    missing = tmp_path / "nowhere" / "ckpt.pkl"
    line = one_line_error(graflow_dist("--redis-url", redis_url, "resume", str(missing)))
    assert line.startswith(f"error: checkpoint {tmp_path / 'nowhere' / 'ckpt'}")


@pytest.mark.parametrize("options", [["--lease-s", "1", "--heartbeat-s", "2"],
                                     ["--task-timeout-s", "-1"]],
                         ids=["heartbeat-not-shorter-than-lease", "negative-task-timeout"])
def test_bad_worker_settings_are_usage_errors(redis_url: str, graflow_dist: CLI,
                                              options: list[str]) -> None:
    proc = graflow_dist("--redis-url", redis_url, "worker", *options)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Error: Invalid value for " in proc.stderr and "--" in proc.stderr


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis that refuses writes: maxmemory reached under noeviction."""
    with RedisServer(dir=tmp_path / "full-redis") as server:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]))
        with contextlib.suppress(redis.exceptions.OutOfMemoryError):
            for i in range(1000):
                client.set(f"filler:{i}", b"x" * 10_000)
        yield server


def test_a_full_redis_is_one_clear_line_from_the_cli_and_an_error_from_the_client(
        full_redis: RedisServer, workdir: Path, graflow_dist: CLI) -> None:
    """Not redis-py's reply, which quoted the refused command: a binary code blob."""
    line = one_line_error(graflow_dist("--redis-url", full_redis.url, "submit", "wf.py:wf",
                                       cwd=workdir, timeout_s=30))
    assert line.startswith("error: Redis refuses writes: it is full (maxmemory"), line
    with workflow("tiny") as wf:

        @task
        def only() -> int:
            return 1

    with Client(full_redis.url) as client, pytest.raises(
            RedisRefusedWritesError, match="it is full .*raise maxmemory"):
        client.submit(wf)


@pytest.mark.parametrize(("reply", "says"), [
    (redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
     "read-only replica"),
    (redis.exceptions.ResponseError("Error running script: -MISCONF Redis is configured to "
                                    "save RDB snapshots, but it's unable to persist"),
     "cannot write its snapshot"),
    (redis.exceptions.ResponseError("BUSY Redis is busy running a script."), "busy"),
])
def test_each_kind_of_refused_writes_says_what_to_do(reply: Exception, says: str) -> None:
    assert writes_refused(reply)
    assert says in str(refused_writes_error(reply))
    assert not writes_refused(redis.exceptions.ResponseError("ERR unknown command"))


def test_redis_lost_in_the_middle_of_a_command_is_one_line(
        redis_url: str, workdir: Path, graflow_dist: CLI) -> None:
    """Redis answered at start, then went away (a loopback proxy the test owns cuts the
    connection and refuses the reconnections): one line, not redis-py's traceback."""
    with LoopbackProxy(urlsplit(redis_url).port or 0) as proxy:
        proxy.lose_reply_to(b"graflow:runs", then_refuse=True)
        line = one_line_error(graflow_dist("--redis-url", proxy.url(), "runs", cwd=workdir,
                                           timeout_s=60))
        assert proxy.lost.is_set()
    assert line.startswith("error: lost Redis: "), line
