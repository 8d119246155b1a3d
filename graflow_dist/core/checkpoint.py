"""CheckpointManager: create, resume and list checkpoints (Graflow's entry point)."""

from __future__ import annotations

import os
from typing import Any

from graflow_dist.checkpoint.format import META, PKL, CheckpointMetadata, parse_meta
from graflow_dist.checkpoint.manager import (
    DEFAULT_CHECKPOINT_DIR,
    context_payload,
    default_base,
    load_checkpoint,
    restore_context,
    store_for,
    write_checkpoint,
)
from graflow_dist.checkpoint.stores import FileCheckpointStore, split_base
from graflow_dist.core.context import ExecutionContext
from graflow_dist.errors import CheckpointError


class CheckpointManager:
    """Checkpoints of a run: ``BASE.pkl``, ``BASE.state.json``, ``BASE.meta.json``."""

    @classmethod
    def create_checkpoint(
        cls,
        context: ExecutionContext,
        *,
        path: str | os.PathLike[str] | None = None,
        metadata: dict[str, Any] | None = None,
        resuming_task_id: str | None = None,
    ) -> tuple[str, CheckpointMetadata]:
        """Write a checkpoint of ``context`` now and return ``(pkl_path, metadata)``.

        ``path`` is a base name (a trailing ``.pkl`` is ignored), default
        ``checkpoints/{session_id}/session_{session_id}_step_{steps}_...``. Tasks
        normally call ``task_ctx.checkpoint()`` instead, which defers this until the
        task completed.
        """
        frontier = context.current_frontier()
        base = split_base(os.fspath(path)) if path else default_base(
            context.session_id, frontier.steps
        )
        user_metadata = dict(metadata or {})
        if resuming_task_id:
            user_metadata.setdefault("resuming_task_id", resuming_task_id)
        pkl_path, meta = write_checkpoint(
            base, context_payload(context), frontier,
            trace_id=context.trace_id, user_metadata=user_metadata,
        )
        context.last_checkpoint_path = pkl_path
        context.checkpoint_metadata = meta.to_dict()
        return pkl_path, meta

    @classmethod
    def resume_from_checkpoint(
        cls, checkpoint_path: str | os.PathLike[str]
    ) -> tuple[ExecutionContext, CheckpointMetadata]:
        """Load a checkpoint; continue it with ``WorkflowEngine().execute(context)``.

        Raises `CheckpointError` naming the file when one is missing, truncated,
        corrupt, forged, or of an unknown schema version.
        """
        payload, frontier, meta = load_checkpoint(os.fspath(checkpoint_path))
        context = restore_context(payload, frontier, meta.path or os.fspath(checkpoint_path))
        context.checkpoint_metadata = meta.to_dict()
        return context, meta

    @classmethod
    def list_checkpoints(
        cls,
        directory: str | os.PathLike[str] = DEFAULT_CHECKPOINT_DIR,
        session_id: str | None = None,
    ) -> list[CheckpointMetadata]:
        """Committed checkpoints under ``directory`` (optionally only those of
        ``session_id``, wherever they lie below it), oldest first. Uncommitted or
        unreadable ones are skipped."""
        root = os.fspath(directory)
        is_redis = root.startswith(("redis://", "rediss://"))
        store = store_for(root) if is_redis else FileCheckpointStore(root)
        found = []
        for base in store.list_bases():
            try:
                meta = parse_meta(store.read(base, META), base + META)
            except CheckpointError:
                continue
            if session_id is not None and meta.session_id != session_id:
                continue
            meta.path = base + PKL
            found.append(meta)
        return sorted(found, key=lambda m: (m.created_at, m.steps))

    @classmethod
    def latest_checkpoint(
        cls, directory: str | os.PathLike[str] = DEFAULT_CHECKPOINT_DIR,
        session_id: str | None = None,
    ) -> CheckpointMetadata | None:
        found = cls.list_checkpoints(directory, session_id)
        return found[-1] if found else None


__all__ = ["CheckpointManager", "CheckpointMetadata"]
