"""Writing and loading checkpoints (the seed's contract, crash-safe)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from graflow_dist.broker.connection import strip_credentials
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
from graflow_dist.checkpoint.redis_store import RedisCheckpointStore
from graflow_dist.checkpoint.stores import (
    DEFAULT_CHECKPOINT_DIR,
    CheckpointStore,
    FileCheckpointStore,
    split_base,
)
from graflow_dist.errors import CheckpointError
from graflow_dist.scheduler.frontier import FrontierSnapshot


def default_base(session_id: str, steps: int, root: str = DEFAULT_CHECKPOINT_DIR) -> str:
    """``checkpoints/{session_id}/session_{session_id}_step_{steps}_{unix}_{rand}``."""
    stamp = f"{int(time.time())}_{uuid.uuid4().hex[:6]}"
    return os.path.join(root, session_id, f"session_{session_id}_step_{steps}_{stamp}")


def store_for(path: str) -> CheckpointStore:
    """The store a checkpoint path lives in: ``redis://...`` or the filesystem."""
    if path.startswith(("redis://", "rediss://")):
        return RedisCheckpointStore.for_path(path)
    return FileCheckpointStore()


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
    if base.startswith(("redis://", "rediss://")):
        base = strip_credentials(base)  # the path is stored and shown: no password in it
    meta.path = base + PKL
    return base + PKL, meta


def load_checkpoint(path: str) -> tuple[ContextPayload, FrontierSnapshot, CheckpointMetadata]:
    """Read and validate all three files; any problem is a `CheckpointError`."""
    base = split_base(os.fspath(path))
    store = store_for(base)
    meta = parse_meta(store.read(base, META), base + META)  # absent meta: never committed
    frontier, _ = parse_state(store.read(base, STATE), base + STATE)
    payload = ContextPayload.decode(store.read(base, PKL), base + PKL)
    if frontier.session_id != meta.session_id or payload.session_id != meta.session_id:
        raise CheckpointError(
            base + STATE, "session ids of .pkl, .state.json and .meta.json disagree"
        )
    meta.path = base + PKL
    return payload, frontier, meta


__all__ = [
    "DEFAULT_CHECKPOINT_DIR",
    "default_base",
    "load_checkpoint",
    "store_for",
    "write_checkpoint",
]
