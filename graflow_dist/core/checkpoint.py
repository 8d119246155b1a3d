"""CheckpointManager: create, resume and list checkpoints (Graflow's entry point)."""

from __future__ import annotations

import os
from typing import Any

from graflow_dist.channels.memory import MemoryChannel
from graflow_dist.checkpoint.format import (
    META,
    PKL,
    CheckpointMetadata,
    ContextPayload,
    parse_meta,
)
from graflow_dist.checkpoint.io import default_base, load_checkpoint, store_for, write_checkpoint
from graflow_dist.checkpoint.stores import DEFAULT_CHECKPOINT_DIR, FileCheckpointStore, split_base
from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.dynamic import adopt, load_dynamic
from graflow_dist.core.graph_code import graph_from_code, split_graph
from graflow_dist.errors import CheckpointError, GraflowError
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.wire.signing import loads_signed
from graflow_dist.wire.values import decode_value, encode_value


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


def context_payload(context: ExecutionContext) -> ContextPayload:
    """Everything of ``context`` that goes into ``.pkl``: no secrets, no connections."""
    channel = context.channel
    description = channel.describe()
    try:
        values = {k: encode_value(v) for k, v in channel.items()}
    except Exception as exc:
        raise CheckpointError("<new checkpoint>", f"channel data cannot be saved ({exc})") from exc
    code = split_graph(context.graph)
    return ContextPayload(
        session_id=context.session_id,
        graph_manifest=code.manifest_bytes,
        graph_code=code.blobs or {},
        channel={**description, "backend": description["channel"], "values": values},
        start_node=context.start_node,
        max_steps=context.max_steps,
        default_max_cycles=context.default_max_cycles,
        default_max_retries=context.default_max_retries,
        config=dict(context.config),
    )


def restore_context(payload: ContextPayload, frontier: FrontierSnapshot, path: str,
                    channel: Any = None) -> ExecutionContext:
    """An `ExecutionContext` from checkpoint parts; the channel is a `MemoryChannel`
    holding the saved values unless ``channel`` is given (then it receives them)."""
    try:
        graph = (graph_from_code(payload.graph_manifest, payload.graph_code, path)
                 if payload.graph_manifest else loads_signed(payload.graph_blob, path))
        adopt(graph, load_dynamic(payload.dynamic, path))
        values = {
            k: decode_value(v, f"{path}: channel key {k!r}")
            for k, v in payload.channel.get("values", {}).items()
        }
    except GraflowError as exc:
        raise CheckpointError(path, str(exc).removeprefix(f"{path}: ")) from None
    except Exception as exc:  # user code that no longer imports, etc.
        raise CheckpointError(
            path, f"cannot load the workflow ({type(exc).__name__}: {exc})"
        ) from exc
    unknown = sorted({s.task_id for s in frontier.pending_tasks if not graph.has_node(s.task_id)})
    if unknown:
        raise CheckpointError(
            path, f"pending tasks {unknown} are not in the saved workflow graph "
            "(.state.json and .pkl do not belong together)"
        )
    if channel is None:
        channel = MemoryChannel(payload.session_id)
    for key, value in values.items():
        channel.set(key, value)
    ctx = ExecutionContext(
        graph,
        payload.start_node,
        payload.max_steps,
        session_id=payload.session_id,
        channel=channel,
        default_max_cycles=payload.default_max_cycles,
        default_max_retries=payload.default_max_retries,
        config=payload.config,
    )
    ctx.frontier = frontier
    ctx.last_checkpoint_path = path
    return ctx


__all__ = ["CheckpointManager", "CheckpointMetadata"]
