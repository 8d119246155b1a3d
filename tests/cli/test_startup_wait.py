"""Services started before Redis wait for it (`--startup-timeout-s`), as on Kubernetes
where pods and Redis start in any order."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import redis

from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.redis_server import free_port


def _collect(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


Started = tuple[list[subprocess.Popen[str]], list[list[str]], list[threading.Thread]]


def _start_waiting(url: str) -> Started:
    """A worker and a coordinator started before Redis, once both are retrying it
    (however long their start-up takes on a loaded machine)."""
    env_cmd = [sys.executable, "-m", "graflow_dist.cli.main", "--redis-url", url,
               "--log-format", "json"]
    procs = [subprocess.Popen([*env_cmd, kind, "--startup-timeout-s", "30"],
                              stderr=subprocess.PIPE, text=True)
             for kind in ("worker", "coordinator")]
    errs: list[list[str]] = [[] for _ in procs]
    readers = [threading.Thread(target=_collect, args=(p.stderr, lines), daemon=True)
               for p, lines in zip(procs, errs, strict=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 30
    while not all(any('"waiting for redis"' in line for line in lines) for lines in errs):
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            _end(procs)
            raise AssertionError(f"services did not wait for redis: {errs}")
        time.sleep(0.05)
    return procs, errs, readers


def _end(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_worker_and_coordinator_wait_for_a_late_redis(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    procs, errs, readers = _start_waiting(url)
    try:
        with RedisServer(port=port, dir=tmp_path / "redis") as server:
            client = redis.Redis.from_url(server.url)
            keys = Keyspace.from_env()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                    client.exists(keys.leader) and client.zcard(keys.workers)):
                time.sleep(0.05)
            assert client.exists(keys.leader) and client.zcard(keys.workers) == 1
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=40)
    finally:
        _end(procs)
    for reader in readers:
        reader.join(timeout=5)
    assert [p.returncode for p in procs] == [0, 0]
    assert all("Traceback" not in "".join(lines) for lines in errs)


def test_sigterm_while_waiting_for_redis_stops_at_once() -> None:
    """A pod stopped before Redis came up: it holds nothing, so it exits 0 at once
    instead of dying of the signal."""
    procs, errs, readers = _start_waiting(f"redis://127.0.0.1:{free_port()}/0")
    try:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=10) for p in procs]
    finally:
        _end(procs)
    for reader in readers:
        reader.join(timeout=5)
    assert codes == [0, 0], errs
    for lines in errs:
        text = "".join(lines)
        assert '"stopped before it started"' in text and "Traceback" not in text
