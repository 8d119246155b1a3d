"""Graflow parity features on a real cluster: task handlers, graphs built by hand,
groups and chains created by next_task (with their joins), coordination backends."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
from clusters import checkpoint_dir_of, coordinator_options

from graflow_dist import (
    CheckpointManager,
    Client,
    ExecutionContext,
    TaskExecutionContext,
    WorkflowEngine,
    chain,
    parallel,
    task,
    workflow,
)
from graflow_dist.coordination import CoordinationBackend
from graflow_dist.core.graph import TaskGraph
from graflow_dist.core.handler import TaskHandler, register_handler
from graflow_dist.core.task import Task
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import TaskHandlerError

RUN_TIMEOUT_S = 60


class Audit(TaskHandler):
    def __init__(self, label: str) -> None:
        self.label = label

    def execute_task(self, task: Any, context: ExecutionContext) -> Any:
        context.channel.append("audit", f"{self.label}:{task.task_id}")
        return f"{self.label}({task.run()})"


def test_handlers_run_on_workers_as_objects_and_registered_names(client: Client) -> None:
    register_handler("parity-cluster-audit", Audit("named"))
    with workflow("handlers") as wf:

        @task
        def source() -> int:
            return 4

        @task(handler=Audit("object"))
        def double(source: int) -> int:
            return source * 2

        @task(handler="parity-cluster-audit", inject_context=True)
        def label(ctx: TaskExecutionContext, double: str) -> str:
            return f"{double}@{ctx.worker_id != ''}"

        source >> double >> label

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == "named(object(8)@True)"
    assert run.channel().get("audit") == ["object:double", "named:label"]


def test_an_unknown_handler_fails_the_run_with_the_fix(client: Client) -> None:
    with workflow("unknown-handler") as wf:

        @task(handler="never-registered", max_retries=2)
        def job() -> None:
            return None

    run = client.submit(wf)
    with pytest.raises(TaskHandlerError) as raised:
        run.wait(timeout=RUN_TIMEOUT_S)
    assert "handler 'never-registered' is not registered in this process" in str(raised.value)


@task
def load() -> list[int]:
    return [3, 1, 2]


@task
def ordered(load: list[int]) -> list[int]:
    return sorted(load)


@task
def total(load: list[int]) -> int:
    return sum(load)


@task(inject_context=True)
def report(ctx: TaskExecutionContext, ordered: list[int], total: int) -> str:
    ctx.get_channel().append("reports", ctx.task_id)
    return f"{ordered} / {total}"


def test_a_graph_built_by_hand_runs_on_the_cluster(client: Client) -> None:
    graph = TaskGraph()
    graph.add_node(Task("start", register_to_context=False), "start")
    for node in (load, ordered, total, report):
        graph.add_node(node, node.task_id)
    for source, target in [("start", "load"), ("load", "ordered"), ("load", "total"),
                           ("ordered", "report"), ("total", "report")]:
        graph.add_edge(source, target)
    ctx = ExecutionContext.create(graph, "start")
    assert client.execute(ctx, timeout=RUN_TIMEOUT_S) == "[1, 2, 3] / 6"
    assert ctx.channel.get("reports") == ["report"]
    done = ctx.completed_tasks
    assert (done[:2], set(done[2:4]), done[4:]) == (["start", "load"], {"ordered", "total"},
                                                    ["report"])


@task(inject_context=True)
def square(ctx: TaskExecutionContext, x: int) -> int:
    ctx.get_channel().append("ran", ctx.task_id)
    return x * x


@task(inject_context=True)
def summarize(ctx: TaskExecutionContext, names: list[str]) -> int:
    ctx.get_channel().append("ran", ctx.task_id)
    return sum(ctx.get_result(n) for n in names)


def test_a_group_and_its_join_built_on_a_worker(client: Client) -> None:
    with workflow("dynamic-group") as wf:

        @task(inject_context=True)
        def plan(ctx: TaskExecutionContext) -> str:
            members = [square(task_id=f"sq{i}", x=i) for i in range(1, 5)]
            group = parallel(*members).with_execution(backend="threading")
            ctx.next_task(group >> summarize(task_id="total",
                                             names=[m.task_id for m in members]))
            return "planned"

        @task(inject_context=True)
        def after(ctx: TaskExecutionContext, plan: str) -> str:
            ctx.get_channel().append("ran", "after")
            return f"after {plan}"

        plan >> after

    for _ in range(2):  # a second run of the cached graph builds its own group
        run = client.submit(wf)
        run.wait(timeout=RUN_TIMEOUT_S)
        ran = run.channel().get("ran")
        assert sorted(ran) == ["after", "sq1", "sq2", "sq3", "sq4", "total"]
        assert ran.index("total") > max(ran.index(f"sq{i}") for i in range(1, 5))
        assert run.get_result("total") == 30
        assert run.get_result("after") == "after planned"
        assert "plan_ParallelGroup_1" in run.context().completed_tasks


def test_execute_brings_the_tasks_built_on_workers_into_the_context(client: Client) -> None:
    """As in process: after ``execute`` the context's graph holds the tasks the run
    added (its frontier names them), and the workflow's own graph is left as defined."""
    with workflow("dynamic-in-context") as wf:

        @task(inject_context=True)
        def plan(ctx: TaskExecutionContext) -> str:
            ctx.next_task(parallel(square(task_id="sq2", x=2), square(task_id="sq3", x=3))
                          >> summarize(task_id="sum", names=["sq2", "sq3"]), goto=True)
            return "planned"

        @task
        def skipped() -> str:
            return "not reached: plan jumps to the group"

        plan >> skipped

    contexts = {"in process": ExecutionContext(wf.graph), "cluster": ExecutionContext(wf.graph)}
    assert WorkflowEngine().execute(contexts["in process"]) == 13
    assert client.execute(contexts["cluster"], timeout=RUN_TIMEOUT_S) == 13
    added = {"sq2", "sq3", "sum", "plan_ParallelGroup_1"}
    for where, ctx in contexts.items():
        assert added <= set(ctx.graph.nodes), where
        assert set(ctx.completed_tasks) <= set(ctx.graph.nodes), where
        assert ctx.graph.successors("plan_ParallelGroup_1") == ["sum"], where
    assert not added & set(wf.graph.nodes)


def test_execute_leaves_the_last_result_in_the_context_as_in_process(client: Client) -> None:
    """``context.last_result`` after ``execute``, and a finished context executed again
    (nothing left to run: its last result again, no task runs twice)."""
    with workflow("last-result") as wf:

        @task(inject_context=True)
        def first(ctx: TaskExecutionContext) -> int:
            ctx.get_channel().atomic_add("first_runs", 1)
            return 20

        @task
        def second(first: int) -> int:
            return first + 1

        first >> second

    contexts = {"in process": ExecutionContext(wf.graph), "cluster": ExecutionContext(wf.graph)}
    run: dict[str, Any] = {"in process": WorkflowEngine().execute,
                           "cluster": lambda c: client.execute(c, timeout=RUN_TIMEOUT_S)}
    for where, ctx in contexts.items():
        assert run[where](ctx) == 21, where
        assert ctx.last_result == 21, where
        assert run[where](ctx) == 21, where
        assert ctx.channel.get("first_runs") == 1, where
        assert ctx.completed_tasks == ["first", "second"], where


def test_execute_succeeds_when_the_tasks_built_on_workers_do_not_load_here(
    tmp_path: Path,
) -> None:
    """A task built on a worker from a module only workers have: the run's outcome
    comes back all the same; only the context's graph lacks that task (logged)."""
    only_there = tmp_path / "worker-path"
    only_there.mkdir()
    (only_there / "gd_worker_only_helper.py").write_text(
        "WORDS = \"from the worker's own module\"\n")
    (only_there / "gd_worker_only_tasks.py").write_text(textwrap.dedent("""
        import gd_worker_only_helper
        from graflow_dist import task

        @task("made_there")
        def made_there() -> str:
            return gd_worker_only_helper.WORDS
    """))
    path = os.pathsep.join(p for p in [str(only_there), os.environ.get("PYTHONPATH")] if p)
    with workflow("worker-only-dynamic") as wf:

        @task(inject_context=True)
        def plan(ctx: TaskExecutionContext) -> str:
            import gd_worker_only_tasks  # noqa: PLC0415 - importable on workers only

            ctx.next_task(gd_worker_only_tasks.made_there, goto=True)
            return "planned"

    with LocalCluster(1, data_dir=tmp_path / "cluster", env={"PYTHONPATH": path},
                      coordinator_options=coordinator_options(tmp_path)) as cluster, \
            Client(cluster.url) as client:
        ctx = ExecutionContext(wf.graph)
        with structlog.testing.capture_logs() as logs:
            assert client.execute(ctx, timeout=RUN_TIMEOUT_S) == \
                "from the worker's own module"
    assert ctx.completed_tasks == ["plan", "made_there"]
    assert "made_there" not in ctx.graph.nodes
    warning = next(e for e in logs if "do not load here" in e["event"])
    assert "No module named 'gd_worker_only" in warning["error"]


def test_a_chain_built_on_a_worker_runs_in_order(client: Client) -> None:
    with workflow("dynamic-chain") as wf:

        @task(inject_context=True)
        def plan(ctx: TaskExecutionContext) -> None:
            ctx.next_task(chain(square(task_id="first", x=2), square(task_id="second", x=3),
                                summarize(task_id="last", names=["first", "second"])),
                          goto=True)

        @task
        def skipped() -> str:
            return "not reached: goto"

        plan >> skipped

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == 13
    assert run.channel().get("ran") == ["first", "second", "last"]
    assert run.get_result("skipped") is None


def test_a_cluster_checkpoint_inside_a_dynamic_group_keeps_the_join(
    client: Client, shared_cluster: LocalCluster, tmp_path: Path
) -> None:
    """The checkpoint holds the group's other member as pending; resumed in process
    and on the cluster, that member runs and then the join, once."""
    base = checkpoint_dir_of(shared_cluster) / tmp_path.name / "dyn-group"
    committed = Path(f"{base}.meta.json")

    @task(inject_context=True)
    def checkpointing(ctx: TaskExecutionContext) -> int:
        ctx.get_channel().append("ran", ctx.task_id)
        ctx.checkpoint(path=str(base))
        return 100

    @task(inject_context=True)
    def slow(ctx: TaskExecutionContext) -> int:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not committed.exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # still running while the checkpoint is written
        ctx.get_channel().append("ran", ctx.task_id)
        return 9

    with workflow("dynamic-group-checkpoint") as wf:

        @task(inject_context=True)
        def plan(ctx: TaskExecutionContext) -> None:
            group = parallel(checkpointing, slow)
            ctx.next_task(group >> summarize(task_id="total", names=["checkpointing", "slow"]))

    run = client.submit(wf)
    assert run.wait(timeout=RUN_TIMEOUT_S) == 109
    ctx, _meta = CheckpointManager.resume_from_checkpoint(f"{base}.pkl")
    assert ctx.graph.get_parallel_group_members("plan_ParallelGroup_1") == \
        ["checkpointing", "slow"]
    assert ctx.graph.successors("plan_ParallelGroup_1") == ["total"]
    assert [s.task_id for s in ctx.pending_tasks] == ["slow"]
    assert ctx.channel.get("ran") == ["checkpointing"]
    assert WorkflowEngine().execute(ctx) == 109
    assert ctx.channel.get("ran") == ["checkpointing", "slow", "total"]
    again = client.resume(f"{base}.pkl")
    assert again.wait(timeout=RUN_TIMEOUT_S) == 109
    assert again.channel().get("ran") == ["checkpointing", "slow", "total"]


@pytest.mark.parametrize("backend", [CoordinationBackend.THREADING, "redis", "direct"])
def test_every_backend_runs_groups_on_the_cluster(client: Client, backend: Any) -> None:
    with workflow(f"backend-{backend}") as wf:

        @task
        def a() -> int:
            return 1

        @task
        def b() -> int:
            return 2

        @task(inject_context=True)
        def join(ctx: TaskExecutionContext) -> int:
            return ctx.get_result("a") + ctx.get_result("b")

        (a | b).with_execution(backend=backend, backend_config={"thread_count": 2}) >> join

    assert client.submit(wf).wait(timeout=RUN_TIMEOUT_S) == 3
