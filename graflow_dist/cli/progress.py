"""A live progress display of a run (done / running / pending / failed)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from graflow_dist.client import Progress as RunProgress
from graflow_dist.client import WorkflowRun

DEFAULT_REFRESH_S = 0.2


def describe(p: RunProgress) -> str:
    return (f"[green]{p.done} done[/] [cyan]{p.running} running[/] "
            f"[yellow]{p.pending} pending[/] [red]{p.failed} failed[/]")


def clock(seconds: float) -> str:
    """``H:MM:SS``, as rich's elapsed column shows it."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def run_elapsed_s(info: dict[str, Any]) -> float:
    """Time since the run was submitted (until it finished, if it did), so `watch`
    started late shows the run's age, not the watcher's."""
    start = info.get("submitted_at")
    if not start:
        return 0.0
    return (info.get("finished_at") or time.time()) - start


def watch(run: WorkflowRun, console: Console | None = None,
          refresh_s: float = DEFAULT_REFRESH_S) -> RunProgress:
    """Show the run's progress until it finishes; returns the final counts."""
    console = console or Console(stderr=True)
    with Progress(TextColumn("[bold]{task.fields[session]}"), BarColumn(),
                  TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[elapsed]}"),
                  console=console, transient=False) as bar:
        state = run.progress()
        handle = bar.add_task("run", total=max(state.total, 1), session=run.session_id[:12],
                              counts=describe(state), elapsed=clock(0))
        while True:
            info = run.info()
            state = run.progress()
            bar.update(handle, completed=min(state.done, state.total),
                       total=max(state.total, state.done, 1), counts=describe(state),
                       elapsed=clock(run_elapsed_s(info)))
            if state.finished:
                break
            time.sleep(refresh_s)
    return state
