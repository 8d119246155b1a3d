"""Writing and loading checkpoints (the seed's contract, crash-safe)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from graflow_dist.checkpoint.format import (
    META,
    PKL,
    STATE,
    CheckpointMetadata,
    ContextPayload,
    dump_json,
    parse_meta,
    parse_state,
    state_document,
)
from graflow_dist.checkpoint.stores import (
    DEFAULT_CHECKPOINT_DIR,
    CheckpointStore,
    FileCheckpointStore,
    is_redis_path,
    split_base,
    with_suffix,
)
from graflow_dist.errors import CheckpointError
from graflow_dist.names import is_session_id
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.wire.fields import shown


def default_base(session_id: str, steps: int, root: str = DEFAULT_CHECKPOINT_DIR) -> str:
    """``checkpoints/{session_id}/session_{session_id}_step_{steps}_{unix}_{rand}``."""
    if not is_session_id(session_id):  # it becomes a directory name
        raise CheckpointError(root, f"no default checkpoint path for session id "
                                    f"{shown(session_id)}: not a valid session id")
    stamp = f"{int(time.time())}_{uuid.uuid4().hex[:6]}"
    name = f"session_{session_id}_step_{steps}_{stamp}"
    if is_redis_path(root):
        head, _, query = root.partition("?")
        return f"{head.rstrip('/')}/{session_id}/{name}" + (f"?{query}" if query else "")
    return os.path.join(root, session_id, name)


def store_for(path: str) -> CheckpointStore:
    """The store a checkpoint path lives in: ``redis://...`` or the filesystem."""
    if is_redis_path(path):
        from graflow_dist.checkpoint.redis_store import RedisCheckpointStore  # noqa: PLC0415

        return RedisCheckpointStore.for_path(path)
    return FileCheckpointStore()


def shown_path(path: str) -> str:
    """``path`` as it may be stored and shown: a Redis URL without its password."""
    if not is_redis_path(path):
        return path
    from graflow_dist.checkpoint.redis_store import public_path  # noqa: PLC0415

    return public_path(path)


def write_checkpoint(
    base: str,
    payload: ContextPayload,
    frontier: FrontierSnapshot,
    *,
    trace_id: str,
    user_metadata: dict[str, Any] | None = None,
    store: CheckpointStore | None = None,
) -> tuple[str, CheckpointMetadata]:
    """Write the three files for ``frontier`` under ``base``; returns the ``.pkl`` path."""
    backend = {"channel": payload.channel["backend"]}
    meta = CheckpointMetadata.create(
        frontier.session_id, frontier.steps, payload.start_node, backend, user_metadata
    )
    state = state_document(
        frontier,
        trace_id=trace_id,
        start_node=payload.start_node,
        max_steps=payload.max_steps,
        backend=backend,
    )
    files = {PKL: payload.encode(), STATE: dump_json(state), META: dump_json(meta.to_dict())}
    (store or store_for(base)).write(base, files)
    meta.path = with_suffix(shown_path(base), PKL)
    return meta.path, meta


def load_checkpoint(path: str) -> tuple[ContextPayload, FrontierSnapshot, CheckpointMetadata]:
    """Read and validate all three files; any problem is a `CheckpointError`."""
    base = split_base(os.fspath(path))
    store = store_for(base)
    shown = shown_path(base)
    meta = parse_meta(store.read(base, META), with_suffix(shown, META))  # absent: uncommitted
    frontier, _ = parse_state(store.read(base, STATE), with_suffix(shown, STATE))
    payload = ContextPayload.decode(store.read(base, PKL), with_suffix(shown, PKL))
    if frontier.session_id != meta.session_id or payload.session_id != meta.session_id:
        raise CheckpointError(
            with_suffix(shown, STATE), "session ids of .pkl, .state.json and .meta.json "
            "disagree"
        )
    meta.path = with_suffix(shown, PKL)
    return payload, frontier, meta


__all__ = [
    "DEFAULT_CHECKPOINT_DIR",
    "default_base",
    "load_checkpoint",
    "store_for",
    "write_checkpoint",
]
