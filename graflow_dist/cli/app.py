"""The ``graflow-dist`` command group and its global options."""

from __future__ import annotations

import sys
from typing import Any

import click

from graflow_dist.broker.connection import REDIS_URL_ENV
from graflow_dist.broker.keys import PREFIX_ENV
from graflow_dist.errors import GraflowError
from graflow_dist.observability.logging import configure_logging


class GraflowGroup(click.Group):
    """Turns library errors into one clear line and exit code 1 (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=GraflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis-url", envvar=REDIS_URL_ENV, default=None, metavar="URL",
              help=f"Redis URL, password and rediss:// included [env {REDIS_URL_ENV}].")
@click.option("--prefix", envvar=PREFIX_ENV, default=None,
              help=f"Deployment key prefix [env {PREFIX_ENV}; default graflow].")
@click.option("--log-level", default=None, help="debug, info, warning, error.")
@click.option("--log-format", type=click.Choice(["json", "console"]), default=None)
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None, prefix: str | None,
        log_level: str | None, log_format: str | None) -> None:
    """graflow-dist: Graflow workflows on a Redis cluster."""
    configure_logging(log_level, log_format)
    ctx.obj = {"redis_url": redis_url, "prefix": prefix}
