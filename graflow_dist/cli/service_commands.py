"""Long-running commands: worker, coordinator, and ``up`` (a local cluster)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click
import redis
import structlog

from graflow_dist.broker.connection import connect, wait_for_connection
from graflow_dist.broker.keys import Keyspace
from graflow_dist.cli.app import cli
from graflow_dist.cli.local_cluster import run_up
from graflow_dist.coordinator.service import (
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_LEADER_LEASE_S,
    DEFAULT_RUN_TTL_S,
    Coordinator,
)
from graflow_dist.observability.logging import LOG_FORMAT_ENV, LOG_LEVEL_ENV
from graflow_dist.observability.metrics import Metrics, serve_health
from graflow_dist.trace.factory import TRACER_ENV, TRACER_NAMES
from graflow_dist.web.settings import DEFAULT_PORT as DEFAULT_UI_PORT
from graflow_dist.worker.child import ExecutorSettings
from graflow_dist.worker.service import (
    DEFAULT_GRACE_PERIOD_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_S,
)
from graflow_dist.worker.supervisor import Supervisor

log = structlog.get_logger("graflow_dist.cli")
STARTUP_TIMEOUT_ENV = "GRAFLOW_DIST_STARTUP_TIMEOUT_S"
TASK_TIMEOUT_ENV = "GRAFLOW_DIST_TASK_TIMEOUT_S"

startup_timeout_option = click.option(
    "--startup-timeout-s", type=float, envvar=STARTUP_TIMEOUT_ENV, default=0.0,
    show_default=True,
    help="Keep retrying an unreachable Redis this long at start (e.g. while Redis itself "
         f"starts) [env {STARTUP_TIMEOUT_ENV}]; refused credentials fail at once.")


def _connected(ctx: click.Context, startup_timeout_s: float) -> redis.Redis:
    client = connect(ctx.obj["redis_url"])
    wait_for_connection(client, ctx.obj["redis_url"], startup_timeout_s,
                        lambda exc: log.warning("waiting for redis", error=str(exc),
                                                timeout_s=startup_timeout_s))
    return client


def _on_sigterm(handler: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())


@cli.command()
@click.option("--queue", default=None, help="RQ queue name (default: the prefix).")
@click.option("--concurrency", type=int, default=1, show_default=True,
              help="Executor processes to run (each claims and runs tasks on its own).")
@click.option("--name", default=None, help="Worker name (default: host-pid-random).")
@click.option("--lease-s", type=float, envvar="GRAFLOW_DIST_LEASE_S", default=DEFAULT_LEASE_S,
              show_default=True, help="A task is re-dispatched this long after the last "
                                      "heartbeat of its worker.")
@click.option("--heartbeat-s", type=float, envvar="GRAFLOW_DIST_HEARTBEAT_S",
              default=DEFAULT_HEARTBEAT_S, show_default=True)
@click.option("--grace-period-s", type=float, envvar="GRAFLOW_DIST_GRACE_PERIOD_S",
              default=DEFAULT_GRACE_PERIOD_S, show_default=True,
              help="On SIGTERM, time the running task gets before it is handed back.")
@click.option("--metrics-port", type=int, envvar="GRAFLOW_DIST_METRICS_PORT", default=0,
              help="Serve /metrics, /livez, /readyz on this port (0: off).")
@click.option("--tracer", "tracer_name", type=click.Choice(TRACER_NAMES), envvar=TRACER_ENV,
              default="auto", show_default=True,
              help="Task tracing: otel (spans through the process's OpenTelemetry SDK), "
                   "console, noop; auto is otel when opentelemetry-api is installed.")
@click.option("--task-timeout-s", type=click.FloatRange(min=0), envvar=TASK_TIMEOUT_ENV,
              default=0.0, show_default=True,
              help="Timeout of tasks without @task(timeout=...): past it the process running "
                   "the task is killed and replaced, and the task fails with "
                   f"TaskTimeoutError (retried per its policy); 0: none [env {TASK_TIMEOUT_ENV}].")
@startup_timeout_option
@click.pass_context
def worker(ctx: click.Context, queue: str | None, concurrency: int, name: str | None,
           lease_s: float, heartbeat_s: float, grace_period_s: float,
           metrics_port: int, tracer_name: str, task_timeout_s: float,
           startup_timeout_s: float) -> None:
    """Run a worker: a supervisor and N executor processes that claim task batches from
    the queue and execute them; the supervisor kills and replaces an executor whose task
    ran past its timeout or whose run was cancelled."""
    if heartbeat_s >= lease_s:
        raise click.BadParameter(f"{heartbeat_s} s must be shorter than the lease "
                                 f"(--lease-s {lease_s})", param_hint="--heartbeat-s")
    # Checked before starting executors: ones that cannot connect would be replaced
    # forever instead of reporting the error.
    client = _connected(ctx, startup_timeout_s)
    settings = ExecutorSettings(queue=queue, lease_s=lease_s, heartbeat_s=heartbeat_s,
                                grace_period_s=grace_period_s, tracer=tracer_name,
                                task_timeout_s=task_timeout_s)
    logging = ctx.find_root().params  # the executors log like their supervisor
    env = {env_name: logging[option] for option, env_name in
           (("log_format", LOG_FORMAT_ENV), ("log_level", LOG_LEVEL_ENV)) if logging.get(option)}
    supervisor = Supervisor(client, keyspace=Keyspace.from_env(ctx.obj["prefix"]),
                            redis_url=ctx.obj["redis_url"], concurrency=concurrency, name=name,
                            settings=settings, env=env)
    if metrics_port:
        serve_health(metrics_port, supervisor.metrics, supervisor.ready)
    _on_sigterm(supervisor.request_stop)
    supervisor.run()


@cli.command()
@click.option("--checkpoint-dir", envvar="GRAFLOW_DIST_CHECKPOINT_DIR",
              default=DEFAULT_CHECKPOINT_DIR, show_default=True,
              help="Directory (or redis:// store) for checkpoints without absolute paths.")
@click.option("--leader-lease-s", type=float, default=DEFAULT_LEADER_LEASE_S,
              show_default=True, help="A standby takes over this long after the leader died.")
@click.option("--run-ttl-s", type=int, default=DEFAULT_RUN_TTL_S, show_default=True,
              help="How long a finished run's data stays in Redis.")
@click.option("--checkpoint-every-steps", type=int, default=0,
              help="Automatic checkpoint of every run each N steps (0: off).")
@click.option("--checkpoint-every-s", type=float, default=0.0,
              help="Automatic checkpoint of every run each T seconds (0: off).")
@click.option("--metrics-port", type=int, envvar="GRAFLOW_DIST_METRICS_PORT", default=0)
@startup_timeout_option
@click.pass_context
def coordinator(ctx: click.Context, checkpoint_dir: str, leader_lease_s: float,
                run_ttl_s: int, checkpoint_every_steps: int, checkpoint_every_s: float,
                metrics_port: int, startup_timeout_s: float) -> None:
    """Run a coordinator (run two: one leads, the other stands by)."""
    client = _connected(ctx, startup_timeout_s)
    metrics = Metrics()
    coord = Coordinator(client, keyspace=Keyspace.from_env(ctx.obj["prefix"]),
                        checkpoint_dir=checkpoint_dir, leader_lease_s=leader_lease_s,
                        run_ttl_s=run_ttl_s, checkpoint_every_steps=checkpoint_every_steps,
                        checkpoint_every_s=checkpoint_every_s, metrics=metrics)
    if metrics_port:
        serve_health(metrics_port, metrics, lambda: True)
    stop = threading.Event()
    _on_sigterm(stop.set)
    coord.run(stop)


@cli.command()
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--demo", is_flag=True, help="Run the demo workflow, show it, then stop.")
@click.option("--demo-chaos", is_flag=True,
              help="The demo, with a worker killed (SIGKILL) in the middle of the run.")
@click.option("--data-dir", default=None, help="Keep Redis data and logs here.")
@click.option("--lease-s", type=float, default=None, help="Worker lease (default 10, "
                                                          "3 with --demo-chaos).")
@click.option("--ui-port", type=int, default=DEFAULT_UI_PORT, show_default=True,
              help="Port of the web console on 127.0.0.1 (a free one if taken).")
@click.option("--no-ui", is_flag=True, help="Do not start the web console.")
@click.pass_context
def up(ctx: click.Context, workers: int, demo: bool, demo_chaos: bool,
       data_dir: str | None, lease_s: float | None, ui_port: int, no_ui: bool) -> None:
    """A local cluster: embedded redis-server, a coordinator, N workers and the web
    console (its URL is printed)."""
    run_up(ctx.obj["redis_url"], workers, demo or demo_chaos, demo_chaos, data_dir,
           lease_s if lease_s is not None else (3.0 if demo_chaos else None),
           None if no_ui else ui_port)
