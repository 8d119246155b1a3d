"""Helpers shared by bench/run.py and bench/profile_services.py.

Process bookkeeping (every child we start is remembered by PID and stopped by PID, also
on Ctrl-C / SIGTERM), per-process CPU from /proc, Redis INFO deltas, a Redis client
that counts the benchmark's own commands (so they can be subtracted), and the
workloads (fan-out and chain) for graflow-dist.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from graflow_dist.embedded.processes import send_signal, stop_process

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RQ_BIN = str(Path(sys.executable).parent / "rq")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes --------------------------------------------------------------------------


class Children:
    """Child processes we started, stopped by PID: SIGTERM, then SIGKILL."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: list[str], log_path: Path, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                    env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
        stop_process(proc, timeout_s)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self, timeout_s: float = 5.0) -> None:
        for proc in list(self.procs):
            send_signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in list(self.procs):
            self.stop(proc, timeout_s=max(0.1, deadline - time.monotonic()))


@contextmanager
def terminate_on_signals() -> Iterator[None]:
    """SIGTERM/SIGHUP raise SystemExit and SIGINT KeyboardInterrupt (even when the
    shell started us with SIGINT ignored, as it does for `cmd &`), so `finally` blocks
    run and every child gets stopped."""

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, _exit) for s in (signal.SIGTERM, signal.SIGHUP)}
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def uninterruptible() -> Iterator[None]:
    """Let clean-up finish even if Ctrl-C is pressed again."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def children_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc): a ``graflow-dist worker`` is a
    supervisor whose executor processes run the tasks."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(child) for child in fh.read().split()]
    except OSError:
        return []


def tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


# --- redis ----------------------------------------------------------------------------


class CountingRedis(redis.Redis):
    """A client that counts the commands it sends itself while `counting` is on
    (pipelines are not counted: only direct calls such as polls go through here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counting = False
        self.counts: Counter[str] = Counter()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.counting:
            self.counts[str(args[0]).lower()] += 1
        return super().execute_command(*args, **options)

    @contextmanager
    def counted(self) -> Iterator[None]:
        self.counting = True
        try:
            yield
        finally:
            self.counting = False


def commandstats(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({k[len("cmdstat_"):]: int(v["calls"]) for k, v in stats.items()})


def redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


class Probe:
    """Redis commands and CPU of a set of processes over one measured interval.

    ``own`` is the benchmark's own polling (subtracted); ``background`` is a per-second
    rate of idle traffic (heartbeats, idle blocking pops) subtracted for the interval.
    """

    def __init__(self, client: redis.Redis, pids: dict[str, list[int]]) -> None:
        self.client = client
        self.pids = pids

    def __enter__(self) -> Probe:
        self.cmd0 = commandstats(self.client)
        self.rcpu0 = redis_cpu(self.client)
        self.cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in self.pids.items()}
        self.pcpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.duration = time.perf_counter() - self.t0
        self.cpu = {k: sum(cpu_seconds(p) for p in v) - self.cpu0[k]
                    for k, v in self.pids.items()}
        self.cpu["bench client"] = time.process_time() - self.pcpu0
        self.cpu["redis-server"] = redis_cpu(self.client) - self.rcpu0
        self.commands = commandstats(self.client) - self.cmd0

    def net_commands(self, own: Counter[str], background: dict[str, float]
                     ) -> dict[str, float]:
        net: dict[str, float] = {}
        for name, calls in self.commands.items():
            if name in ("info", "config|resetstat", "config"):
                continue
            value = calls - own.get(name, 0) - background.get(name, 0.0) * self.duration
            if value > 0.5:
                net[name] = value
        return net


LONG_SCRIPT_WAIT_S = 600.0


class MemorySampler:
    """Redis ``used_memory`` before an interval and its peak during it (sampled every
    ``every_s`` from a thread of its own, on its own connection): the Redis memory a
    workload's data takes, on a server that may have served earlier workloads."""

    def __init__(self, url: str, every_s: float = 0.1) -> None:
        # Patient: a long Lua script holds Redis (and this sample) for seconds.
        self.client = redis.Redis.from_url(url, socket_timeout=LONG_SCRIPT_WAIT_S)
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.peak = max(self.peak, self._used())
            except redis.ResponseError as exc:  # BUSY: a script past lua-time-limit
                if not str(exc).startswith("BUSY"):
                    raise

    def __enter__(self) -> MemorySampler:
        self.before = self.peak = self._used()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = self._used()
        self.client.close()

    def summary_mb(self) -> dict[str, float]:
        return {k: round(v / 2**20, 1) for k, v in
                (("before", self.before), ("peak", self.peak), ("after", self.after))}


def background_rate(client: redis.Redis, seconds: float) -> dict[str, float]:
    """Commands per second that arrive while nothing is being benchmarked."""
    before = commandstats(client)
    time.sleep(seconds)
    after = commandstats(client)
    return {k: v / seconds for k, v in (after - before).items() if k != "info"}


def wait_until(pred: Callable[[], bool], timeout_s: float, what: str,
               poll_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


# --- graflow-dist workloads -----------------------------------------------------------


def fanout_workflow(n: int) -> Any:
    """source >> parallel(n no-op tasks) >> join; returns n."""
    from graflow_dist import parallel, task, workflow

    def leaf(i: int) -> Any:
        @task(f"leaf_{i}")
        def run() -> None:
            return None

        return run

    with workflow(f"bench-fanout-{n}") as wf:

        @task("source")
        def source() -> None:
            return None

        @task("join")
        def join() -> int:
            return n

        source >> parallel(*[leaf(i) for i in range(n)]) >> join
    return wf


def chain_workflow(n: int) -> Any:
    """step_0 >> step_1 >> ... >> step_{n-1} (no-ops); the last returns n."""
    from graflow_dist import chain, task, workflow

    def step(i: int) -> Any:
        @task(f"step_{i}")
        def run() -> int | None:
            return n if i == n - 1 else None

        return run

    with workflow(f"bench-chain-{n}") as wf:
        chain(*[step(i) for i in range(n)])
    return wf
