"""Child processes of graflow-dist services (workers, coordinators), each in its own
process group so a test or demo can kill a whole "node" by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from graflow_dist.broker.connection import REDIS_URL_ENV

DEFAULT_STOP_TIMEOUT_S = 35.0


def send_signal(proc: subprocess.Popen[bytes], sig: int, *, group: bool = False) -> None:
    """Send ``sig`` to ``proc`` (or its whole process group) if it is still ours to
    signal: a process that exited and was reaped is never signalled (its PID may have
    been reused by now)."""
    if proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
                 *, group: bool = False) -> int | None:
    """The one way we end a child we started: SIGTERM (after SIGCONT, in case it was
    paused), SIGKILL after ``timeout_s``; returns its exit code."""
    if proc.poll() is None:
        send_signal(proc, signal.SIGCONT, group=group)
        send_signal(proc, signal.SIGTERM, group=group)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_process(proc, group=group)
    return proc.returncode


def kill_process(proc: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGKILL ``proc`` (or its group) and reap it: a crash, on purpose."""
    send_signal(proc, signal.SIGKILL, group=group)
    proc.wait()


def service_command(kind: str, redis_url: str | None, *options: str,
                    prefix: str | None = None) -> list[str]:
    """The command line of a service; without ``redis_url`` it reads the environment."""
    global_opts = ["--redis-url", redis_url] if redis_url else []
    if prefix:
        global_opts += ["--prefix", prefix]
    return [sys.executable, "-m", "graflow_dist.cli.main", *global_opts, kind, *options]


class ServiceProcess:
    """A running ``graflow-dist worker`` or ``coordinator`` child process."""

    def __init__(self, kind: str, redis_url: str | None, options: list[str] | None = None,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 cwd: str | None = None, prefix: str | None = None) -> None:
        self.kind = kind
        self.command = service_command(kind, None, *(options or []), prefix=prefix)
        self.env = {**os.environ, **(env or {})}
        if redis_url:  # in the environment, not argv: `ps` must not show a password
            self.env[REDIS_URL_ENV] = redis_url
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_requested = False  # stopped or killed on purpose, not crashed

    def start(self) -> ServiceProcess:
        # Without a log file the child shares our stdout/stderr (e.g. a worker pool).
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        err = subprocess.STDOUT if self.log_path else None
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=err,
                                     start_new_session=True, cwd=self.cwd)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process group (the whole simulated node)."""
        if self.proc is not None:
            send_signal(self.proc, sig, group=True)

    def kill(self) -> None:
        self.stop_requested = True
        if self.proc is not None:
            kill_process(self.proc, group=True)

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.proc is None:
            return None
        self.stop_requested = True
        return stop_process(self.proc, timeout_s, group=True)
