"""`graflow-dist worker --concurrency N`: N child workers, health on one port, clean
SIGTERM, children's logs visible."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
import urllib.request

from graflow_dist.embedded.redis_server import free_port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    # HTTPException: polling a loopback port in the ephemeral range before anything
    # listens on it can connect the socket to itself (it reads back its own request).
    except (OSError, http.client.HTTPException):
        return 0


def test_worker_pool_serves_health_and_stops_on_sigterm(redis_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graflow_dist.cli.main", "--redis-url", redis_url,
         "--log-format", "json", "worker", "--concurrency", "2", "--metrics-port", str(port)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        urls = [f"http://127.0.0.1:{port}/livez", f"http://127.0.0.1:{port}/readyz",
                f"http://127.0.0.1:{port + 1}/metrics", f"http://127.0.0.1:{port + 2}/metrics"]
        while time.monotonic() < deadline and not all(_get(u) == 200 for u in urls):
            time.sleep(0.1)
        assert [_get(u) for u in urls] == [200, 200, 200, 200]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.count('"event": "worker started"') == 2, err
    assert err.count('"event": "worker stopped"') == 2
    assert "Traceback" not in err
