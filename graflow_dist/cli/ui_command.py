"""``graflow-dist ui``: the web console."""

from __future__ import annotations

import click

from graflow_dist.cli.app import cli
from graflow_dist.web.server import console_url, serve
from graflow_dist.web.settings import (
    CHECKPOINT_DIR_ENV,
    DEFAULT_HOST,
    DEFAULT_POLL_S,
    DEFAULT_PORT,
    TOKEN_ENV,
    ConsoleSettings,
)


@cli.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help=f"Bind address; anything but loopback needs {TOKEN_ENV}.")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--checkpoint-dir", envvar=CHECKPOINT_DIR_ENV, default=None,
              help="Where the coordinators write checkpoints (default: checkpoints) "
                   f"[env {CHECKPOINT_DIR_ENV}].")
@click.option("--poll-s", type=float, default=DEFAULT_POLL_S, show_default=True,
              help="How often live views look for changes.")
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, checkpoint_dir: str | None,
       poll_s: float) -> None:
    """Serve the web console: runs, each run's graph and tasks, workers and queues.
    Every request needs Authorization: Bearer $GRAFLOW_DIST_UI_TOKEN when that is set."""
    settings = ConsoleSettings.from_env(redis_url=ctx.obj["redis_url"],
                                        prefix=ctx.obj["prefix"], checkpoint_dir=checkpoint_dir,
                                        poll_s=poll_s, host=host)
    settings.check_bind()
    click.echo(f"graflow-dist console: {console_url(host, port)}", err=True)
    serve(settings, port, host)
