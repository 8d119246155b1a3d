"""Coordinator HA: the leader is SIGKILLed mid-run; the standby takes over the Redis
frontier and no completed task runs again."""

from __future__ import annotations

import signal
import time
from collections import Counter

from clusters import LEADER_LEASE_S

from graflow_dist import Client, chain, parallel, task, workflow
from reliability.harness import Ledger, record, recorded_step, wait_for, wait_run

CHAIN = 8
WIDTH = 6


def takeover_workflow(ledger_dir: str):  # noqa: ANN201
    def step(name: str, seconds: float, value: int):  # noqa: ANN202
        return recorded_step(ledger_dir, name, seconds, value)

    with workflow("takeover") as wf:

        @task(inject_context=True)
        def total(ctx) -> int:  # noqa: ANN001
            record(ledger_dir, ctx, "start")
            return sum(ctx.get_result(f"c{i}") for i in range(CHAIN)) + sum(
                ctx.get_result(f"p{i}") for i in range(WIDTH))

        chain(*[step(f"c{i}", 0.15, i) for i in range(CHAIN)]) >> parallel(
            *[step(f"p{i}", 0.6, 100 * i) for i in range(WIDTH)]) >> total
    return wf


def test_standby_takes_over_without_rerunning_completed_tasks(make_cluster, ledger: Ledger
                                                              ) -> None:
    cluster = make_cluster(workers=2, coordinators=2)
    run = Client(cluster.url).submit(takeover_workflow(ledger.path))

    wait_for(lambda: len(ledger.entries("end")) >= 3, "a few tasks to complete")
    leader = cluster.leader()
    assert leader is not None
    killed_at = time.monotonic()
    leader.signal_group(signal.SIGKILL)
    leader.proc.wait(timeout=5)
    standby = wait_for(lambda: (c := cluster.leader()) is not None and c is not leader and c,
                       "the standby to take over", timeout_s=LEADER_LEASE_S + 10)
    takeover_s = time.monotonic() - killed_at
    print(f"takeover after leader SIGKILL: {takeover_s:.2f} s (leader lease {LEADER_LEASE_S})")
    assert takeover_s <= LEADER_LEASE_S + 1.5

    expected = sum(range(CHAIN)) + sum(100 * i for i in range(WIDTH))
    assert wait_run(run, timeout_s=30) == expected
    starts = Counter(e.task for e in ledger.entries("start"))
    rerun = {t: n for t, n in starts.items() if n > 1}
    assert not rerun, f"tasks re-run after the takeover: {rerun}"
    ctx = run.context()
    assert len(ctx.completed_tasks) == CHAIN + WIDTH + 2  # + the parallel group node
    assert ctx.frontier.pending_tasks == []
    assert standby.alive()
