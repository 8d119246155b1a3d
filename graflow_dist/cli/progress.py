"""A live progress display of a run (done / running / pending / failed)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from graflow_dist.client import Progress as RunProgress
from graflow_dist.client import WorkflowRun

DEFAULT_REFRESH_S = 0.2


def describe(p: RunProgress) -> str:
    return (f"[green]{p.done} done[/] [cyan]{p.running} running[/] "
            f"[yellow]{p.pending} pending[/] [red]{p.failed} failed[/]")


def watch(run: WorkflowRun, console: Console | None = None,
          refresh_s: float = DEFAULT_REFRESH_S) -> RunProgress:
    """Show the run's progress until it finishes; returns the final counts."""
    console = console or Console(stderr=True)
    with Progress(TextColumn("[bold]{task.fields[session]}"), BarColumn(),
                  TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        state = run.progress()
        handle = bar.add_task("run", total=max(state.total, 1), session=run.session_id[:12],
                              counts=describe(state))
        while True:
            state = run.progress()
            bar.update(handle, completed=min(state.done, state.total),
                       total=max(state.total, state.done, 1), counts=describe(state))
            if state.finished:
                break
            time.sleep(refresh_s)
    return state
