"""/metrics, /livez and /readyz listen on loopback unless told otherwise (a pod says
0.0.0.0). Loopback has many addresses: 127.0.0.2 reaches a server bound to every
interface, and not one bound to 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from graflow_dist.embedded import free_port
from graflow_dist.embedded.processes import stop_process
from graflow_dist.observability.metrics import DEFAULT_METRICS_HOST, Metrics, serve_health


def _reachable(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_by_default_only_loopback_127_0_0_1_is_served() -> None:
    assert DEFAULT_METRICS_HOST == "127.0.0.1"
    port = free_port()
    server = serve_health(port, Metrics(), lambda: True)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as reply:
            assert reply.read() == b"ok\n"
        assert not _reachable("127.0.0.2", port)
    finally:
        server.shutdown()
        server.server_close()


def test_every_interface_when_configured() -> None:
    port = free_port()
    server = serve_health(port, Metrics(), lambda: True, "0.0.0.0")
    try:
        assert _reachable("127.0.0.2", port)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("host_args", "outside"), [([], False),
                                                    (["--metrics-host", "0.0.0.0"], True)])
def test_a_worker_binds_as_configured(redis_url: str, tmp_path: Path, host_args: list[str],
                                      outside: bool) -> None:
    port = free_port()
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "graflow_dist.cli.main", "--redis-url",
                             redis_url, "worker", "--metrics-port", str(port), *host_args],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _reachable("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "worker.log").read_text()
            time.sleep(0.05)
        assert _reachable("127.0.0.2", port) is outside
    finally:
        stop_process(proc, 20)
        log.close()
