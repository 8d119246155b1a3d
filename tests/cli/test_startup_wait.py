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


def test_worker_and_coordinator_wait_for_a_late_redis(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
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
    try:
        # Redis starts only once both services are retrying it (however long their
        # start-up takes on a loaded machine).
        deadline = time.monotonic() + 30
        while not all(any('"waiting for redis"' in line for line in lines) for lines in errs):
            assert all(p.poll() is None for p in procs), "a service gave up instead of waiting"
            assert time.monotonic() < deadline, f"services never waited for redis: {errs}"
            time.sleep(0.05)
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
        for p in procs:
            if p.poll() is None:
                p.kill()
    for reader in readers:
        reader.join(timeout=5)
    assert [p.returncode for p in procs] == [0, 0]
    assert all("Traceback" not in "".join(lines) for lines in errs)
