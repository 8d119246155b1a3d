"""ParallelGroup.with_execution(backend=...): direct and threading in process, redis
refused in process with a clear error; policies hold for every backend."""

from __future__ import annotations

import os
import threading

import pytest

from graflow_dist import AtLeastNGroupPolicy, TaskExecutionContext, task, workflow
from graflow_dist.coordination import CoordinationBackend, ThreadingCoordinator
from graflow_dist.coordination.coordinator import resolve_backend
from graflow_dist.errors import CoordinationError, ParallelGroupError

BARRIER_WAIT_S = 10


def fan_out(backend: str | CoordinationBackend | None, n: int = 3, **config: int):
    """``start >> (m0 | m1 | m2) >> join``; with the threading backend every member
    waits on one barrier, which only opens when all of them run at the same time."""
    barrier = threading.Barrier(n, timeout=BARRIER_WAIT_S)
    threaded = resolve_backend(backend) is CoordinationBackend.THREADING
    with workflow("fan") as wf:

        @task
        def start() -> int:
            return 10

        def member(i: int):
            @task(f"m{i}", inject_context=True)
            def run(ctx: TaskExecutionContext, start: int) -> int:
                if threaded:
                    barrier.wait()
                ctx.get_channel().append("threads", threading.current_thread().name)
                return start + i

            return run

        @task(inject_context=True)
        def join(ctx: TaskExecutionContext) -> list[int]:
            return [ctx.get_result(f"m{i}") for i in range(n)]

        group = (member(0) | member(1) | member(2)) if n == 3 else None
        assert group is not None
        start >> group.with_execution(backend=backend, backend_config=config or None) >> join
    return wf


@pytest.mark.parametrize("backend", ["threading", CoordinationBackend.THREADING, "THREADING"])
def test_threading_runs_members_at_the_same_time(backend: str | CoordinationBackend) -> None:
    # Three threads for three members (the default is one per CPU, as in Graflow).
    result, ctx = fan_out(backend, thread_count=3).execute(ret_context=True)
    assert result == [10, 11, 12]
    threads = ctx.channel.get("threads")
    assert all(name.startswith("ThreadingCoordinator") for name in threads)
    assert ctx.completed_tasks[0] == "start" and ctx.completed_tasks[-2:] == \
        ["ParallelGroup_1", "join"]


@pytest.mark.parametrize("backend", [None, "direct", CoordinationBackend.DIRECT])
def test_direct_runs_members_one_after_another_in_this_thread(backend: object) -> None:
    result, ctx = fan_out(backend).execute(ret_context=True)  # type: ignore[arg-type]
    assert result == [10, 11, 12]
    assert set(ctx.channel.get("threads")) == {threading.current_thread().name}
    assert ctx.completed_tasks == ["start", "m0", "m1", "m2", "ParallelGroup_1", "join"]


@pytest.mark.parametrize("backend", ["direct", "threading"])
def test_policies_are_the_same_with_every_backend(backend: str) -> None:
    with workflow("policy") as wf:

        @task
        def ok_a() -> str:
            return "a"

        @task
        def ok_b() -> str:
            return "b"

        @task
        def bad() -> str:
            raise ValueError("no")

        @task
        def after() -> str:
            return "after"

        strict_wf = wf
        (ok_a | ok_b | bad).with_execution(
            backend=backend, policy=AtLeastNGroupPolicy(2)) >> after
    assert strict_wf.execute() == "after"

    with workflow("strict") as wf2:

        @task
        def fine() -> str:
            return "x"

        @task
        def broken() -> str:
            raise ValueError("broken member")

        (fine | broken).with_execution(backend=backend)
    with pytest.raises(ParallelGroupError, match="failed its strict policy: broken: ValueError"):
        wf2.execute()


def test_thread_count_bounds_the_threads() -> None:
    assert ThreadingCoordinator().thread_count == (os.cpu_count() or 1)
    coordinator = ThreadingCoordinator(2)
    running, peak, lock = [0], [0], threading.Lock()
    gate = threading.Event()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(0.05)
        with lock:
            running[0] -= 1
        return i * i

    assert coordinator.run_members(list(range(6)), work) == [0, 1, 4, 9, 16, 25]
    assert peak[0] == 2


def test_redis_backend_without_a_cluster_is_a_clear_error() -> None:
    with workflow("redis-group") as wf:

        @task
        def a() -> int:
            return 1

        @task
        def b() -> int:
            return 2

        (a | b).with_execution(backend=CoordinationBackend.REDIS,
                               backend_config={"key_prefix": "p"})
    group = wf.graph.get_node("ParallelGroup_1")
    assert group.backend_config == {"key_prefix": "p"}
    with pytest.raises(CoordinationError) as raised:
        wf.execute()
    assert "backend='redis' needs the cluster" in str(raised.value)
    assert "redis_client" in str(raised.value) and "redis_url" in str(raised.value)


def test_bad_backends_and_configs_are_refused() -> None:
    with pytest.raises(CoordinationError, match="unknown coordination backend 'celery'"):
        resolve_backend("celery")
    with workflow("bad") as wf:

        @task
        def a() -> None:
            return None

        @task
        def b() -> None:
            return None

        group = a | b
        with pytest.raises(CoordinationError, match="thread_count must be a positive integer"):
            group.with_execution(backend="threading", backend_config={"thread_count": 0})
        group.with_execution(backend="threading", backend_config={"thread_count": 2})
        group.with_execution(policy="best_effort")  # keeps the backend and its config
    assert (group.backend, group.backend_config) == (CoordinationBackend.THREADING,
                                                     {"thread_count": 2})
    assert wf.execute() is None
