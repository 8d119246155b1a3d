"""What a stock ``rq worker`` finds if it takes a graflow-dist job by mistake.

graflow-dist jobs must run under ``graflow-dist worker`` (leases, fencing). If a plain
RQ worker pops one, this function hands the job's tasks back to the coordinator so they
are re-dispatched, then fails the job with an explanation (rq keeps it in its failed
registry). Nothing is lost.
"""

from __future__ import annotations

from rq import get_current_job

from graflow_dist.errors import GraflowError
from graflow_dist.wire.keyspace import Keyspace
from graflow_dist.wire.messages import LOST, Batch, Event


def run_batch(batch_bytes: bytes) -> None:
    batch = Batch.decode(batch_bytes, "rq job")
    job = get_current_job()
    if job is not None:
        keyspace = Keyspace.from_env()
        pipe = job.connection.pipeline(transaction=True)
        for spec in batch.specs:
            event = Event(LOST, batch.session_id, token=spec.token, task_id=spec.task_id,
                          worker=f"rq:{job.worker_name or '?'}",
                          error="taken by a plain rq worker; handed back")
            pipe.xadd(keyspace.events, {"d": event.encode()})
        pipe.execute()
    raise GraflowError(
        "graflow-dist jobs must be run by `graflow-dist worker`, not a plain `rq worker` "
        "(they need leases and fencing); the job's tasks were handed back for re-dispatch"
    )
