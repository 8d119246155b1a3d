"""Commands about runs: submit, status, watch, cancel, resume, runs, checkpoints."""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any, NoReturn

import click

from graflow_dist.checkpoint.stores import DEFAULT_CHECKPOINT_DIR
from graflow_dist.cli.app import cli
from graflow_dist.cli.loading import load_workflow
from graflow_dist.cli.progress import watch as watch_run
from graflow_dist.client import FINISHED, NO_COORDINATOR, SUCCEEDED, Client, WorkflowRun
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.errors import CheckpointWarning, GraflowError


def client_from(ctx: click.Context) -> Client:
    return Client(ctx.obj["redis_url"], prefix=ctx.obj["prefix"])


def announce(run: WorkflowRun, wait: bool, show_progress: bool, timeout: float | None
             ) -> None:
    """Print the run's session id; with ``wait``, wait for it and print its result or
    error (exit 0 on success, 1 otherwise). Ctrl-C from the moment the run exists stops
    waiting, not the run: it says so and how to re-attach (exit 130)."""
    try:
        click.echo(run.session_id)
        if not wait:
            return
        warn_without_coordinator(run)
        if show_progress:
            watch_run(run)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CheckpointWarning)
            try:
                result = run.wait(timeout)
            finally:
                for warning in caught:
                    click.echo(f"warning: {warning.message}", err=True)
    except KeyboardInterrupt:
        detach(run.session_id, "waiting")
    except GraflowError as exc:
        click.echo(f"run {run.session_id} {run.status()}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"run {run.session_id} {run.status()}")
    click.echo(f"result: {result!r}")


def warn_without_coordinator(run: WorkflowRun) -> None:
    """Waiting on a cluster without a coordinator would wait silently forever."""
    if run.coordinator_missing() and run.status() not in FINISHED:
        click.echo("warning: " + NO_COORDINATOR.format(prefix=run.client.keyspace.prefix),
                   err=True)


def detach(session_id: str, doing: str) -> NoReturn:
    """After Ctrl-C: the run is not stopped, say how to get back to it; exit 130."""
    click.echo(f"\nstopped {doing}; run {session_id} goes on on the cluster. "
               f"Re-attach with: graflow-dist watch {session_id}  "
               f"(or stop it: graflow-dist cancel {session_id})", err=True)
    sys.exit(130)


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
    """Submit a workflow: MODULE:ATTR, where MODULE is a dotted module (found in the
    current directory too) or a .py file, and ATTR a workflow(...) or a function that
    builds one without arguments. Example: graflow-dist submit graflow_dist.demo:wf"""
    wf = load_workflow(target, by_value)
    client = client_from(ctx)
    run = client.submit(wf, start_node=start_node, max_steps=max_steps)
    announce(run, wait, sys.stderr.isatty() if progress is None else progress, timeout)


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
    if info.get("checkpoint_error"):
        click.echo(f"checkpoint failed: {info['checkpoint_error']}")
    if info.get("error"):
        click.echo(f"error:    {info.get('error_type') or ''}: {info['error']}")


@cli.command()
@click.argument("session")
@click.pass_context
def watch(ctx: click.Context, session: str) -> None:
    """Live progress of a run until it ends (exit 1 if it does not succeed)."""
    run = client_from(ctx).attach(session)
    warn_without_coordinator(run)
    try:
        final = watch_run(run)
    except KeyboardInterrupt:
        detach(session, "watching")
    click.echo(f"run {session} {final.status}")
    info = run.info()
    if info.get("checkpoint_error"):
        click.echo(f"warning: {CheckpointWarning(session, info['checkpoint_error'])}",
                   err=True)
    if final.status not in SUCCEEDED:
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
    announce(run, wait, sys.stderr.isatty() if progress is None else progress, timeout)


@cli.command()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many runs to list (at least 1).")
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
