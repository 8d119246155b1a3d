"""Long-running commands: worker, coordinator, and ``up`` (a local cluster)."""

from __future__ import annotations

import signal
import threading
import urllib.error
import urllib.request
from typing import Any

import click
import redis
import structlog

from graflow_dist.broker.connection import connect, wait_for_connection
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.probe import RedisProbe
from graflow_dist.cli.app import cli
from graflow_dist.cli.local_cluster import run_up
from graflow_dist.coordinator.service import (
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_LEADER_LEASE_S,
    DEFAULT_RUN_TTL_S,
    Coordinator,
)
from graflow_dist.embedded.processes import ServiceProcess
from graflow_dist.errors import GraflowError
from graflow_dist.observability.metrics import COORDINATOR, POOL, WORKER, Metrics, serve_health
from graflow_dist.trace.factory import TRACER_ENV, TRACER_NAMES, tracer_from_name
from graflow_dist.web.settings import DEFAULT_PORT as DEFAULT_UI_PORT
from graflow_dist.worker.service import (
    DEFAULT_GRACE_PERIOD_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_S,
    Worker,
)

log = structlog.get_logger("graflow_dist.cli")
STARTUP_TIMEOUT_ENV = "GRAFLOW_DIST_STARTUP_TIMEOUT_S"
METRICS_PORT_ENV = "GRAFLOW_DIST_METRICS_PORT"

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
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes to run (each claims and runs tasks on its own).")
@click.option("--name", default=None, help="Worker name (default: host-pid-random).")
@click.option("--lease-s", type=float, envvar="GRAFLOW_DIST_LEASE_S", default=DEFAULT_LEASE_S,
              show_default=True, help="A task is re-dispatched this long after the last "
                                      "heartbeat of its worker.")
@click.option("--heartbeat-s", type=float, envvar="GRAFLOW_DIST_HEARTBEAT_S",
              default=DEFAULT_HEARTBEAT_S, show_default=True)
@click.option("--grace-period-s", type=float, envvar="GRAFLOW_DIST_GRACE_PERIOD_S",
              default=DEFAULT_GRACE_PERIOD_S, show_default=True,
              help="On SIGTERM, time the running task gets before it is handed back.")
@click.option("--metrics-port", type=int, envvar=METRICS_PORT_ENV, default=0,
              help="Serve /metrics, /livez, /readyz on this port (0: off).")
@click.option("--tracer", "tracer_name", type=click.Choice(TRACER_NAMES), envvar=TRACER_ENV,
              default="auto", show_default=True,
              help="Task tracing: otel (spans through the process's OpenTelemetry SDK), "
                   "console, noop; auto is otel when opentelemetry-api is installed.")
@startup_timeout_option
@click.pass_context
def worker(ctx: click.Context, queue: str | None, concurrency: int, name: str | None,
           lease_s: float, heartbeat_s: float, grace_period_s: float,
           metrics_port: int, tracer_name: str, startup_timeout_s: float) -> None:
    """Run a worker: claim task batches from the queue and execute them."""
    # Checked before starting a pool too: children that cannot connect would be
    # replaced forever instead of reporting the error.
    client = _connected(ctx, startup_timeout_s)
    if concurrency > 1:
        client.close()
        options = ["--lease-s", str(lease_s), "--heartbeat-s", str(heartbeat_s),
                   "--grace-period-s", str(grace_period_s),
                   "--startup-timeout-s", str(startup_timeout_s), "--tracer", tracer_name]
        if queue:
            options += ["--queue", queue]
        _worker_pool(ctx, concurrency, options, name, metrics_port)
        return
    metrics = Metrics(WORKER)
    w = Worker(client, keyspace=Keyspace.from_env(ctx.obj["prefix"]), queue=queue, name=name,
               lease_s=lease_s, heartbeat_s=heartbeat_s, grace_period_s=grace_period_s,
               metrics=metrics, tracer=tracer_from_name(tracer_name))
    if metrics_port:
        redis_answers = RedisProbe(client)

        def ready() -> tuple[bool, str]:
            if not w.ready.is_set():
                return False, "starting"
            return (True, "working") if redis_answers() else (False, "redis unreachable")

        serve_health(metrics_port, metrics, ready)
    _on_sigterm(w.request_stop)
    w.run()


def _worker_pool(ctx: click.Context, concurrency: int, options: list[str],
                 name: str | None, metrics_port: int) -> None:
    """N single worker processes; SIGTERM is passed on, a crashed child is replaced.

    With a metrics port P the pool serves /livez and /readyz (all children alive) on P
    and child i serves its own /metrics on P + 1 + i.
    """

    def spawn(i: int) -> ServiceProcess:
        child_opts = [*options, "--metrics-port", str(metrics_port + 1 + i if metrics_port
                                                      else 0)]
        if name:
            child_opts += ["--name", f"{name}-{i}"]
        return ServiceProcess("worker", ctx.obj["redis_url"], child_opts,
                              prefix=ctx.obj["prefix"]).start()

    children = [spawn(i) for i in range(concurrency)]
    if metrics_port:
        serve_health(metrics_port, Metrics(POOL), lambda: all(c.alive() for c in children))
    stopping = threading.Event()
    _on_sigterm(stopping.set)
    while not stopping.wait(0.5):
        for i, child in enumerate(children):
            if not child.alive():
                click.echo(f"worker process {child.pid} exited; starting a replacement",
                           err=True)
                children[i] = spawn(i)
    for child in children:
        child.signal_group(signal.SIGTERM)
    for child in children:
        child.stop()


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
@click.option("--metrics-port", type=int, envvar=METRICS_PORT_ENV, default=0)
@startup_timeout_option
@click.pass_context
def coordinator(ctx: click.Context, checkpoint_dir: str, leader_lease_s: float,
                run_ttl_s: int, checkpoint_every_steps: int, checkpoint_every_s: float,
                metrics_port: int, startup_timeout_s: float) -> None:
    """Run a coordinator (run two: one leads, the other stands by)."""
    client = _connected(ctx, startup_timeout_s)
    metrics = Metrics(COORDINATOR)
    coord = Coordinator(client, keyspace=Keyspace.from_env(ctx.obj["prefix"]),
                        checkpoint_dir=checkpoint_dir, leader_lease_s=leader_lease_s,
                        run_ttl_s=run_ttl_s, checkpoint_every_steps=checkpoint_every_steps,
                        checkpoint_every_s=checkpoint_every_s, metrics=metrics)
    metrics.leader.set_function(lambda: 1.0 if coord.ready.is_set() else 0.0)
    if metrics_port:
        redis_answers = RedisProbe(client)

        def ready() -> tuple[bool, str]:
            # A standby is alive (/livez) but not doing the work: not ready.
            if not redis_answers():
                return False, "redis unreachable"
            return (True, "leader") if coord.ready.is_set() else (False, "standby")

        serve_health(metrics_port, metrics, ready)
    stop = threading.Event()
    _on_sigterm(stop.set)
    coord.run(stop)


DEFAULT_METRICS_PORT = 9100  # the image's GRAFLOW_DIST_METRICS_PORT


@cli.command()
@click.option("--port", type=int, envvar=METRICS_PORT_ENV, default=DEFAULT_METRICS_PORT,
              show_default=True, help=f"The service's metrics port [env {METRICS_PORT_ENV}].")
@click.option("--ready", is_flag=True, help="Check /readyz (doing its work, Redis "
                                            "answering) instead of /livez (alive).")
@click.option("--timeout-s", type=float, default=2.0, show_default=True)
def health(port: int, ready: bool, timeout_s: float) -> None:
    """Exit 0 if the service on this host answers /livez (or /readyz): for container
    HEALTHCHECKs and exec probes. /livez never touches Redis."""
    url = f"http://127.0.0.1:{port}{'/readyz' if ready else '/livez'}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            click.echo(response.read().decode(errors="replace").strip())
    except urllib.error.HTTPError as exc:
        raise GraflowError(f"{url} answered {exc.code}: "
                           f"{exc.read().decode(errors='replace').strip()}") from None
    except OSError as exc:
        raise GraflowError(f"nothing answers at {url}: {getattr(exc, 'reason', exc)}") from None


@cli.command()
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--demo", is_flag=True, help="Run the demo workflow, show it, then stop.")
@click.option("--demo-chaos", is_flag=True,
              help="The demo, with a worker killed (SIGKILL) in the middle of the run.")
@click.option("--data-dir", default=None, help="Keep Redis data and logs here.")
@click.option("--lease-s", type=float, default=None, help="Worker lease (default 10, "
                                                          "3 with --demo-chaos).")
@click.option("--grace-period-s", type=float, default=None,
              help="On Ctrl-C, time a running task gets before it is handed back "
                   f"(default {DEFAULT_GRACE_PERIOD_S:g}; a cluster whose Redis is "
                   "temporary stops at once).")
@click.option("--ui-port", type=int, default=DEFAULT_UI_PORT, show_default=True,
              help="Port of the web console on 127.0.0.1 (a free one if taken).")
@click.option("--no-ui", is_flag=True, help="Do not start the web console.")
@click.pass_context
def up(ctx: click.Context, workers: int, demo: bool, demo_chaos: bool,
       data_dir: str | None, lease_s: float | None, grace_period_s: float | None,
       ui_port: int, no_ui: bool) -> None:
    """A local cluster: embedded redis-server, a coordinator, N workers and the web
    console (its URL is printed).

    It uses an existing Redis only when --redis-url is given on the command line, not
    one exported in GRAFLOW_DIST_REDIS_URL (which may be a previous `up`'s)."""
    given = ctx.obj["redis_url_given"]
    run_up(ctx.obj["redis_url"] if given else None, workers, demo or demo_chaos, demo_chaos,
           data_dir, lease_s if lease_s is not None else (3.0 if demo_chaos else None),
           None if no_ui else ui_port,
           ignored_env_url=None if given else ctx.obj["redis_url"],
           grace_period_s=grace_period_s)
