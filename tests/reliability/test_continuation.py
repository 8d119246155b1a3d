"""Local continuation on a cluster: a worker runs a chain's next step at once; a worker
or executor killed in a continued step, a leader killed mid-chain, and a proposal the
coordinator refuses all end with every step done exactly once in the results."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

from graflow_dist import Client, chain, parallel, task, workflow
from graflow_dist.broker import Broker
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.scripts import LeaseResult
from graflow_dist.embedded import free_port
from graflow_dist.scheduler.continuation import continuation_token, is_continuation_token
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.wire.messages import DONE, Event
from graflow_dist.wire.values import encode_value
from reliability.harness import Ledger, metric, record, recorded_step, wait_for, wait_run

STEPS = 8


def chain_workflow(ledger_dir: str, steps: int = STEPS, seconds: float = 0.0,
                   hang: str = "", hang_s: float = 30.0, die: str = ""):  # noqa: ANN201
    """Steps s0..s{n-1}, each returning its predecessor's result + 1. ``hang`` sleeps
    ``hang_s`` on its first attempt; ``die`` kills its own executor on its first."""

    def step(name: str, previous: str | None) -> Any:
        @task(name, inject_context=True)
        def run(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            first = ctx.spec.crashes == 0 and ctx.spec.attempt == 1
            if name == die and first:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(hang_s if name == hang and first else seconds)
            record(ledger_dir, ctx, "end")
            return (ctx.get_result(previous) if previous else 0) + 1

        return run

    with workflow("continued") as wf:
        chain(*[step(f"s{i}", f"s{i - 1}" if i else None) for i in range(steps)])
    return wf


def _records(cluster: Any, session_id: str) -> dict[str, Any]:
    return Broker(cluster.client, Keyspace.from_env()).console.task_records(session_id)


def _exactly_once(run: Any, steps: int = STEPS) -> None:
    ctx = run.context()
    assert Counter(ctx.completed_tasks) == Counter(f"s{i}" for i in range(steps))
    assert [run.get_result(f"s{i}") for i in range(steps)] == list(range(1, steps + 1))
    assert ctx.frontier.pending_tasks == []


def test_a_chain_runs_as_local_continuations(make_cluster, ledger: Ledger) -> None:
    port = free_port()
    cluster = make_cluster(workers=1, coordinator_options=["--metrics-port", str(port)])
    run = Client(cluster.url).submit(chain_workflow(ledger.path))
    assert wait_run(run, timeout_s=30) == STEPS
    _exactly_once(run)
    records = _records(cluster, run.session_id)
    # The first step's job was made by the client, the second's by the coordinator,
    # with the chain after it: every later step ran at once on the worker of its
    # predecessor, under the token it proposed, and shows so.
    assert [records[f"s{i}"].continued for i in range(STEPS)] == \
        [False, False] + [True] * (STEPS - 2)
    assert all(r.attempts == 1 and r.worker and r.outcome == "done" for r in records.values())
    assert {e.pid for e in ledger.entries("start")} == {ledger.entries("start")[0].pid}
    assert all(is_continuation_token(e.token) for e in ledger.entries("start")[2:])
    assert metric(port, "graflow_continued_total") == STEPS - 2
    assert metric(port, "graflow_continuations_refused_total") == 0
    # With continuation off, every step goes through the queue.
    off = make_cluster(workers=1, coordinator_options=["--max-continuation", "0"])
    run = Client(off.url).submit(chain_workflow(ledger.path, steps=3))
    assert wait_run(run, timeout_s=30) == 3
    assert not any(r.continued for r in _records(off, run.session_id).values())


def test_worker_killed_in_a_continued_step_recovers(make_cluster, ledger: Ledger) -> None:
    cluster = make_cluster(workers=2)
    run = Client(cluster.url).submit(chain_workflow(ledger.path, hang="s4"))
    first = wait_for(lambda: ledger.entries("start", "s4"), "s4 to start")[0]
    assert is_continuation_token(first.token)  # s4 runs as a continuation
    cluster.worker_by_pid(first.worker_pid).signal_group(signal.SIGKILL)
    # The lease reaper re-dispatches the continued step like any task of the job.
    assert wait_run(run, timeout_s=40) == STEPS
    _exactly_once(run)
    starts = Counter(e.task for e in ledger.entries("start"))
    assert starts == Counter({**{f"s{i}": 1 for i in range(STEPS)}, "s4": 2})
    again = [e for e in ledger.entries("start", "s4") if e.pid != first.pid]
    assert again and again[0].worker_pid != first.worker_pid
    assert run.context().frontier.crash_workers["s4"]


def test_executor_killed_in_a_continued_step_is_reported_at_once(make_cluster,
                                                                  ledger: Ledger) -> None:
    cluster = make_cluster(workers=1, worker_options=["--lease-s", "20",
                                                      "--heartbeat-s", "1"])
    started = time.monotonic()
    run = Client(cluster.url).submit(chain_workflow(ledger.path, die="s3"))
    assert wait_run(run, timeout_s=30) == STEPS
    assert time.monotonic() - started < 15  # its supervisor reported it, no lease wait
    _exactly_once(run)
    first, second = ledger.entries("start", "s3")
    assert is_continuation_token(first.token) and first.pid != second.pid
    assert len(run.context().frontier.crash_workers["s3"]) == 1


def test_leader_killed_mid_chain(make_cluster, ledger: Ledger) -> None:
    cluster = make_cluster(workers=1, coordinators=2)
    steps = 24
    run = Client(cluster.url).submit(chain_workflow(ledger.path, steps=steps, seconds=0.1))
    wait_for(lambda: len(ledger.entries("end")) >= 5, "a few steps to complete")
    leader = cluster.leader()
    assert leader is not None
    leader.signal_group(signal.SIGKILL)
    leader.proc.wait(timeout=5)
    assert wait_run(run, timeout_s=60) == steps
    _exactly_once(run, steps)
    starts = Counter(e.task for e in ledger.entries("start"))
    assert max(starts.values()) == 1, f"steps re-run after the takeover: {starts}"


def test_a_refused_proposal_falls_back_to_dispatch(make_cluster, ledger: Ledger) -> None:
    port = free_port()
    cluster = make_cluster(workers=0, coordinator_options=["--metrics-port", str(port)])
    run = Client(cluster.url).submit(chain_workflow(ledger.path, steps=3))
    # This test is the worker of the first step: it claims s0's job and proposes s1 at
    # a cycle the scheduler would not give it (as a worker with a stale chain would).
    broker = Broker(cluster.client, Keyspace.from_env())
    claimer = broker.claimer(broker.keyspace.queue_name, "test-worker", 20.0,
                             "rq:worker:test-worker")
    [job] = wait_for(lambda: claimer.claim(1), "s0's job")
    [spec] = job.batch.specs
    assert spec.task_id == "s0"
    proposal = TaskSpec("s1", continuation_token(), cycle=7)
    done = Event(DONE, run.session_id, token=spec.token, task_id="s0", worker="test-worker",
                 result=encode_value(1))
    assert claimer.continue_with([], done, proposal, job.job_id) == LeaseResult.CONTINUED
    wait_for(lambda: metric(port, "graflow_continuations_refused_total") == 1,
             "the coordinator to refuse the proposal")
    # The "continued" s1 reports; its token was never adopted: fenced off.
    fake = Event(DONE, run.session_id, token=proposal.token, task_id="s1",
                 worker="test-worker", result=encode_value(-100))
    assert claimer.send([fake], release=job.job_id)
    wait_for(lambda: metric(port, "graflow_stale_reports_total") >= 1, "the fake to be fenced")
    # s1 was dispatched as usual: a real worker runs it and the rest.
    cluster.add_worker()
    assert wait_run(run, timeout_s=30) == 3
    _exactly_once(run, 3)
    assert metric(port, "graflow_continued_total") == 1  # s2, continued by the real worker
    assert [e.task for e in ledger.entries("start")] == ["s1", "s2"]


def test_cancelling_a_continuing_chain_stops_it(make_cluster, ledger: Ledger) -> None:
    cluster = make_cluster(workers=1)
    run = Client(cluster.url).submit(chain_workflow(ledger.path, steps=6, hang="s2",
                                                    hang_s=60))
    wait_for(lambda: ledger.entries("start", "s2"), "s2 (continued) to start")
    run.cancel()
    wait_for(lambda: run.status() == "cancelled" and run.progress().running == 0,
             "the run to be cancelled with nothing running", timeout_s=10)
    time.sleep(1.0)  # nothing goes on after the cancellation
    assert [e.task for e in ledger.entries("start")] == ["s0", "s1", "s2"]
    assert "s2" not in run.context().completed_tasks


def test_a_continued_task_past_its_timeout_is_killed_and_retried(make_cluster,
                                                                 ledger: Ledger) -> None:
    cluster = make_cluster(workers=1)
    ledger_dir = ledger.path

    with workflow("continued-timeout") as wf:

        @task(inject_context=True)
        def a(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            return 1

        @task(inject_context=True)
        def b(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            return ctx.get_result("a") + 1

        @task(inject_context=True, timeout=1.0, max_retries=1)
        def spin(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            while ctx.spec.attempt == 1:
                pass
            return ctx.get_result("b") + 1

        a >> b >> spin

    run = Client(cluster.url).submit(wf)
    assert wait_run(run, timeout_s=30) == 3
    first, second = ledger.entries("start", "spin")
    assert is_continuation_token(first.token)  # its deadline held in the continued step
    assert first.pid != second.pid and second.token != first.token
    assert _records(cluster, run.session_id)["spin"].attempts == 2


def group_workflow(ledger_dir: str, members: int = 3, fillers: int = 40,
                   hang_join_s: float = 0.0):  # noqa: ANN201
    """head >> parallel(m0..) >> join, the join summing the members' results, beside
    ``fillers`` independent 50 ms tasks that keep the workers' backlog up while the
    group becomes ready (so its members go into one job). ``hang_join_s``: the join
    sleeps that long on its first attempt."""

    with workflow("continued-group") as wf:

        @task("join", inject_context=True)
        def join(ctx: Any) -> int:
            record(ledger_dir, ctx, "start")
            if ctx.spec.attempt == 1 and ctx.spec.crashes == 0:
                time.sleep(hang_join_s)
            record(ledger_dir, ctx, "end")
            return sum(ctx.get_result(f"m{i}") for i in range(members))

        head = recorded_step(ledger_dir, "head", 0.0, 0)
        head >> parallel(*[recorded_step(ledger_dir, f"m{i}", 0.0, 10 ** i)
                           for i in range(members)]) >> join
        parallel(*[recorded_step(ledger_dir, f"f{i}", 0.05, 0) for i in range(fillers)])
    return wf


def test_a_job_holding_a_whole_group_continues_with_its_join(make_cluster,
                                                              ledger: Ledger) -> None:
    port = free_port()
    cluster = make_cluster(workers=1, coordinator_options=["--metrics-port", str(port)])
    run = Client(cluster.url).submit(group_workflow(ledger.path))
    wait_run(run, timeout_s=40)
    assert run.get_result("join") == 111  # the members' results, read from the job
    records = _records(cluster, run.session_id)
    assert records["join"].continued and records["join"].attempts == 1
    starts = Counter(e.task for e in ledger.entries("start"))
    assert max(starts.values()) == 1, starts
    member_pids = {e.pid for e in ledger.entries("start") if e.task[0] in "mj"}
    assert len(member_pids) == 1  # the members and the join ran in one executor
    assert metric(port, "graflow_continuations_refused_total") == 0


def test_worker_killed_in_a_continued_join_recovers(make_cluster, ledger: Ledger) -> None:
    cluster = make_cluster(workers=2)
    run = Client(cluster.url).submit(group_workflow(ledger.path, hang_join_s=60))
    first = wait_for(lambda: ledger.entries("start", "join"), "the join to start",
                     timeout_s=40)[0]
    assert is_continuation_token(first.token)
    # The join ran ahead of its proposal; it hangs, so its worker's flusher sends the
    # members' reports with the proposal (as any report held back, within ms).
    members = {f"m{i}" for i in range(3)}
    wait_for(lambda: members <= {t for t, r in _records(cluster, run.session_id).items()
                                 if r.outcome == "done"},
             "the members' completions recorded", timeout_s=10)
    cluster.worker_by_pid(first.worker_pid).signal_group(signal.SIGKILL)
    wait_run(run, timeout_s=60)
    assert run.get_result("join") == 111
    starts = Counter(e.task for e in ledger.entries("start"))
    assert starts["join"] == 2 and all(starts[f"m{i}"] == 1 for i in range(3)), starts
    assert run.context().frontier.crash_workers["join"]
