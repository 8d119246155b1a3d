"""Tests for the embedded redis-server wrapper."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from graflow_dist.embedded import RedisServer, RedisServerError, find_redis_server, free_port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_find_redis_server_is_executable() -> None:
    path = find_redis_server()
    assert os.access(path, os.X_OK)


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536


def test_set_get_on_session_server(redis_client: redis.Redis, redis_url: str) -> None:
    assert redis_url.startswith("redis://127.0.0.1:")
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"


def test_redis_url_fixture_flushes_between_tests(redis_client: redis.Redis) -> None:
    assert redis_client.get("k") is None


def test_password_required(tmp_path: Path) -> None:
    password = 'p@ss w"rd/\\:'  # URL- and config-hostile characters on purpose
    with RedisServer(password=password, dir=tmp_path) as server:
        assert server.url.startswith("redis://:")
        no_retry = Retry(NoBackoff(), 0)  # AuthenticationError is retried by default
        with redis.Redis(host="127.0.0.1", port=server.port, retry=no_retry) as anon:
            with pytest.raises(redis.AuthenticationError):
                anon.get("k")
        with redis.Redis.from_url(server.url) as client:
            client.set("k", "v")
            assert client.get("k") == b"v"
        # The password must not leak into the process command line.
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert password.encode() not in cmdline


def test_aof_survives_kill_and_restart(tmp_path: Path) -> None:
    server = RedisServer(appendonly=True, dir=tmp_path)
    with server:
        port, first_pid = server.port, server.pid
        with redis.Redis.from_url(server.url) as client:
            client.set("durable", "yes")
        time.sleep(1.6)  # > one appendfsync everysec period
        server.kill()
        assert first_pid is not None and not _pid_alive(first_pid)
        server.restart()
        assert server.port == port and server.pid != first_pid
        with redis.Redis.from_url(server.url) as client:
            assert client.get("durable") == b"yes"


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    server = RedisServer(dir=tmp_path).start()
    pid = server.pid
    assert pid is not None and _pid_alive(pid)
    server.stop()
    assert not server.running
    assert not _pid_alive(pid)
    assert (tmp_path / "redis.log").exists()


def test_temp_dir_removed_on_exit() -> None:
    with RedisServer() as server:
        data_dir = server.dir
        assert data_dir.is_dir()
    assert not data_dir.exists()


def test_startup_failure_reports_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "fake-redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: bogus config' >&2\nexit 1\n")
    fake.chmod(0o755)
    server = RedisServer(dir=tmp_path, executable=str(fake))
    with pytest.raises(RedisServerError, match="(?s)exited during startup.*FATAL: bogus config"):
        server.start(timeout_s=5)
    assert not server.running
