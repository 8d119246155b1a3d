"""Checkpoints written by the coordinator, straight from Redis.

The coordinator never unpickles user code: the graph, dynamic tasks and channel values
are copied as the signed/encoded bytes Redis holds.
"""

from __future__ import annotations

import os

import redis

from graflow_dist.channels.redis import read_raw_channel
from graflow_dist.checkpoint.format import CheckpointMetadata, ContextPayload
from graflow_dist.checkpoint.manager import default_base, write_checkpoint
from graflow_dist.checkpoint.stores import split_base
from graflow_dist.coordinator.frontier_store import RunInfo
from graflow_dist.errors import CheckpointError
from graflow_dist.scheduler.events import CheckpointRequest
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.wire.keyspace import Keyspace


def checkpoint_run(
    client: redis.Redis,
    keyspace: Keyspace,
    info: RunInfo,
    frontier: FrontierSnapshot,
    request: CheckpointRequest,
    root: str,
    channel_values: dict[str, bytes] | None = None,
) -> tuple[str, CheckpointMetadata]:
    """Write the three checkpoint files of a run; relative paths are under ``root``.
    ``channel_values`` is the channel as of the request (default: as it is now)."""
    keys = keyspace.run(info.session_id)
    graph_blob = client.get(keyspace.blob(info.graph_hash))
    if graph_blob is None:
        raise CheckpointError("<checkpoint>", f"graph {info.graph_hash} of run "
                              f"{info.session_id} is gone from Redis")
    dynamic = {k.decode(): v for k, v in client.hgetall(keys.dynamic).items()}
    payload = ContextPayload(
        session_id=info.session_id,
        graph_blob=graph_blob,
        channel={"backend": "redis", "channel": "redis", "name": info.session_id,
                 "prefix": keyspace.prefix,
                 "values": read_raw_channel(client, keys) if channel_values is None
                 else channel_values},
        start_node=info.start_node,
        max_steps=info.max_steps,
        default_max_cycles=info.default_max_cycles,
        default_max_retries=info.default_max_retries,
        config={"workflow": info.workflow, "queue": info.queue},
        dynamic=dynamic,
    )
    if request.path:
        path = request.path
        is_remote = path.startswith(("redis://", "rediss://"))
        base = split_base(path if is_remote or os.path.isabs(path) else os.path.join(root, path))
    else:
        base = default_base(info.session_id, frontier.steps, root)
    return write_checkpoint(base, payload, frontier, trace_id=info.trace_id,
                            user_metadata=request.metadata)
