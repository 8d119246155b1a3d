"""Submitter: how a client hands runs to a cluster, cheaply when it does so often.

A graph the client submitted before is recognised and neither pickled, signed nor
stored again (`GraphCodeCache`): the submission only asks Redis to confirm its code is
still there. A fresh run is started by the client itself (the pure scheduler's start:
its first specs and their jobs go with the record and the submission event, one round
trip), so its first tasks are queued before any coordinator has seen it; the
coordinator takes it over from there.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from graflow_dist.broker import Broker
from graflow_dist.broker.record import RunRecord
from graflow_dist.broker.submission import Submission
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.graph_code import GraphCode, GraphCodeCache, split_graph
from graflow_dist.errors import CodeMissingError, GraflowError
from graflow_dist.scheduler.specs import GraphShape
from graflow_dist.scheduler.state import Scheduler


class Submitter:
    """Prepares and sends submissions for one client connection."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.code_cache = GraphCodeCache()

    def submit(self, graph: TaskGraph, shape: GraphShape, sub: Submission) -> None:
        """Store ``sub`` (whose record names ``graph``'s hash once this returns); code
        that Redis lost since the client last stored it is stored again."""
        self.submit_many([(graph, shape, sub)])

    def prepare(self, graph: TaskGraph, shape: GraphShape, sub: Submission) -> GraphCode:
        """Give ``sub`` its graph (hash, code blobs named in ``shape``, manifest if it
        must be stored) and, for a fresh run, the client's start of it."""
        key = self.code_cache.key(graph, shape)
        code = self.code_cache.get(graph, key)
        if code is None:  # pickled, signed and sent blob by blob
            with self.broker.runs.code.upload() as upload:
                code = split_graph(graph, store=upload.add, keep=self.code_cache.keeps(graph))
            self.code_cache.put(graph, key, code)
            sub.manifest = code.manifest_bytes
        else:  # Redis should hold it: the submission checks
            sub.manifest = None
            sub.code = list(code.manifest.blobs)
        sub.record.graph_hash = code.graph_hash
        for node_id, blob in code.code_of.items():
            shape.nodes[node_id].code = blob
        if sub.frontier is None:
            start(sub)
        return code

    def submit_many(self, items: Sequence[tuple[TaskGraph, GraphShape, Submission]]) -> None:
        """`submit` several runs, in one round trip when their code is stored."""
        codes = [self.prepare(graph, shape, sub) for graph, shape, sub in items]
        missing = self.broker.runs.submit_many([sub for _g, _s, sub in items])
        for index in missing:  # Redis lost code since we stored it: store it again
            graph, shape, sub = items[index]
            self._restore_code(graph, codes[index], sub)
            self.broker.runs.submit(sub)

    def _restore_code(self, graph: TaskGraph, code: GraphCode, sub: Submission) -> None:
        with self.broker.runs.code.upload() as upload:
            if code.blobs is not None:
                upload.add_all(code.blobs)
            else:
                split_graph(graph, store=upload.add, keep=False)
        sub.manifest = code.manifest_bytes
        sub.code = []


def start(sub: Submission) -> None:
    """Start a fresh run client-side when that is all it takes: the scheduler's start
    dispatches its first specs and neither ends the run nor asks for anything else."""
    record: RunRecord = sub.record
    scheduler = Scheduler(sub.shape, record.session_id, max_steps=record.max_steps,
                          crash_limit=record.crash_limit, epoch=f"c{uuid.uuid4().hex[:12]}")
    try:
        decision = scheduler.start([record.start_node] if record.start_node else None)
    except GraflowError:
        return  # the coordinator fails the run with the reason, as for any bad start
    if decision.end is not None or decision.checkpoint is not None or not decision.dispatch:
        return
    sub.started = scheduler
    sub.first = decision.dispatch


__all__ = ["CodeMissingError", "Submitter", "start"]
