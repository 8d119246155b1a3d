"""Workflow semantics on a real cluster: fan-out/join, chains, cycles, dynamic tasks,
group policies, retries, failures and termination."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from graflow_dist import (
    AtLeastNGroupPolicy,
    Client,
    CriticalGroupPolicy,
    RetryPolicy,
    TaskExecutionContext,
    chain,
    parallel,
    task,
    workflow,
)
from graflow_dist.broker.jobs import job_commands
from graflow_dist.broker.keys import Keyspace
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import (
    CycleLimitExceededError,
    MaxStepsExceededError,
    ParallelGroupError,
    RetryLimitExceededError,
    TaskExecutionError,
    WorkflowCancelledError,
)
from graflow_dist.scheduler.specs import TaskSpec

RUN_TIMEOUT_S = 60


def test_fan_out_of_5000_tasks_commits_in_pieces(client: Client) -> None:
    """One commit of 5,000 dispatches exceeds Lua's unpack() limit unless split."""
    n = 5000
    with workflow("fan-out-5000") as wf:

        @task
        def source() -> int:
            return 1

        def leaf(i: int) -> Any:
            @task(f"big_{i:04d}")
            def run(source: int) -> int:
                return source + i

            return run

        @task(inject_context=True)
        def join(ctx: TaskExecutionContext) -> int:
            return sum(ctx.get_result(f"big_{i:04d}") for i in range(n))

        source >> parallel(*[leaf(i) for i in range(n)]) >> join

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == sum(range(1, n + 1))
    progress = run.progress()
    assert (progress.status, progress.done, progress.total) == ("completed", n + 2, n + 2)


def test_fan_out_of_500_tasks_joins_once_and_keeps_every_result(
    client: Client, shared_cluster: LocalCluster
) -> None:
    n = 500
    with workflow("fan-out-500") as wf:

        @task
        def source() -> int:
            return 7

        def leaf(i: int) -> Any:
            @task(f"leaf_{i:03d}", inject_context=True)
            def run(ctx: TaskExecutionContext, source: int) -> int:
                ctx.get_channel().append("leaf_pids", os.getppid())  # its worker
                return source * i

            return run

        @task(inject_context=True)
        def join(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().atomic_add("join_runs", 1)
            return sum(ctx.get_result(f"leaf_{i:03d}") for i in range(n))

        source >> parallel(*[leaf(i) for i in range(n)]) >> join

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == 7 * sum(range(n))

    assert [run.get_result(f"leaf_{i:03d}") for i in range(n)] == [7 * i for i in range(n)]
    channel = run.channel()
    assert channel.get("join_runs") == 1, "the join must run once, after all 500 leaves"
    pids = channel.get("leaf_pids")
    assert len(pids) == n
    worker_pids = {w.pid for w in shared_cluster.workers}
    assert set(pids) <= worker_pids, "leaves ran outside the cluster's workers"
    assert len(set(pids)) > 1, "a 500-task fan-out should be spread over both workers"
    completed = run.context().completed_tasks
    assert completed[0] == "source" and completed[-1] == "join"
    assert len([t for t in completed if t.startswith("leaf_")]) == n
    progress = run.progress()
    assert (progress.status, progress.failed) == ("completed", 0)


def test_chain_of_100_tasks_runs_in_order(client: Client) -> None:
    n = 100

    def step(i: int) -> Any:
        @task(f"step_{i:03d}", inject_context=True)
        def run(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().append("order", i)
            return i

        return run

    with workflow("chain-100") as wf:
        chain(*[step(i) for i in range(n)])

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == n - 1
    assert run.channel().get("order") == list(range(n))
    assert run.context().completed_tasks == [f"step_{i:03d}" for i in range(n)]
    assert run.context().steps == n


def test_next_iteration_passes_data_between_cycles(client: Client) -> None:
    with workflow("cycles") as wf:

        @task(inject_context=True, max_cycles=5)
        def refine(ctx: TaskExecutionContext, data: dict[str, int] | None = None) -> int:
            ctx.get_channel().append("seen", [ctx.cycle_count, data])
            if ctx.cycle_count < 5:
                ctx.next_iteration({"n": ctx.cycle_count * 10})
            return ctx.cycle_count

        @task(inject_context=True)
        def report(ctx: TaskExecutionContext, refine: int) -> int:
            ctx.get_channel().atomic_add("report_runs", 1)
            return refine * 100

        refine >> report

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == 500
    channel = run.channel()
    assert channel.get("seen") == [
        [1, None], [2, {"n": 10}], [3, {"n": 20}], [4, {"n": 30}], [5, {"n": 40}]
    ]
    assert channel.get("report_runs") == 1, "successors wait for the last iteration"
    ctx = run.context()
    assert ctx.cycle_counts["refine"] == 5
    assert ctx.completed_tasks == ["refine", "report"]


def test_exceeding_max_cycles_fails_the_run_with_cycle_limit_error(client: Client) -> None:
    with workflow("runaway-loop") as wf:

        @task(inject_context=True, max_cycles=3)
        def forever(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().append("runs", ctx.cycle_count)
            ctx.next_iteration()

        @task(inject_context=True)
        def never(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("never_ran", True)

        forever >> never

    run = client.submit(wf)
    with pytest.raises(CycleLimitExceededError) as raised:
        run.wait(timeout=RUN_TIMEOUT_S)
    assert run.status() == "failed"
    assert run.channel().get("runs") == [1, 2, 3]
    assert run.channel().get("never_ran") is None
    assert "'forever' exceeded max_cycles=3" in str(raised.value)
    # The error is rebuilt in the client with the attributes it has in process.
    assert raised.value.task_id == "forever"
    assert raised.value.max_cycles == 3


def test_next_task_adds_a_task_created_on_a_worker(client: Client) -> None:
    with workflow("dynamic") as wf:

        @task(inject_context=True)
        def planner(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", "planner")
            factor = len(ctx.task_id) - 1  # computed on the worker, captured below

            @task("generated", inject_context=True)
            def generated(inner: TaskExecutionContext) -> int:
                inner.get_channel().append("ran", "generated")
                return factor * 7

            ctx.next_task(generated)
            return "planned"

        @task(inject_context=True)
        def successor(ctx: TaskExecutionContext, planner: str) -> str:
            ctx.get_channel().append("ran", "successor")
            return f"after {planner}"

        planner >> successor

    # Several runs of one workflow share the workers' cached graph: a task added by one
    # run must not leak into the next (it would lose its successors and its blob).
    for _ in range(3):
        run = client.submit(wf)
        run.wait(timeout=RUN_TIMEOUT_S)
        assert sorted(run.channel().get("ran")) == ["generated", "planner", "successor"]
        assert run.get_result("generated") == 42
        assert run.get_result("successor") == "after planned"
        assert set(run.context().completed_tasks) == {"planner", "generated", "successor"}


def test_next_task_with_goto_skips_the_successors(client: Client) -> None:
    with workflow("goto") as wf:

        @task(inject_context=True)
        def router(ctx: TaskExecutionContext) -> str:
            @task("detour", inject_context=True)
            def detour(inner: TaskExecutionContext) -> str:
                inner.get_channel().append("ran", "detour")
                return "took the detour"

            ctx.get_channel().append("ran", "router")
            ctx.next_task(detour, goto=True)
            return "routed"

        @task(inject_context=True)
        def skipped(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", "skipped")
            return "should not run"

        router >> skipped

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == "took the detour"
    assert run.channel().get("ran") == ["router", "detour"]
    assert run.get_result("skipped") is None
    assert run.context().completed_tasks == ["router", "detour"]


def test_next_task_to_an_existing_task_jumps_there(client: Client) -> None:
    with workflow("jump") as wf:

        @task(inject_context=True)
        def start(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().append("ran", "start")
            ctx.next_task(ctx.graph.get_node("finish"), goto=True)

        @task(inject_context=True)
        def middle(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().append("ran", "middle")

        @task(inject_context=True)
        def finish(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", "finish")
            return "done"

        start >> middle >> finish

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == "done"
    assert run.channel().get("ran") == ["start", "finish"]


def test_terminate_workflow_ends_the_run_successfully(client: Client) -> None:
    with workflow("terminate") as wf:

        @task
        def first() -> int:
            return 1

        @task(inject_context=True)
        def decide(ctx: TaskExecutionContext, first: int) -> str:
            ctx.terminate_workflow("nothing left to do")
            return f"stopped after {first}"

        @task(inject_context=True)
        def never(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("never_ran", True)

        first >> decide >> never

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == "stopped after 1"
    assert run.status() == "terminated"
    assert run.channel().get("never_ran") is None
    assert run.get_result("never") is None
    assert run.context().completed_tasks == ["first", "decide"]


def test_a_failing_task_fails_the_run_with_a_task_execution_error(client: Client) -> None:
    with workflow("failing") as wf:

        @task
        def fine() -> int:
            return 1

        @task
        def explode(fine: int) -> None:
            raise ValueError(f"kaboom at {fine}")

        @task(inject_context=True)
        def never(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("never_ran", True)

        fine >> explode >> never

    run = client.submit(wf)
    with pytest.raises(TaskExecutionError) as raised:
        run.wait(timeout=RUN_TIMEOUT_S)
    assert raised.value.task_id == "explode"
    assert "'explode'" in str(raised.value)
    assert "ValueError: kaboom at 1" in str(raised.value)
    assert run.status() == "failed"
    assert run.channel().get("never_ran") is None
    assert run.progress().failed == 1


def test_retry_policy_retries_a_flaky_task_until_it_succeeds(client: Client) -> None:
    with workflow("retries") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(
            max_retries=3, initial_interval=0.05, backoff_factor=1.0))
        def flaky(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("attempts", ctx.attempt)
            if ctx.attempt < 3:
                raise ConnectionError(f"transient failure {ctx.attempt}")
            return f"ok on attempt {ctx.attempt}"

        @task
        def after(flaky: str) -> str:
            return flaky.upper()

        flaky >> after

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == "OK ON ATTEMPT 3"
    assert run.channel().get("attempts") == [1, 2, 3]
    assert run.progress().failed == 2


def test_retry_policy_exhausted_fails_with_the_attempt_count(client: Client) -> None:
    with workflow("retries-exhausted") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=2, initial_interval=0.02))
        def hopeless(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().append("attempts", ctx.attempt)
            raise RuntimeError(f"still broken ({ctx.attempt})")

    run = client.submit(wf)
    with pytest.raises(RetryLimitExceededError) as raised:
        run.wait(timeout=RUN_TIMEOUT_S)
    assert isinstance(raised.value, TaskExecutionError)
    assert raised.value.task_id == "hopeless"
    assert raised.value.attempts == 3
    assert "still broken (3)" in str(raised.value)
    assert run.channel().get("attempts") == [1, 2, 3]


GROUP_CASES = [
    pytest.param("strict", set(), True, id="strict-all-succeed"),
    pytest.param("strict", {"m2"}, False, id="strict-one-fails"),
    pytest.param("best_effort", {"m1", "m3"}, True, id="best-effort-two-fail"),
    pytest.param(AtLeastNGroupPolicy(2), {"m3"}, True, id="at-least-2-of-3"),
    pytest.param(AtLeastNGroupPolicy(2), {"m2", "m3"}, False, id="at-least-2-only-1"),
    pytest.param(CriticalGroupPolicy(["m1"]), {"m2", "m3"}, True, id="critical-others-fail"),
    pytest.param(CriticalGroupPolicy(["m1"]), {"m1"}, False, id="critical-fails"),
]


@pytest.mark.parametrize(("policy", "failing", "succeeds"), GROUP_CASES)
def test_parallel_group_policies(
    client: Client, policy: Any, failing: set[str], succeeds: bool
) -> None:
    names = ["m1", "m2", "m3"]

    def member(name: str) -> Any:
        @task(name)
        def run() -> str:
            if name in failing:
                raise RuntimeError(f"{name} broke")
            return name

        return run

    with workflow("group-policy") as wf:

        @task
        def before() -> str:
            return "go"

        @task(inject_context=True)
        def after(ctx: TaskExecutionContext) -> list[str]:
            ctx.get_channel().atomic_add("after_runs", 1)
            return [r for r in (ctx.get_result(n) for n in names) if r is not None]

        group = parallel(*[member(n) for n in names]).with_execution(policy=policy)
        before >> group >> after

    run = client.submit(wf)
    if succeeds:
        assert run.wait(timeout=RUN_TIMEOUT_S) == [n for n in names if n not in failing]
        assert run.channel().get("after_runs") == 1
        assert group.task_id in run.context().completed_tasks
        return
    with pytest.raises(ParallelGroupError) as raised:
        run.wait(timeout=RUN_TIMEOUT_S)
    assert raised.value.group_id == group.task_id
    assert set(raised.value.failed) == failing
    for name in failing:
        assert f"{name} broke" in str(raised.value)
    assert run.status() == "failed"
    assert run.channel().get("after_runs") is None


def test_workflow_execute_with_a_client_runs_on_the_cluster(
    client: Client, shared_cluster: LocalCluster
) -> None:
    with workflow("one-liner") as wf:

        @task
        def where() -> int:
            return os.getppid()  # the worker service whose executor runs it

        @task
        def double(where: int) -> list[int]:
            return [where, os.getppid()]

        where >> double

    result, ctx = wf.execute(client=client, ret_context=True, timeout=RUN_TIMEOUT_S)
    assert set(result) <= {w.pid for w in shared_cluster.workers}
    assert ctx.completed_tasks == ["where", "double"]
    assert ctx.get_result("where") == result[0]


def test_lambdas_and_closures_run_on_workers(client: Client) -> None:
    offset = 40
    with workflow("lambdas") as wf:
        start = task("start")(lambda: 2)
        add = task("add")(lambda start: start + offset)
        start >> add

    assert client.submit(wf).wait(timeout=RUN_TIMEOUT_S) == 42


def test_a_task_cancelling_the_workflow(client: Client) -> None:
    with workflow("self-cancel") as wf:

        @task(inject_context=True)
        def check(ctx: TaskExecutionContext) -> None:
            ctx.cancel_workflow("input is empty")

        @task(inject_context=True)
        def never(ctx: TaskExecutionContext) -> None:
            ctx.get_channel().set("never_ran", True)

        check >> never

    run = client.submit(wf)
    with pytest.raises(WorkflowCancelledError, match="input is empty") as raised:
        run.wait(timeout=RUN_TIMEOUT_S)
    assert run.status() == "cancelled"
    assert run.channel().get("never_ran") is None
    assert "check" not in run.context().completed_tasks
    assert raised.value.task_id == "check"


def test_max_steps_exceeded_is_an_explicit_outcome(client: Client) -> None:
    with workflow("too-many-steps") as wf:

        @task(inject_context=True, max_cycles=1000)
        def spin(ctx: TaskExecutionContext) -> None:
            ctx.next_iteration()

    run = client.submit(wf, max_steps=5)
    with pytest.raises(MaxStepsExceededError, match="max_steps=5"):
        run.wait(timeout=RUN_TIMEOUT_S)
    assert run.status() == "max_steps_exceeded"
    assert run.context().steps == 5


def test_finished_run_data_expires(
    client: Client, keyspace: Keyspace, wait_until: Callable[..., Any]
) -> None:
    with workflow("expiring") as wf:

        @task(inject_context=True)
        def write(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().set("note", "kept for a while")
            ctx.get_channel().append("items", 1)
            return 1

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == 1
    keys = keyspace.run(run.session_id)
    redis_ = client.redis
    wait_until(lambda: redis_.ttl(keys.meta) > 0, "the run's meta to get a TTL")
    run_keys = [k for k in redis_.scan_iter(match=f"{keyspace.prefix}:*{run.session_id}*")]
    assert {keys.channel("note").encode(), keys.channel("items").encode(),
            keys.channel("write.__result__").encode(), keys.meta.encode()} <= set(run_keys)
    without_ttl = [k for k in run_keys if redis_.ttl(k) < 0]
    assert without_ttl == [], "run data without a TTL after the run ended"
    assert redis_.ttl(keyspace.blob(run.info()["graph_hash"])) > 0
    code = client.broker.runs.node_shapes(run.session_id, ["write"])["write"].code
    assert code and redis_.ttl(keyspace.code(code)) > 0  # the graph's code blob too


def test_a_fast_task_is_reported_while_a_slow_one_of_its_batch_runs(client: Client) -> None:
    """16 ready tasks on 2 workers travel as jobs of 2: each job is [fast, slow]. The
    fast task's completion must reach the coordinator long before the slow one ends."""
    n = 16

    def member(i: int) -> Any:
        @task(f"m_{i:02d}")
        def run() -> int:
            if i % 2:
                time.sleep(1.0)
            return i

        return run

    with workflow("fast-then-slow") as wf:
        parallel(*[member(i) for i in range(n)])

    run = client.submit(wf)
    deadline = time.monotonic() + 0.8  # well before any slow task can end
    while time.monotonic() < deadline and run.progress().done < 2:
        time.sleep(0.02)
    assert run.progress().done >= 2, "fast tasks' reports waited for slow batch-mates"
    run.wait(timeout=RUN_TIMEOUT_S)
    assert [run.get_result(f"m_{i:02d}") for i in range(n)] == list(range(n))


def test_jobs_of_an_earlier_submission_of_a_session_are_skipped(
    client: Client, keyspace: Keyspace, wait_until: Callable[..., Any]
) -> None:
    """A job still queued from an earlier incarnation of a session (cancelled, then the
    session resumed) must not run against the new incarnation's channel."""
    with workflow("incarnations") as wf:

        @task(inject_context=True)
        def mark(ctx: TaskExecutionContext) -> str:
            ctx.get_channel().append("ran", "mark")
            return "ok"

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == "ok"
    # Forge a job from the old incarnation and put it back on the queue.
    info = run.info()
    old = run.record()
    old.incarnation = "an-earlier-one"
    pipe = client.redis.pipeline()
    for cmd in job_commands(keyspace, old, [TaskSpec("mark", "old.1")], 1, 1):
        pipe.execute_command(*cmd)
    client.redis.hset(keyspace.run(run.session_id).meta, "status", "running")  # as if resubmitted
    pipe.execute()
    job_key = keyspace.rq_job(f"gf.{run.session_id}.old.1")
    wait_until(lambda: not client.redis.exists(job_key), "a worker to finish the forged job")
    assert run.channel().get("ran") == ["mark"], "a superseded job ran"
    assert info["incarnation"]
