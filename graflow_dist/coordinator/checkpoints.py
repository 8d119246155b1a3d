"""Checkpoints written by the coordinator, straight from Redis.

The coordinator never unpickles user code: the graph (manifest and signed code blobs),
dynamic tasks and channel values are copied as the bytes Redis holds. Where a checkpoint
goes is the coordinator's decision (`checkpoint_location`): a task may name it, but only
inside the coordinator's checkpoint directory or Redis store; anything else is refused.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from graflow_dist.broker import Broker
from graflow_dist.broker.connection import mask_url
from graflow_dist.broker.record import RunRecord
from graflow_dist.checkpoint.format import CheckpointMetadata, ContextPayload
from graflow_dist.checkpoint.io import default_base, write_checkpoint
from graflow_dist.checkpoint.redis_store import store_root
from graflow_dist.checkpoint.stores import is_redis_path, split_base
from graflow_dist.coordinator.runs import PendingCheckpoint, RunState
from graflow_dist.errors import CheckpointError, GraflowError
from graflow_dist.scheduler.events import CheckpointRequest
from graflow_dist.scheduler.frontier import FrontierSnapshot


def checkpoint_run(
    broker: Broker,
    record: RunRecord,
    frontier: FrontierSnapshot,
    request: CheckpointRequest,
    root: str,
    channel_values: dict[str, bytes] | None = None,
    dynamic: dict[str, bytes] | None = None,
) -> tuple[str, CheckpointMetadata]:
    """Write the three checkpoint files of a run; relative paths are under ``root``.
    ``channel_values`` is the channel and ``dynamic`` the run's dynamic tasks as of the
    request (default: as Redis holds them now)."""
    graph = broker.runs.code.graph(record.graph_hash)
    if graph is None:
        raise CheckpointError("<checkpoint>", f"graph {record.graph_hash} of run "
                              f"{record.session_id} is gone from Redis")
    manifest, code = graph
    payload = ContextPayload(
        session_id=record.session_id,
        graph_manifest=manifest,
        graph_code=code,
        channel={"backend": "redis", "channel": "redis", "name": record.session_id,
                 "prefix": broker.keyspace.prefix,
                 "values": broker.runs.channel_values(record.session_id)
                 if channel_values is None else channel_values},
        start_node=record.start_node,
        max_steps=record.max_steps,
        default_max_cycles=record.default_max_cycles,
        default_max_retries=record.default_max_retries,
        config={"workflow": record.workflow, "queue": record.queue},
        dynamic=broker.runs.dynamic_blobs(record.session_id) if dynamic is None else dynamic,
    )
    if request.path:
        base = checkpoint_location(root, request.path)
    else:
        base = default_base(record.session_id, frontier.steps, root)
    return write_checkpoint(base, payload, frontier, trace_id=record.trace_id,
                            user_metadata=request.metadata)


def checkpoint_location(root: str, requested: str) -> str:
    """The base path for a checkpoint a task asked for at ``requested``, confined to
    ``root`` (the coordinator's checkpoint directory or ``redis://`` store): a relative
    name goes below it, an absolute path or a URL only if it already lies inside it.
    `CheckpointError` for anything else (``..`` escapes, other directories, other
    Redis servers)."""
    if "\x00" in requested:
        raise CheckpointError(repr(requested), "a checkpoint path cannot contain NUL")
    if is_redis_path(root):
        return _in_store(root, split_base(requested))
    if is_redis_path(requested) or "://" in requested:
        raise CheckpointError(mask_url(requested), f"refused: checkpoints of this cluster go "
                                                   f"to its checkpoint directory {root}")
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, split_base(requested)))
    if target == real_root or os.path.commonpath([real_root, target]) != real_root:
        raise CheckpointError(requested, f"refused: outside the coordinator's checkpoint "
                                         f"directory {real_root}")
    return target


def _in_store(root: str, requested: str) -> str:
    server, prefix = store_root(root)
    if is_redis_path(requested):
        other, name = store_root(requested)
        if other != server:
            raise CheckpointError(mask_url(requested), f"refused: checkpoints of this cluster "
                                                       f"go to its own store {server}")
    elif "://" in requested or requested.startswith("/"):
        raise CheckpointError(requested, f"refused: checkpoints of this cluster go to its "
                                         f"store {root}")
    else:
        name = posixpath.join(prefix, requested) if prefix else requested
    name = posixpath.normpath(name)
    inside = name.startswith(prefix + "/") if prefix else not name.startswith((".", "/"))
    if not inside or ".." in name.split("/"):
        raise CheckpointError(mask_url(requested), f"refused: outside the checkpoint store "
                                                   f"{server}/{prefix}")
    # The root's own URL (its credentials and settings), with the confined name.
    parts = urlsplit(root)
    db = server.rsplit("/", 1)[1]
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}/{name}", parts.query, ""))


def write_requested(broker: Broker, run: RunState, root: str, log: Any,
                    before_each: Callable[[], None] = lambda: None,
                    ) -> list[tuple[CheckpointRequest, str]]:
    """Write the checkpoints ``run`` asked for, before the commit of the step that asked:
    the channel and the dynamic tasks as Redis holds them, with what that commit adds.
    The commit notes on the run's record where the last one went, or why one failed
    (``checkpoint_error``: logged, never raised). So a run is never seen ended before
    its checkpoints are written, and none is lost: a coordinator that dies before its
    commit leaves the files, and the next leader, applying the same events again,
    writes them again. ``before_each`` runs before each checkpoint is written. Returns
    the requests written and where."""
    if not run.checkpoints:
        return []
    sid = run.session_id
    values = {**broker.runs.channel_values(sid), **run.results}
    dynamic = {**broker.runs.dynamic_blobs(sid), **run.dynamic}
    written = []
    for pending in run.checkpoints:
        before_each()
        try:
            path, _meta = checkpoint_run(broker, run.record, pending.frontier,
                                         pending.request, root, values, dynamic)
            run.checkpoint_path = path
            log.info("checkpoint written", session=sid, path=path,
                     steps=pending.frontier.steps)
            written.append((pending.request, path))
        except GraflowError as exc:
            run.checkpoint_error = str(exc)
            log.error("checkpoint failed", session=sid, error=str(exc))
    run.checkpoints = []
    return written


class AutoCheckpoints:
    """Automatic checkpoints of every run, each ``every_steps`` steps and/or
    ``every_s`` seconds (0 disables either)."""

    def __init__(self, every_steps: int = 0, every_s: float = 0.0) -> None:
        self.every_steps = every_steps
        self.every_s = every_s
        self._last: dict[str, tuple[int, float]] = {}  # session -> (steps, monotonic)

    def request(self, runs: dict[str, RunState], touched: set[str]) -> None:
        """Ask for a checkpoint of each touched run that is due."""
        if not (self.every_steps or self.every_s):
            return
        now = time.monotonic()
        for sid in touched:
            run = runs.get(sid)
            if run is None or run.end is not None:
                continue
            last_steps, last_at = self._last.setdefault(sid, (0, now))
            steps = run.scheduler.steps
            due_steps = self.every_steps and steps - last_steps >= self.every_steps
            due_time = self.every_s and now - last_at >= self.every_s
            if (due_steps or due_time) and not run.checkpoints:
                run.checkpoints.append(PendingCheckpoint(
                    CheckpointRequest(None, {"automatic": True}), run.scheduler.snapshot()))
                self._last[sid] = (steps, now)

    def forget(self, session_id: str) -> None:
        self._last.pop(session_id, None)
