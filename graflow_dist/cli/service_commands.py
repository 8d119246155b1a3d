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

from graflow_dist.broker import Broker
from graflow_dist.broker.connection import TRANSIENT_ERRORS, connect, wait_for_connection
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.permissions import COORDINATOR as COORDINATOR_ROLE
from graflow_dist.broker.permissions import WORKER as WORKER_ROLE
from graflow_dist.broker.probe import RedisProbe
from graflow_dist.broker.server import eviction_risk
from graflow_dist.cli.app import cli
from graflow_dist.cli.local_cluster import run_up
from graflow_dist.cli.params import BYTES, NAME, PORT, SECONDS, SECONDS_OR_ZERO, count
from graflow_dist.coordinator.service import (
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_LEADER_LEASE_S,
    DEFAULT_RUN_TTL_S,
    Coordinator,
)
from graflow_dist.errors import ConnectionConfigError, GraflowError
from graflow_dist.limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    MAX_MESSAGE_BYTES_ENV,
    MAX_RESULT_BYTES_ENV,
    MAX_VALUE_BYTES_ENV,
    Limits,
)
from graflow_dist.observability.logging import LOG_FORMAT_ENV, LOG_LEVEL_ENV
from graflow_dist.observability.metrics import (
    COORDINATOR,
    DEFAULT_METRICS_HOST,
    METRICS_HOST_ENV,
    Metrics,
    serve_health,
)
from graflow_dist.scheduler.continuation import DEFAULT_MAX_CONTINUATION
from graflow_dist.trace.factory import TRACER_ENV, TRACER_NAMES
from graflow_dist.web.settings import DEFAULT_PORT as DEFAULT_UI_PORT
from graflow_dist.wire.messages import MAX_CHAIN
from graflow_dist.wire.signing import load_secret
from graflow_dist.worker.child import ExecutorSettings
from graflow_dist.worker.service import (
    DEFAULT_GRACE_PERIOD_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_S,
)
from graflow_dist.worker.supervisor import Supervisor

log = structlog.get_logger("graflow_dist.cli")
STARTUP_TIMEOUT_ENV = "GRAFLOW_DIST_STARTUP_TIMEOUT_S"
METRICS_PORT_ENV = "GRAFLOW_DIST_METRICS_PORT"
TASK_TIMEOUT_ENV = "GRAFLOW_DIST_TASK_TIMEOUT_S"

startup_timeout_option = click.option(
    "--startup-timeout-s", type=SECONDS_OR_ZERO, envvar=STARTUP_TIMEOUT_ENV, default=0.0,
    show_default=True,
    help="Keep retrying an unreachable Redis this long at start (e.g. while Redis itself "
         f"starts) [env {STARTUP_TIMEOUT_ENV}]; refused credentials fail at once.")


metrics_host_option = click.option(
    "--metrics-host", envvar=METRICS_HOST_ENV, default=DEFAULT_METRICS_HOST, show_default=True,
    help="Interface /metrics, /livez and /readyz listen on (0.0.0.0: every interface, "
         f"e.g. in a pod) [env {METRICS_HOST_ENV}].")


def _max_bytes_option(name: str, env: str, default: int, what: str) -> Any:
    return click.option(f"--{name}", type=BYTES, envvar=env, default=default,
                        show_default=True, help=f"Largest {what}, in bytes [env {env}]; "
                                                "beyond it, keep data in external storage.")


def _connected(ctx: click.Context, startup_timeout_s: float, role: str,
               queue: str | None = None, name: str | None = None) -> redis.Redis:
    """A checked connection: the secret is usable, Redis answers, and its user may run
    everything ``role`` needs (nothing is written before all that holds).

    Until the service installs its own handler, SIGTERM ends it at once with status 0:
    it holds nothing yet (a pod stopped while it waits for Redis)."""
    _on_sigterm(_stop_before_starting)
    load_secret()
    client = connect(ctx.obj["redis_url"])
    wait_for_connection(client, ctx.obj["redis_url"], startup_timeout_s,
                        lambda exc: log.warning("waiting for redis", error=str(exc),
                                                timeout_s=startup_timeout_s))
    keyspace = Keyspace.from_env(ctx.obj["prefix"])
    try:
        Broker(client, keyspace).check_permissions(role, queue, name or "probe")
        risk = eviction_risk(client)
    except TRANSIENT_ERRORS as exc:
        raise ConnectionConfigError(f"lost Redis while checking permissions: {exc}") from None
    if risk is not None and role != COORDINATOR_ROLE:  # the leader says it, and again
        log.warning("redis may drop keys", reason=risk)  # when it changes
    return client


def _stop_before_starting() -> None:
    log.info("stopped before it started")
    raise SystemExit(0)


def _on_sigterm(handler: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())


@cli.command()
@click.option("--queue", type=NAME, default=None, help="RQ queue name (default: the prefix).")
@click.option("--concurrency", type=count(1), default=1, show_default=True,
              help="Executor processes to run (each claims and runs tasks on its own).")
@click.option("--name", type=NAME, default=None,
              help="Worker name (default: host-pid-random).")
@click.option("--lease-s", type=SECONDS, envvar="GRAFLOW_DIST_LEASE_S",
              default=DEFAULT_LEASE_S, show_default=True,
              help="A task is re-dispatched this long after the last heartbeat of its worker.")
@click.option("--heartbeat-s", type=SECONDS, envvar="GRAFLOW_DIST_HEARTBEAT_S",
              default=DEFAULT_HEARTBEAT_S, show_default=True)
@click.option("--grace-period-s", type=SECONDS_OR_ZERO, envvar="GRAFLOW_DIST_GRACE_PERIOD_S",
              default=DEFAULT_GRACE_PERIOD_S, show_default=True,
              help="On SIGTERM, time the running task gets before it is handed back.")
@click.option("--metrics-port", type=PORT, envvar=METRICS_PORT_ENV, default=0,
              help="Serve /metrics, /livez, /readyz on this port (0: off).")
@metrics_host_option
@_max_bytes_option("max-result-bytes", MAX_RESULT_BYTES_ENV, DEFAULT_MAX_RESULT_BYTES,
                   "task result")
@_max_bytes_option("max-value-bytes", MAX_VALUE_BYTES_ENV, DEFAULT_MAX_VALUE_BYTES,
                   "channel value")
@_max_bytes_option("max-message-bytes", MAX_MESSAGE_BYTES_ENV, DEFAULT_MAX_MESSAGE_BYTES,
                   "message (a task's report, a queued batch)")
@click.option("--tracer", "tracer_name", type=click.Choice(TRACER_NAMES), envvar=TRACER_ENV,
              default="auto", show_default=True,
              help="Task tracing: otel (spans through the process's OpenTelemetry SDK), "
                   "console, noop; auto is otel when an OpenTelemetry SDK is configured "
                   "(e.g. under opentelemetry-instrument).")
@click.option("--task-timeout-s", type=click.FloatRange(min=0), envvar=TASK_TIMEOUT_ENV,
              default=0.0, show_default=True,
              help="Timeout of tasks without @task(timeout=...): past it the process running "
                   "the task is killed and replaced, and the task fails with "
                   f"TaskTimeoutError (retried per its policy); 0: none [env {TASK_TIMEOUT_ENV}].")
@startup_timeout_option
@click.pass_context
def worker(ctx: click.Context, queue: str | None, concurrency: int, name: str | None,
           lease_s: float, heartbeat_s: float, grace_period_s: float,
           metrics_port: int, metrics_host: str, max_result_bytes: int, max_value_bytes: int,
           max_message_bytes: int, tracer_name: str, task_timeout_s: float,
           startup_timeout_s: float) -> None:
    """Run a worker: a supervisor and N executor processes that claim task batches from
    the queue and execute them; the supervisor kills and replaces an executor whose task
    ran past its timeout or whose run was cancelled."""
    if heartbeat_s >= lease_s:
        raise click.BadParameter(f"{heartbeat_s} s must be shorter than the lease "
                                 f"(--lease-s {lease_s})", param_hint="--heartbeat-s")
    # Checked before starting executors: ones that cannot connect would be replaced
    # forever instead of reporting the error.
    client = _connected(ctx, startup_timeout_s, WORKER_ROLE, queue, name)
    settings = ExecutorSettings(queue=queue, lease_s=lease_s, heartbeat_s=heartbeat_s,
                                grace_period_s=grace_period_s, tracer=tracer_name,
                                task_timeout_s=task_timeout_s,
                                limits=Limits(max_result_bytes, max_value_bytes,
                                              max_message_bytes))
    logging = ctx.find_root().params  # the executors log like their supervisor
    env = {env_name: logging[option] for option, env_name in
           (("log_format", LOG_FORMAT_ENV), ("log_level", LOG_LEVEL_ENV)) if logging.get(option)}
    supervisor = Supervisor(client, keyspace=Keyspace.from_env(ctx.obj["prefix"]),
                            redis_url=ctx.obj["redis_url"], concurrency=concurrency, name=name,
                            settings=settings, env=env)
    if metrics_port:
        redis_answers = RedisProbe(client)

        def ready() -> tuple[bool, str]:
            if not supervisor.ready():
                return False, "starting executors"
            return (True, "working") if redis_answers() else (False, "redis unreachable")

        serve_health(metrics_port, supervisor.metrics, ready, metrics_host)
    _on_sigterm(supervisor.request_stop)
    supervisor.run()


@cli.command()
@click.option("--checkpoint-dir", envvar="GRAFLOW_DIST_CHECKPOINT_DIR",
              default=DEFAULT_CHECKPOINT_DIR, show_default=True,
              help="Directory (or redis:// store) for checkpoints without absolute paths.")
@click.option("--leader-lease-s", type=SECONDS, default=DEFAULT_LEADER_LEASE_S,
              show_default=True, help="A standby takes over this long after the leader died.")
@click.option("--run-ttl-s", type=count(1), default=DEFAULT_RUN_TTL_S, show_default=True,
              help="How long a finished run's data stays in Redis.")
@click.option("--checkpoint-every-steps", type=count(0), default=0,
              help="Automatic checkpoint of every run each N steps (0: off).")
@click.option("--checkpoint-every-s", type=SECONDS_OR_ZERO, default=0.0,
              help="Automatic checkpoint of every run each T seconds (0: off).")
@click.option("--max-continuation", type=click.IntRange(0, MAX_CHAIN),
              default=DEFAULT_MAX_CONTINUATION,
              show_default=True,
              help="Steps of a chain a worker runs at once after a task, from one job "
                   "(local continuation; 0: off).")
@click.option("--metrics-port", type=PORT, envvar=METRICS_PORT_ENV, default=0)
@metrics_host_option
@_max_bytes_option("max-message-bytes", MAX_MESSAGE_BYTES_ENV, DEFAULT_MAX_MESSAGE_BYTES,
                   "event (a task's report) read; larger ones are dead-lettered")
@startup_timeout_option
@click.pass_context
def coordinator(ctx: click.Context, checkpoint_dir: str, leader_lease_s: float,
                run_ttl_s: int, checkpoint_every_steps: int, checkpoint_every_s: float,
                max_continuation: int, metrics_port: int, metrics_host: str, max_message_bytes: int,
                startup_timeout_s: float) -> None:
    """Run a coordinator (run two: one leads, the other stands by)."""
    client = _connected(ctx, startup_timeout_s, COORDINATOR_ROLE)
    metrics = Metrics(COORDINATOR)
    coord = Coordinator(client, keyspace=Keyspace.from_env(ctx.obj["prefix"]),
                        checkpoint_dir=checkpoint_dir, leader_lease_s=leader_lease_s,
                        run_ttl_s=run_ttl_s, checkpoint_every_steps=checkpoint_every_steps,
                        checkpoint_every_s=checkpoint_every_s, metrics=metrics,
                        max_message_bytes=max_message_bytes,
                        max_continuation=max_continuation)
    metrics.leader.set_function(lambda: 1.0 if coord.ready.is_set() else 0.0)
    if metrics_port:
        redis_answers = RedisProbe(client)

        def ready() -> tuple[bool, str]:
            # A standby is alive (/livez) but not doing the work: not ready.
            if not redis_answers():
                return False, "redis unreachable"
            return (True, "leader") if coord.ready.is_set() else (False, "standby")

        serve_health(metrics_port, metrics, ready, metrics_host)
    stop = threading.Event()
    _on_sigterm(stop.set)
    coord.run(stop)


DEFAULT_METRICS_PORT = 9100  # the image's GRAFLOW_DIST_METRICS_PORT


@cli.command()
@click.option("--port", type=PORT, envvar=METRICS_PORT_ENV, default=DEFAULT_METRICS_PORT,
              show_default=True, help=f"The service's metrics port [env {METRICS_PORT_ENV}].")
@click.option("--ready", is_flag=True, help="Check /readyz (doing its work, Redis "
                                            "answering) instead of /livez (alive).")
@click.option("--timeout-s", type=SECONDS, default=2.0, show_default=True)
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
@click.option("--workers", type=count(1), default=2, show_default=True)
@click.option("--demo", is_flag=True, help="Run the demo workflow, show it, then stop.")
@click.option("--demo-chaos", is_flag=True,
              help="The demo, with a worker killed (SIGKILL) in the middle of the run.")
@click.option("--data-dir", default=None, help="Keep Redis data and logs here.")
@click.option("--lease-s", type=SECONDS, default=None, help="Worker lease (default 10, "
                                                            "3 with --demo-chaos).")
@click.option("--grace-period-s", type=SECONDS, default=None,
              help="On Ctrl-C, time a running task gets before it is handed back "
                   f"(default {DEFAULT_GRACE_PERIOD_S:g}; a cluster whose Redis is "
                   "temporary stops at once).")
@click.option("--ui-port", type=PORT, default=DEFAULT_UI_PORT, show_default=True,
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
