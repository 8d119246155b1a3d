"""Writing and loading checkpoints (the seed's contract, crash-safe)."""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from graflow_dist.channels.codec import decode_value, encode_value
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
from graflow_dist.checkpoint.stores import CheckpointStore, FileCheckpointStore, split_base
from graflow_dist.errors import CheckpointError, GraflowError
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.wire.connection import strip_credentials
from graflow_dist.wire.signing import dumps_signed, loads_signed

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext

DEFAULT_CHECKPOINT_DIR = "checkpoints"


def default_base(session_id: str, steps: int, root: str = DEFAULT_CHECKPOINT_DIR) -> str:
    """``checkpoints/{session_id}/session_{session_id}_step_{steps}_{unix}_{rand}``."""
    stamp = f"{int(time.time())}_{uuid.uuid4().hex[:6]}"
    return os.path.join(root, session_id, f"session_{session_id}_step_{steps}_{stamp}")


def store_for(path: str) -> CheckpointStore:
    """The store a checkpoint path lives in: ``redis://...`` or the filesystem."""
    if path.startswith(("redis://", "rediss://")):
        from graflow_dist.checkpoint.redis_store import RedisCheckpointStore

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


def context_payload(context: ExecutionContext) -> ContextPayload:
    """Everything of ``context`` that goes into ``.pkl``: no secrets, no connections."""
    channel = context.channel
    description = channel.describe()
    try:
        values = {k: encode_value(v) for k, v in channel.items()}
    except Exception as exc:
        raise CheckpointError("<new checkpoint>", f"channel data cannot be saved ({exc})") from exc
    return ContextPayload(
        session_id=context.session_id,
        graph_blob=dumps_signed(context.graph),
        channel={**description, "backend": description["channel"], "values": values},
        start_node=context.start_node,
        max_steps=context.max_steps,
        default_max_cycles=context.default_max_cycles,
        default_max_retries=context.default_max_retries,
        config=dict(context.config),
    )


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


def restore_context(payload: ContextPayload, frontier: FrontierSnapshot, path: str,
                    channel: Any = None) -> ExecutionContext:
    """An `ExecutionContext` from checkpoint parts; the channel is a `MemoryChannel`
    holding the saved values unless ``channel`` is given (then it receives them)."""
    from graflow_dist.channels.memory import MemoryChannel
    from graflow_dist.core.context import ExecutionContext

    try:
        graph = loads_signed(payload.graph_blob, path)
        for task_id, blob in payload.dynamic.items():
            if not graph.has_node(task_id):
                graph.add_node(loads_signed(blob, f"{path}: dynamic task {task_id!r}"))
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


__all__ = [
    "DEFAULT_CHECKPOINT_DIR",
    "context_payload",
    "default_base",
    "load_checkpoint",
    "restore_context",
    "write_checkpoint",
]
