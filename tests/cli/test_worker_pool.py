"""`graflow-dist worker --concurrency N`: a supervisor over N executor processes, health
and the executors' summed metrics on one port, clean SIGTERM, executors' logs visible."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from graflow_dist.embedded.redis_server import free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    # HTTPException: polling a loopback port in the ephemeral range before anything
    # listens on it can connect the socket to itself (it reads back its own request).
    except (OSError, http.client.HTTPException):
        return 0, ""


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_worker_pool_serves_health_and_stops_on_sigterm(redis_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow_dist.cli.main", "--redis-url", redis_url,
         "--log-format", "json", "worker", "--concurrency", "2", "--metrics-port", str(port)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        urls = [f"http://127.0.0.1:{port}/{path}" for path in ("livez", "readyz", "metrics")]
        while time.monotonic() < deadline and not all(_get(u)[0] == 200 for u in urls):
            time.sleep(0.1)
        assert [_get(u)[0] for u in urls] == [200, 200, 200]
        metrics = _get(urls[2])[1]
        assert 'graflow_tasks_total{outcome="done"} 0.0' in metrics
        assert "graflow_task_timeouts_total 0.0" in metrics
        assert len(_children(proc.pid)) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.count('"event": "worker started"') == 2, err
    assert err.count('"event": "worker stopped"') == 2
    assert '"event": "worker supervisor stopped"' in err
    assert "Traceback" not in err


def test_a_worker_whose_whole_process_group_gets_sigterm_stops_quietly(
        redis_url: str) -> None:
    """As Ctrl-C in a terminal or a stop of the group does: each executor gets the
    signal twice (directly, and passed on by its supervisor). The late one used to kill
    it while it exited, logged as an executor that died."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow_dist.cli.main", "--redis-url", redis_url,
         "--log-format", "json", "worker", "--concurrency", "2"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        # Both executors past their imports, their handlers set.
        while time.monotonic() < deadline and "".join(lines).count(
                '"event": "worker started"') < 2:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    err = "".join(lines)
    assert proc.returncode == 0, err
    assert err.count('"event": "worker stopped"') == 2, err
    assert "executor exited" not in err, err
