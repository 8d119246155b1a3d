"""Commands about runs: submit, status, watch, cancel, resume, runs, checkpoints."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from graflow_dist.checkpoint.stores import DEFAULT_CHECKPOINT_DIR
from graflow_dist.cli.app import cli
from graflow_dist.cli.loading import load_workflow
from graflow_dist.cli.progress import watch as watch_run
from graflow_dist.client import SUCCEEDED, Client, WorkflowRun
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.errors import GraflowError


def client_from(ctx: click.Context) -> Client:
    return Client(ctx.obj["redis_url"], prefix=ctx.obj["prefix"])


def finish(run: WorkflowRun, show_progress: bool, timeout: float | None) -> None:
    """Wait for ``run``, print its result or error, exit 0 on success, 1 otherwise."""
    if show_progress:
        watch_run(run)
    try:
        result = run.wait(timeout)
    except GraflowError as exc:
        click.echo(f"run {run.session_id} {run.status()}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"run {run.session_id} {run.status()}")
    click.echo(f"result: {result!r}")


@cli.command()
@click.argument("target", metavar="MODULE:ATTR")
@click.option("--wait", is_flag=True, help="Wait for the run and print its result.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait at most.")
@click.option("--start-node", default=None, help="Task to start from.")
@click.option("--max-steps", type=int, default=None)
@click.option("--by-value", is_flag=True,
              help="Ship the module's code to workers (pickled by value) even if it is "
                   "importable; files given by path always are.")
@click.option("--progress/--no-progress", default=None,
              help="Live progress bar while waiting (default: on a terminal).")
@click.pass_context
def submit(ctx: click.Context, target: str, wait: bool, timeout: float | None,
           start_node: str | None, max_steps: int | None, by_value: bool,
           progress: bool | None) -> None:
    """Submit a workflow: MODULE:ATTR, where MODULE is a dotted module or a .py file and
    ATTR a workflow(...) or a function returning one."""
    wf = load_workflow(target, by_value)
    client = client_from(ctx)
    run = client.submit(wf, start_node=start_node, max_steps=max_steps)
    click.echo(run.session_id)
    if wait:
        finish(run, sys.stderr.isatty() if progress is None else progress, timeout)


@cli.command()
@click.argument("session")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON.")
@click.pass_context
def status(ctx: click.Context, session: str, as_json: bool) -> None:
    """Show a run's status, progress and error."""
    run = client_from(ctx).attach(session)
    info = run.info()
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    p = run.progress()
    click.echo(f"session:  {session}")
    click.echo(f"workflow: {info.get('workflow') or '-'}")
    click.echo(f"status:   {info['status']}")
    click.echo(f"tasks:    {p.done} done, {p.running} running, {p.pending} pending, "
               f"{p.failed} failed (of {p.total})")
    click.echo(f"steps:    {info.get('steps', 0)}")
    if info.get("last_checkpoint"):
        click.echo(f"checkpoint: {info['last_checkpoint']}")
    if info.get("error"):
        click.echo(f"error:    {info.get('error_type') or ''}: {info['error']}")


@cli.command()
@click.argument("session")
@click.pass_context
def watch(ctx: click.Context, session: str) -> None:
    """Live progress of a run until it ends (exit 1 if it does not succeed)."""
    run = client_from(ctx).attach(session)
    final = watch_run(run)
    click.echo(f"run {session} {final.status}")
    if final.status not in SUCCEEDED:
        info = run.info()
        click.echo(f"error: {info.get('error_type') or ''}: {info.get('error') or ''}",
                   err=True)
        sys.exit(1)


@cli.command()
@click.argument("session")
@click.option("--reason", default="cancelled from the command line")
@click.pass_context
def cancel(ctx: click.Context, session: str, reason: str) -> None:
    """Cancel a run: it ends as cancelled and its running tasks are stopped. A run that
    already ended is left as it is (exit status 1)."""
    client_from(ctx).attach(session).cancel(reason)
    click.echo(f"cancellation of {session} requested")


@cli.command()
@click.argument("checkpoint")
@click.option("--wait", is_flag=True)
@click.option("--timeout", type=float, default=None)
@click.option("--progress/--no-progress", default=None)
@click.pass_context
def resume(ctx: click.Context, checkpoint: str, wait: bool, timeout: float | None,
           progress: bool | None) -> None:
    """Continue a checkpoint (taken in-process or on a cluster) on the cluster."""
    run = client_from(ctx).resume(checkpoint)
    click.echo(run.session_id)
    if wait:
        finish(run, sys.stderr.isatty() if progress is None else progress, timeout)


@cli.command()
@click.option("--limit", type=int, default=20)
@click.pass_context
def runs(ctx: click.Context, limit: int) -> None:
    """Recent runs, newest first."""
    for info in client_from(ctx).runs(limit):
        click.echo(f"{info['session_id']}  {info['status']:<20} "
                   f"{info.get('done', 0)}/{info.get('total', '?')}  {info.get('workflow', '')}")


@cli.group()
def checkpoints() -> None:
    """Checkpoints on disk (or in a redis:// store)."""


@checkpoints.command("list")
@click.argument("session", required=False)
@click.option("--dir", "directory", default=DEFAULT_CHECKPOINT_DIR, show_default=True)
def list_checkpoints(session: str | None, directory: str) -> None:
    """List committed checkpoints, oldest first."""
    found = CheckpointManager.list_checkpoints(directory, session)
    if not found:
        click.echo("no checkpoints found", err=True)
    for meta in found:
        user: Any = {k: v for k, v in meta.user_metadata.items() if k != "elapsed_time"}
        click.echo(f"{meta.created_at}  step {meta.steps:<5} {meta.path}  {user}")
