"""Fixtures of the CLI tests: run ``graflow-dist`` as a user would (a subprocess), and
``graflow-dist up`` as a long-running local cluster."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from graflow_dist.broker.connection import REDIS_URL_ENV

GRAFLOW_DIST = Path(sys.executable).parent / "graflow-dist"
COMMAND_TIMEOUT_S = 60.0
UP_READY_TIMEOUT_S = 30.0
UP_STOP_TIMEOUT_S = 60.0
URL_PATTERN = re.compile(r"redis://[^\s]+")


def cli_env(**overrides: str) -> dict[str, str]:
    """The test process's environment (signing secret included) without a default
    Redis URL, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    env.update(overrides)
    return env


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run ``graflow-dist ARGS`` to completion and capture its output."""
    return subprocess.run([str(GRAFLOW_DIST), *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout_s)


# What graflow-dist imports only when a feature needs it (graflow_dist.optional), and the
# test extra installs: hidden by `env_without_optional`, as on a machine with the README's
# Quick start install (`pip install -e '.[embedded]'`).
OPTIONAL_MODULES = ("opentelemetry", "networkx", "matplotlib", "pygraphviz")


@pytest.fixture
def env_without_optional(tmp_path: Path) -> dict[str, str]:
    """An environment whose Python processes (the CLI and every service it starts)
    cannot import `OPTIONAL_MODULES`, as if they were not installed."""
    site = tmp_path / "without-optional"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        f"for name in {OPTIONAL_MODULES!r}:\n"
        "    sys.modules[name] = None  # import raises ModuleNotFoundError\n")
    path = os.environ.get("PYTHONPATH")
    return cli_env(PYTHONPATH=f"{site}{os.pathsep}{path}" if path else str(site))


@pytest.fixture
def graflow_dist() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``graflow_dist(*args, cwd=None, env=None, timeout_s=60)``: see `run_cli`."""
    return run_cli


@pytest.fixture
def env_with() -> Callable[..., dict[str, str]]:
    """``env_with(NAME=value, ...)``: see `cli_env`."""
    return cli_env


class ProcessTable:
    """What /proc says about processes."""

    @staticmethod
    def children(pid: int) -> set[int]:
        """Processes whose parent is ``pid``."""
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # exited meanwhile
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
        return found

    @staticmethod
    def running(pid: int) -> bool:
        """Whether ``pid`` exists and is not a zombie."""
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return False
        return state != "Z"


@pytest.fixture
def processes() -> ProcessTable:
    return ProcessTable()


class UpProcess:
    """A ``graflow-dist up`` subprocess with its output in files under ``cwd``."""

    def __init__(self, cwd: Path, *options: str, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.stdout_path = cwd / "up.stdout"
        self.stderr_path = cwd / "up.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([str(GRAFLOW_DIST), "up", *options], cwd=cwd,
                                         env=env or cli_env(), stdout=out, stderr=err,
                                         start_new_session=True)
        self.url = self._wait_for_url()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + UP_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            found = URL_PATTERN.search(self.stdout())
            if found:
                return found.group(0)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"`graflow-dist up` printed no Redis URL on stdout:\n"
                             f"stdout: {self.stdout()}\nstderr: {self.stderr()}")

    def interrupt(self, timeout_s: float = UP_STOP_TIMEOUT_S) -> int:
        """Ctrl-C: SIGINT to the ``up`` process; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout_s)

    def wait_for_stderr(self, text: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.stderr():
            assert time.monotonic() < deadline, f"{text!r} not on stderr:\n{self.stderr()}"
            time.sleep(0.05)

    def kill(self) -> None:
        """Last resort after a failed test: SIGKILL ``up`` and the processes it started
        (each service runs in a process group of its own)."""
        for pid in [*ProcessTable.children(self.pid), self.pid]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def _shut_down(up: UpProcess) -> None:
    try:
        up.interrupt()
    finally:
        if up.proc.poll() is None:
            up.kill()


@pytest.fixture(scope="module")
def up_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    """``graflow-dist up --workers 2`` in a fresh directory, shared by a module's tests
    (checkpoints without a path land in that directory's ``checkpoints/``)."""
    up = UpProcess(tmp_path_factory.mktemp("up"), "--workers", "2")
    try:
        yield up
    finally:
        _shut_down(up)


@pytest.fixture
def start_up() -> Iterator[Callable[..., UpProcess]]:
    """``start_up(directory, *options, env=None)``: a ``graflow-dist up`` of the test's
    own, shut down (or killed) at the end of the test if the test did not stop it."""
    started: list[UpProcess] = []

    def start(cwd: Path, *options: str, env: dict[str, str] | None = None) -> UpProcess:
        started.append(UpProcess(cwd, *options, env=env))
        return started[-1]

    yield start
    for up in started:
        _shut_down(up)
