"""What a stock ``rq worker`` finds if it takes a graflow-dist job by mistake.

graflow-dist jobs must run under ``graflow-dist worker`` (leases, fencing). If a plain
RQ worker pops one (it needs our serializer to read it at all), this function hands the
job's tasks back to the coordinator so they are re-dispatched, then fails the job with
an explanation (rq keeps it in its failed registry). Nothing is lost.
"""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from graflow_dist.broker import Broker
from graflow_dist.errors import GraflowError
from graflow_dist.wire.messages import LOST, Batch, Event


def run_batch(batch_body: Any) -> None:
    batch = Batch.from_body(batch_body, "rq job")
    job = get_current_job()
    if job is not None:
        Broker(job.connection).events.publish_all([
            Event(LOST, batch.session_id, token=spec.token, task_id=spec.task_id,
                  worker=f"plain rq worker {job.worker_name or '?'}",
                  error="taken by a plain rq worker; handed back")
            for spec in batch.specs])
    raise GraflowError(
        "graflow-dist jobs must be run by `graflow-dist worker`, not a plain `rq worker` "
        "(they need leases and fencing); the job's tasks were handed back for re-dispatch"
    )
