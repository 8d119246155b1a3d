"""The host side: start a system's driver process (see `peers.base`), send it
workloads, stop it and everything it started by PID, also on errors and Ctrl-C."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path
from typing import Any

from graflow_dist.embedded.processes import kill_process, stop_process
from peers.base import BENCH_DIR, URL_ENV

DEFAULT_START_TIMEOUT_S = 120.0
DEFAULT_STOP_TIMEOUT_S = 30.0


class DriverError(RuntimeError):
    """A driver failed to start, died, or reported a failed workload."""


class SystemProcess:
    """One system under benchmark, driven through its adapter's driver process."""

    def __init__(self, system: str, module: str, python: str, redis_url: str, workers: int,
                 logs: Path, env: dict[str, str] | None = None) -> None:
        self.system = system
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.stderr_path = logs / "driver.log"
        self.cmd = [python, "-m", module, "--redis-url", redis_url,
                    "--workers", str(workers), "--logs", str(logs)]
        self.env = {**os.environ, **(env or {}), URL_ENV: redis_url}
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> SystemProcess:
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                cwd=BENCH_DIR, env=self.env, text=True, start_new_session=True)
        self.ready = self._read(timeout_s)
        if not self.ready.get("ready"):
            raise DriverError(f"{self.system}: driver did not start: {self.ready}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.ready.get("versions", {}))

    @property
    def workloads(self) -> list[str]:
        return list(self.ready.get("workloads", []))

    def pids(self) -> dict[str, list[int]]:
        """Role -> PIDs, the driver itself as ``client``."""
        return {**self.ready.get("pids", {}), "client": [self.pid]}

    def run(self, workload: str, size: int, timeout_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"op": "run", "workload": workload,
                                              "size": size}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise DriverError(f"{self.system}: driver exited; see {self.stderr_path}") from None
        reply = self._read(timeout_s)
        if "error" in reply:
            raise DriverError(f"{self.system} {workload} {size}: {reply['error']} "
                              f"(logs in {self.logs})")
        return reply

    def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            what = "no reply within" if not ready else "driver exited; waited"
            raise DriverError(f"{self.system}: {what} {timeout_s:.0f} s; "
                              f"see {self.stderr_path}:\n{_tail(self.stderr_path)}")
        return json.loads(line)

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Ask the driver to stop its services; then SIGTERM, SIGKILL, and kill the
        process groups of every service it reported, in case it could not."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                stop_process(proc, 5, group=True)
        clean = proc.poll() == 0
        kill_process(proc, group=True)
        if not clean:  # the driver may have left its services running
            for pids in self.ready.get("pids", {}).values():
                for pid in pids:
                    _killpg(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()


def _killpg(pid: int, sig: int) -> None:
    """Signal the process group that ``pid`` leads (only group leaders we started)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of a live process, in MB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""

