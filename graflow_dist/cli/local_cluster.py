"""``graflow-dist up``: a whole cluster on this machine, optionally running the demo."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time

import redis
from rich.console import Console

from graflow_dist.broker.connection import REDIS_URL_ENV, check_connection, connect, mask_url
from graflow_dist.cli.progress import watch
from graflow_dist.client import Client
from graflow_dist.demo import build_demo_workflow
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import GraflowError
from graflow_dist.worker.service import DEFAULT_GRACE_PERIOD_S


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


# A throwaway cluster's runs vanish with it: its workers get this long to stop.
THROWAWAY_STOP_TIMEOUT_S = 2.0


def run_up(redis_url: str | None, workers: int, demo: bool, chaos: bool,
           data_dir: str | None, lease_s: float | None, ui_port: int | None = None, *,
           ignored_env_url: str | None = None, grace_period_s: float | None = None) -> None:
    """Run a local cluster until Ctrl-C (or the demo's end).

    ``redis_url`` is a Redis given on the command line; ``ignored_env_url`` one found
    only in the environment, which ``up`` does not use (it says so).
    """
    console = Console(stderr=True, soft_wrap=True)  # whole lines, also in a log file
    out = Console(soft_wrap=True)  # stdout: the URL to submit to, for scripts too
    if ignored_env_url is not None:
        console.print(f"note: ignoring {REDIS_URL_ENV}={mask_url(ignored_env_url)}: up starts "
                      "its own Redis (pass --redis-url to use an existing one)",
                      highlight=False)
    if redis_url is not None:  # one clear line for a bad URL, not a child's traceback
        probe = connect(redis_url)
        try:
            check_connection(probe, redis_url)
        finally:
            probe.close()
    worker_options = []
    if lease_s is not None:
        worker_options = ["--lease-s", str(lease_s), "--heartbeat-s", str(min(1.0, lease_s / 3))]
    if ui_port and not port_is_free(ui_port):
        console.print(f"port {ui_port} is taken: the web console gets a free one")
        ui_port = 0
    grace_s = DEFAULT_GRACE_PERIOD_S if grace_period_s is None else grace_period_s
    worker_options += ["--grace-period-s", str(grace_s)]
    cluster = LocalCluster(workers, redis_url=redis_url, data_dir=data_dir,
                           worker_options=worker_options, ui_port=ui_port)
    interrupts = []

    def on_signal(*_: object) -> None:
        interrupts.append(time.monotonic())
        if len(interrupts) == 2:
            console.print("second interrupt: killing the services now")
            cluster.kill_services()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    redis_part = (f"using the Redis at {mask_url(redis_url)}" if redis_url
                  else "starting redis")
    console.print(f"{redis_part}, 1 coordinator, {plural(workers, 'worker')} ...",
                  highlight=False)
    try:
        cluster.start()
    except (RuntimeError, redis.RedisError) as exc:  # a service did not come up
        cluster.stop()  # nothing that did start is left behind
        raise GraflowError(f"the local cluster did not start: {exc}") from None
    ok = True
    try:
        out.print(f"[bold]ready[/]  redis: {cluster.url}")
        out.print(f"  export {REDIS_URL_ENV}={cluster.url}")
        if cluster.ui is not None:
            out.print(f"  web console: {cluster.ui_url}")
        console.print(f"  logs: {cluster.data_dir}")
        if demo:
            ok = _run_demo(cluster, console, chaos)
        else:
            console.print("submit with: graflow-dist submit MODULE:ATTR --wait   (Ctrl-C stops)")
            while not interrupts:
                time.sleep(0.2)
    finally:
        if cluster.temporary:
            console.print("stopping the cluster: its Redis and runs are temporary, so "
                          "running tasks are dropped ...")
            cluster.stop(THROWAWAY_STOP_TIMEOUT_S)
        else:
            console.print(f"stopping the cluster: workers finish or hand back their running "
                          f"tasks (at most {grace_s:g} s; Ctrl-C again to stop at once) ...")
            cluster.stop()
        console.print("stopped")
    if not ok:
        sys.exit(1)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _run_demo(cluster: LocalCluster, console: Console, chaos: bool) -> bool:
    client = Client(cluster.url)
    wf = build_demo_workflow(task_seconds=0.3 if chaos else 0.05)
    run = client.submit(wf)
    console.print(f"submitted the demo workflow: session {run.session_id}")
    if chaos:
        _kill_a_worker_mid_run(cluster, run, console)
    started = time.monotonic()
    final = watch(run, console)
    try:
        result = run.wait(timeout=60)
    except GraflowError as exc:
        console.print(f"[red]run {final.status}[/]: {exc}")
        return False
    console.print(f"[green]run {final.status}[/] in {time.monotonic() - started:.1f} s")
    ctx = run.context()
    # The same count as the progress line (tasks, not the parallel group around them).
    console.print(f"completed tasks: {final.done} of {final.total}; steps: {ctx.steps}")
    console.print(f"checkpoint: {ctx.last_checkpoint_path}")
    console.print(f"result: {result}")
    return True


def _kill_a_worker_mid_run(cluster: LocalCluster, run: object, console: Console) -> None:
    """SIGKILL one worker's process group once tasks are running (a lost node)."""

    def killer() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            progress = run.progress()  # type: ignore[attr-defined]
            if progress.running > 0 and progress.done >= 1:
                victim = cluster.workers[0]
                victim.kill()
                console.print(f"[red bold]chaos:[/] SIGKILLed worker pid {victim.pid} with "
                              f"{progress.running} tasks in flight; its tasks are re-dispatched "
                              "when its lease expires")
                return
            time.sleep(0.02)

    threading.Thread(target=killer, daemon=True).start()


__all__ = ["run_up"]
