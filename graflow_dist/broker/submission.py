"""What a submission writes: the commands the ``submit_run`` script applies together.

A fresh run may come *started by its client*: the client ran the pure scheduler's
start, so the run's first specs (in its journal) and their jobs are written with the
record and the submission event, in the same round trip; the coordinator then takes
the run over as it stands, like a leader taking over, instead of starting it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from graflow_dist.broker.channel_data import channel_write_commands
from graflow_dist.broker.code import DEFAULT_BLOB_TTL_S
from graflow_dist.broker.events import EventLog
from graflow_dist.broker.frontier import (
    STARTED_EVENT_MAX_NODES,
    Command,
    expand,
    frontier_commands,
    journal_commands,
    progress_meta,
    shape_commands,
    started_body,
)
from graflow_dist.broker.jobs import DEFAULT_MAX_BATCH, iter_job_commands
from graflow_dist.broker.keys import Keyspace, RunField
from graflow_dist.broker.record import RunRecord
from graflow_dist.scheduler.events import RunStatus
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.scheduler.journal import Journal
from graflow_dist.scheduler.specs import GraphShape, TaskSpec
from graflow_dist.scheduler.state import Scheduler
from graflow_dist.wire.messages import RESUME, SUBMIT, Event

# Workers assumed when a client sizes the first jobs of a run it started (it does not
# ask how many are alive: one round trip less).
ASSUMED_WORKERS = 1


@dataclass
class Submission:
    """One incarnation of a session, as a client hands it over.

    ``manifest`` is stored with the run (None: the graph is stored already, and
    ``code`` lists its code blobs, which must still be there); ``frontier`` is set for
    a resume; ``started`` is a scheduler the client started (its journal holds the
    first specs, ``first`` those to enqueue); ``staged_shape`` a key the shape was
    written to ahead of the submission.
    """

    record: RunRecord
    shape: GraphShape
    manifest: bytes | None
    code: list[str] = field(default_factory=list)
    frontier: FrontierSnapshot | None = None
    channel_values: dict[str, bytes] = field(default_factory=dict)
    replace_channel: bool = True
    keep_channel: bool = False
    dynamic: dict[str, bytes] = field(default_factory=dict)
    started: Scheduler | None = None
    first: list[TaskSpec] = field(default_factory=list)
    # what the client's start changed (drained once: the submission may be sent again)
    start_journal: Journal | None = None
    staged_shape: str | None = None


def submission_commands(keyspace: Keyspace, events: EventLog, sub: Submission
                        ) -> list[Command]:
    """Everything ``sub`` writes once the script let it through, in order."""
    record = sub.record
    keys = keyspace.run(record.session_id)
    cmds: list[Command] = []
    if sub.manifest is not None:
        cmds.append(["SET", keyspace.blob(record.graph_hash), sub.manifest,
                     "EX", DEFAULT_BLOB_TTL_S])
    cmds.append(["DEL", *keys.frontier_keys()])
    # A new run has no task history (a resume keeps it).
    cmds.append(["DEL" if sub.frontier is None else "PERSIST", keys.tasks])
    if sub.dynamic:
        cmds.append(["HSET", keys.dynamic, *_pairs(sub.dynamic)])
    meta: dict[str, Any] = record.settings_meta()
    if sub.started is not None:
        meta[RunField.STATUS] = RunStatus.RUNNING.value
        meta[RunField.STARTED_AT] = repr(time.time())
    cmds.append(["HSET", keys.meta, *_pairs(meta)])
    shape_cmds: list[Command] = []
    progress = progress_meta(sub.started) if sub.started is not None else {}
    if sub.staged_shape is not None:
        cmds += [["RENAME", sub.staged_shape, keys.shape], ["PERSIST", keys.shape]]
    else:
        shape_cmds = list(shape_commands(keys.shape, sub.shape))
        cmds += shape_cmds
    if sub.frontier is not None:
        cmds += frontier_commands(keys, sub.frontier)
    if sub.started is not None:
        # What the coordinator's first commit would write: the graph outlives the
        # submit-time TTL while the run needs it.
        cmds += [["PERSIST", keyspace.blob(record.graph_hash)],
                 *(["PERSIST", keyspace.code(h)] for h in sub.shape.code_blobs())]
        if sub.start_journal is None:
            sub.start_journal = sub.started.drain_journal()
        cmds += expand(journal_commands(keys, sub.started, sub.start_journal, progress))
        cmds += iter_job_commands(keyspace, record, sub.first, DEFAULT_MAX_BATCH,
                                  ASSUMED_WORKERS, shape=sub.shape)
    cmds += channel_write_commands(keys, sub.channel_values)
    cmds.append(["SADD", keyspace.active_runs, record.session_id])
    cmds.append(["ZADD", keyspace.all_runs, record.submitted_at or time.time(),
                 record.session_id])
    event = Event(RESUME if sub.frontier is not None else SUBMIT, record.session_id)
    if sub.started is not None and len(shape_cmds) == 1 \
            and len(sub.shape.nodes) <= STARTED_EVENT_MAX_NODES:
        event.started = started_body({**meta, **progress},
                                     shape_cmds[0][2:], sub.started.snapshot())
    cmds.append(events.publish_command(event))
    return cmds


def _pairs(mapping: dict[str, Any]) -> list[Any]:
    return [x for item in mapping.items() for x in item]
