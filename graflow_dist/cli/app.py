"""The ``graflow-dist`` command group and its global options.

The global options (``--redis-url``, ``--prefix``, ``--log-level``, ``--log-format``)
are accepted before the command name and after it: ``graflow-dist worker --redis-url
URL`` and ``graflow-dist --redis-url URL worker`` mean the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click
from click.core import ParameterSource
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from graflow_dist.broker.connection import REDIS_URL_ENV, refused_writes_error, writes_refused
from graflow_dist.broker.keys import PREFIX_ENV
from graflow_dist.errors import GraflowError
from graflow_dist.observability.logging import configure_logging

REDIS_URL_HELP = f"Redis URL, password and rediss:// included [env {REDIS_URL_ENV}]."
PREFIX_HELP = f"Deployment key prefix [env {PREFIX_ENV}; default graflow]."
LOG_FORMATS = ["json", "console"]


def package_version() -> str:
    try:
        return version("graflow-dist")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _store(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A callback that records a command-level global option in ``ctx.obj``."""

    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            ctx.obj[key] = value
            if key == "redis_url":
                ctx.obj["redis_url_given"] = True
            if key in ("log_level", "log_format"):
                configure_logging(ctx.obj["log_level"], ctx.obj["log_format"])
        return value

    return callback


def _global_options() -> list[click.Option]:
    """Fresh option objects for one command (click options are not shareable)."""
    return [
        click.Option(["--redis-url"], metavar="URL", expose_value=False,
                     callback=_store("redis_url"), help=REDIS_URL_HELP),
        click.Option(["--prefix"], expose_value=False, callback=_store("prefix"),
                     help=PREFIX_HELP),
        click.Option(["--log-level"], expose_value=False, callback=_store("log_level"),
                     help="debug, info, warning, error."),
        click.Option(["--log-format"], type=click.Choice(LOG_FORMATS), expose_value=False,
                     callback=_store("log_format")),
    ]


class GraflowGroup(click.Group):
    """Turns library errors into one clear line and exit code 1 (no traceback), and
    gives every command the global options."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, click.Group):
            cmd.params.extend(_global_options())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ResponseError as exc:
            if not writes_refused(exc):
                raise
            click.echo(f"error: {refused_writes_error(exc)}", err=True)
            sys.exit(1)
        except (RedisConnectionError, RedisTimeoutError) as exc:  # after it answered once
            click.echo(f"error: lost Redis: {exc}; try again", err=True)
            sys.exit(1)
        except GraflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=GraflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), "--version", "-V", prog_name="graflow-dist")
@click.option("--redis-url", envvar=REDIS_URL_ENV, default=None, metavar="URL",
              help=REDIS_URL_HELP)
@click.option("--prefix", envvar=PREFIX_ENV, default=None, help=PREFIX_HELP)
@click.option("--log-level", default=None, help="debug, info, warning, error.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default=None)
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None, prefix: str | None,
        log_level: str | None, log_format: str | None) -> None:
    """graflow-dist: Graflow workflows on a Redis cluster."""
    configure_logging(log_level, log_format)
    ctx.obj = {
        "redis_url": redis_url, "prefix": prefix, "log_level": log_level,
        "log_format": log_format,
        # Given on the command line (not only exported): `up` uses only such a URL.
        "redis_url_given": ctx.get_parameter_source("redis_url") in (
            ParameterSource.COMMANDLINE, ParameterSource.PROMPT),
    }
