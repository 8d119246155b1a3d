"""Checkpoints written by the coordinator, straight from Redis.

The coordinator never unpickles user code: the graph, dynamic tasks and channel values
are copied as the signed/encoded bytes Redis holds.
"""

from __future__ import annotations

import os

from graflow_dist.broker import Broker
from graflow_dist.broker.record import RunRecord
from graflow_dist.checkpoint.format import CheckpointMetadata, ContextPayload
from graflow_dist.checkpoint.io import default_base, write_checkpoint
from graflow_dist.checkpoint.stores import split_base
from graflow_dist.errors import CheckpointError
from graflow_dist.scheduler.events import CheckpointRequest
from graflow_dist.scheduler.frontier import FrontierSnapshot


def checkpoint_run(
    broker: Broker,
    record: RunRecord,
    frontier: FrontierSnapshot,
    request: CheckpointRequest,
    root: str,
    channel_values: dict[str, bytes] | None = None,
) -> tuple[str, CheckpointMetadata]:
    """Write the three checkpoint files of a run; relative paths are under ``root``.
    ``channel_values`` is the channel as of the request (default: as it is now)."""
    graph_blob = broker.runs.graph_blob(record.graph_hash)
    if graph_blob is None:
        raise CheckpointError("<checkpoint>", f"graph {record.graph_hash} of run "
                              f"{record.session_id} is gone from Redis")
    payload = ContextPayload(
        session_id=record.session_id,
        graph_blob=graph_blob,
        channel={"backend": "redis", "channel": "redis", "name": record.session_id,
                 "prefix": broker.keyspace.prefix,
                 "values": broker.runs.channel_values(record.session_id)
                 if channel_values is None else channel_values},
        start_node=record.start_node,
        max_steps=record.max_steps,
        default_max_cycles=record.default_max_cycles,
        default_max_retries=record.default_max_retries,
        config={"workflow": record.workflow, "queue": record.queue},
        dynamic=broker.runs.dynamic_blobs(record.session_id),
    )
    if request.path:
        path = request.path
        is_remote = path.startswith(("redis://", "rediss://"))
        base = split_base(path if is_remote or os.path.isabs(path) else os.path.join(root, path))
    else:
        base = default_base(record.session_id, frontier.steps, root)
    return write_checkpoint(base, payload, frontier, trace_id=record.trace_id,
                            user_metadata=request.metadata)
