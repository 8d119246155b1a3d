"""The executor process: a `Worker` started by its supervisor, publishing in its slot.

``python -m graflow_dist.worker.child --slot-fd N --name NAME ...`` is what
`graflow_dist.worker.supervisor.Supervisor` runs for each executor; the Redis URL and
the prefix come from the environment (never argv: ``ps`` would show a password).
Not meant to be started by hand: ``graflow-dist worker`` does it. (Without
``--slot-fd`` it runs a worker that nothing supervises: no timeouts, no stopping of
cancelled tasks; bench/profile_services.py profiles it so.)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import dataclass, field

import structlog

from graflow_dist.broker.connection import connect, wait_for_connection
from graflow_dist.broker.jobs import DEFAULT_HEARTBEAT_S, DEFAULT_LEASE_S
from graflow_dist.broker.keys import Keyspace
from graflow_dist.errors import GraflowError
from graflow_dist.limits import Limits
from graflow_dist.observability.logging import configure_logging
from graflow_dist.trace.factory import tracer_from_name
from graflow_dist.worker.service import DEFAULT_GRACE_PERIOD_S, Worker
from graflow_dist.worker.slot import ExecutorSlot, SlotMetrics

# A replacement executor waits this long for an unreachable Redis (its supervisor
# already checked the connection once, at its own start).
DEFAULT_CHILD_STARTUP_TIMEOUT_S = 3600.0
_PARENT_CHECK_S = 0.5

log = structlog.get_logger("graflow_dist.worker")


@dataclass(frozen=True)
class ExecutorSettings:
    """What every executor of one ``graflow-dist worker`` shares."""

    queue: str | None = None
    lease_s: float = DEFAULT_LEASE_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S
    tracer: str = "auto"
    task_timeout_s: float = 0.0
    startup_timeout_s: float = DEFAULT_CHILD_STARTUP_TIMEOUT_S
    limits: Limits = field(default_factory=Limits)

    def argv(self) -> list[str]:
        out = ["--lease-s", repr(self.lease_s), "--heartbeat-s", repr(self.heartbeat_s),
               "--grace-period-s", repr(self.grace_period_s), "--tracer", self.tracer,
               "--task-timeout-s", repr(self.task_timeout_s),
               "--startup-timeout-s", repr(self.startup_timeout_s),
               "--max-result-bytes", str(self.limits.max_result_bytes),
               "--max-value-bytes", str(self.limits.max_value_bytes),
               "--max-message-bytes", str(self.limits.max_message_bytes)]
        return out + (["--queue", self.queue] if self.queue else [])


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="graflow_dist.worker.child")
    ap.add_argument("--slot-fd", type=int, default=None)
    ap.add_argument("--name", default=None)
    ap.add_argument("--queue", default=None)
    ap.add_argument("--lease-s", type=float, default=DEFAULT_LEASE_S)
    ap.add_argument("--heartbeat-s", type=float, default=DEFAULT_HEARTBEAT_S)
    ap.add_argument("--grace-period-s", type=float, default=DEFAULT_GRACE_PERIOD_S)
    ap.add_argument("--tracer", default="auto")
    ap.add_argument("--task-timeout-s", type=float, default=0.0)
    ap.add_argument("--startup-timeout-s", type=float, default=DEFAULT_CHILD_STARTUP_TIMEOUT_S)
    defaults = Limits()
    ap.add_argument("--max-result-bytes", type=int, default=defaults.max_result_bytes)
    ap.add_argument("--max-value-bytes", type=int, default=defaults.max_value_bytes)
    ap.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    return ap


def _watch_parent(worker: Worker) -> None:
    """Stop (gracefully) if the supervisor is gone: nobody would enforce timeouts."""
    parent = os.getppid()
    while not worker.stopping.wait(_PARENT_CHECK_S):
        if os.getppid() != parent:
            worker.log.warning("supervisor gone: stopping")
            worker.request_stop()
            return


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        client = connect()
        wait_for_connection(client, None, args.startup_timeout_s,
                            lambda exc: log.warning("waiting for redis", error=str(exc)))
        slot = None if args.slot_fd is None else ExecutorSlot.attach(args.slot_fd)
        worker = Worker(client, keyspace=Keyspace.from_env(), queue=args.queue, name=args.name,
                        lease_s=args.lease_s, heartbeat_s=args.heartbeat_s,
                        grace_period_s=args.grace_period_s,
                        metrics=None if slot is None else SlotMetrics(slot),
                        tracer=tracer_from_name(args.tracer),
                        task_timeout_s=args.task_timeout_s, slot=slot,
                        limits=Limits(args.max_result_bytes, args.max_value_bytes,
                                      args.max_message_bytes))
    except GraflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.interrupt())
    if slot is not None:
        threading.Thread(target=_watch_parent, args=(worker,), name="gf-parent",
                         daemon=True).start()
    worker.run()
    # Stopped: a late SIGTERM (the node's and the supervisor's both come) must not kill
    # the interpreter while it exits, which would look like a crash.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    main()
