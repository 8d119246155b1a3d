"""Console: what the pages and the JSON API show and do, as plain data.

It reads through the broker's `ConsoleQueries` and acts through `Client` (cancel,
retry, resume), so the web layer issues no Redis command of its own.
"""

from __future__ import annotations

import os
import time
from typing import Any

from graflow_dist.broker.console import RunFilter, RunView
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.server import eviction_risk
from graflow_dist.broker.task_states import progress_counts
from graflow_dist.client import RETRYABLE_STATES, Client
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.drawing import DrawGraph, render_svg
from graflow_dist.errors import (
    CheckpointError,
    ConsoleRequestError,
    GraflowError,
    RunActiveError,
)
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.web.settings import ConsoleSettings
from graflow_dist.wire.task_records import TaskRecord

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500
MAX_BULK = 500


class Console:
    """The console's reads and actions for one deployment.

    Parameters
    ----------
    settings:
        Redis URL, prefix, checkpoint directory, token.
    client:
        An existing client (tests); default: one connected from ``settings``.
    """

    def __init__(self, settings: ConsoleSettings, client: Client | None = None) -> None:
        self.settings = settings
        self.client = client or Client(settings.redis_url, prefix=settings.prefix)
        self.queries = self.client.broker.console

    def close(self) -> None:
        self.client.close()

    # --- runs ---------------------------------------------------------------------------

    def runs(self, status: list[str] | None = None, workflow: str | None = None,
             session: str | None = None, limit: int = DEFAULT_PAGE_SIZE, offset: int = 0
             ) -> dict[str, Any]:
        statuses = set()
        for name in status or []:
            parsed = RunStatus.parse(name)
            if parsed is None or parsed is RunStatus.SUPERSEDED:
                raise ConsoleRequestError(f"unknown status {name!r}: use one of "
                                      f"{', '.join(s.value for s in listed_statuses())}")
            statuses.add(parsed)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ConsoleRequestError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
        if offset < 0:
            raise ConsoleRequestError(f"offset must be >= 0, got {offset}")
        page = self.queries.runs(RunFilter(frozenset(statuses), workflow or None,
                                           session or None), limit, offset)
        return {"runs": [run_summary(r) for r in page.records], "offset": page.offset,
                "limit": page.limit, "has_more": page.has_more,
                "filter": {"status": sorted(s.value for s in statuses),
                           "workflow": workflow or None, "session": session or None}}

    def workflows(self) -> list[str]:
        return self.queries.workflows()

    def cancel(self, session_id: str, reason: str = "cancelled from the web console"
               ) -> dict[str, Any]:
        self.client.attach(session_id).cancel(reason)  # RunEndedError if it is over
        return {"session_id": session_id, "cancel_requested": True}

    def cancel_many(self, session_ids: list[str]) -> dict[str, Any]:
        if not session_ids:
            raise ConsoleRequestError("no sessions given: send {\"sessions\": [id, ...]}")
        if len(session_ids) > MAX_BULK:
            raise ConsoleRequestError(f"at most {MAX_BULK} sessions per request")
        cancelled, skipped = [], {}
        for sid in dict.fromkeys(session_ids):
            try:
                self.cancel(sid, "cancelled from the web console (bulk)")
                cancelled.append(sid)
            except GraflowError as exc:
                skipped[sid] = str(exc)
        return {"cancelled": cancelled, "skipped": skipped}

    # --- one run --------------------------------------------------------------------------

    def run(self, session_id: str, *, with_channel: bool = True) -> dict[str, Any]:
        view = self.queries.run(session_id)
        out = run_live(view)
        graph = DrawGraph.from_shape(view.shape)
        out["graph"] = {"nodes": graph.nodes, "edges": [list(e) for e in graph.edges],
                        "groups": graph.groups}
        if with_channel:
            names, more = self.queries.channel_keys(session_id)
            out["channel_keys"] = names
            out["channel_keys_truncated"] = more
        return out

    def live(self, session_id: str) -> dict[str, Any]:
        return run_live(self.queries.run(session_id))

    def graph_svg(self, session_id: str, *, include_style: bool = True) -> str:
        view = self.queries.run(session_id)
        return render_svg(DrawGraph.from_shape(view.shape), view.states,
                          include_style=include_style,
                          title=view.record.workflow or view.record.session_id)

    def retry(self, session_id: str, task_id: str) -> dict[str, Any]:
        if not task_id:
            raise ConsoleRequestError("no task given: send {\"task_id\": ...}")
        self.client.retry(session_id, task_id)
        return {"session_id": session_id, "task_id": task_id, "retried": True}

    # --- checkpoints ----------------------------------------------------------------------

    def checkpoints(self, session_id: str) -> list[dict[str, Any]]:
        record = self.client.broker.runs.record(session_id)
        found: dict[str, dict[str, Any]] = {}
        for directory in self._checkpoint_dirs(record):
            try:
                metas = CheckpointManager.list_checkpoints(directory, session_id)
            except (CheckpointError, OSError):
                continue  # an unreachable store hides its checkpoints, not the page
            for meta in metas:
                path = meta.path or ""
                found[path] = {"path": path, "checkpoint_id": meta.checkpoint_id,
                               "created_at": meta.created_at, "steps": meta.steps,
                               "user_metadata": meta.user_metadata,
                               "last": path == record.last_checkpoint}
        return sorted(found.values(), key=lambda c: (c["created_at"], c["steps"]))

    def _checkpoint_dirs(self, record: RunRecord) -> list[str]:
        dirs = [self.settings.checkpoint_dir]
        last = record.last_checkpoint
        if last and "://" not in last:
            dirs.append(os.path.dirname(os.path.abspath(last)))
        return list(dict.fromkeys(dirs))

    def resume(self, session_id: str, checkpoint: str) -> dict[str, Any]:
        """Resume one of the run's own checkpoints (no other path is accepted)."""
        known = {c["path"] for c in self.checkpoints(session_id)}
        if checkpoint not in known:
            raise ConsoleRequestError(f"{checkpoint!r} is not a checkpoint of run {session_id}; "
                                  "pick one from its checkpoint list")
        record = self.client.broker.runs.record(session_id)
        if not record.status.finished:
            raise RunActiveError(f"run {session_id} is still {record.status.value}: "
                                 "cancel it before resuming a checkpoint")
        run = self.client.resume(checkpoint)
        return {"session_id": run.session_id, "checkpoint": checkpoint, "resumed": True}

    # --- workers ----------------------------------------------------------------------------

    def workers(self) -> dict[str, Any]:
        now = time.time()
        return {"redis_warning": eviction_risk(self.client.redis),
                "workers": [w.to_dict(now) for w in self.queries.workers()],
                "queues": [q.to_dict() for q in self.queries.queues()],
                "coordinators": self.queries.coordinators(),
                "running_jobs": self.queries.running_jobs()}


def listed_statuses() -> list[RunStatus]:
    return [s for s in RunStatus if s is not RunStatus.SUPERSEDED]


def run_summary(record: RunRecord) -> dict[str, Any]:
    """A run's record plus what a list shows: progress and elapsed time."""
    out = record.to_dict()
    out.pop("error_data", None)
    running = max(0, min(record.pending, record.running))
    end = record.finished_at or (None if record.status.finished else time.time())
    out["progress"] = {"total": record.total, "done": record.done, "running": running,
                       "pending": max(0, record.pending - running), "failed": record.failed}
    out["elapsed_s"] = (end - record.started_at) if end and record.started_at else None
    out["finished"] = record.status.finished
    return out


def run_live(view: RunView) -> dict[str, Any]:
    """What changes while a run runs: its record, node states, per-task detail."""
    tasks = {}
    for node_id, state in view.states.items():
        if view.shape.nodes[node_id].is_group:
            continue
        record = view.tasks.get(node_id)
        detail = (record or TaskRecord(node_id, "", attempts=0)).to_dict()
        detail["outcome"] = detail["outcome"] or None
        detail["state"] = state
        detail["retryable"] = view.record.status.finished and state in RETRYABLE_STATES
        pending = [s for s in view.frontier.pending_tasks if s.task_id == node_id]
        detail["running_on"] = sorted({view.running[s.token] for s in pending
                                       if s.token in view.running}) or None
        tasks[node_id] = detail
    return {"run": run_summary(view.record), "states": view.states, "tasks": tasks,
            "counts": progress_counts(view.states, view.shape)}
