"""Running workflows in process: results, arguments, errors, retries, limits."""

from __future__ import annotations

import time

import pytest

from graflow_dist import (
    ExecutionContext,
    RetryPolicy,
    TaskExecutionContext,
    WorkflowEngine,
    task,
    workflow,
)
from graflow_dist.errors import (
    MaxStepsExceededError,
    RetryLimitExceededError,
    TaskExecutionError,
    UnknownTaskError,
    WorkflowError,
)
from graflow_dist.exceptions import GraflowRuntimeError
from graflow_dist.scheduler import RunStatus

# --- results -------------------------------------------------------------------------


def test_execute_returns_the_last_result() -> None:
    with workflow("w") as wf:

        @task
        def one() -> int:
            return 1

        @task
        def two() -> int:
            return 2

        one >> two

    assert wf.execute() == 2


def test_ret_context_gives_the_context_with_results() -> None:
    with workflow("w") as wf:

        @task
        def one() -> dict[str, int]:
            return {"n": 1}

        @task
        def two() -> str:
            return "two"

        one >> two

    result, ctx = wf.execute(ret_context=True)
    assert result == "two"
    assert isinstance(ctx, ExecutionContext)
    assert ctx.completed_tasks == ["one", "two"]
    assert ctx.steps == 2
    assert ctx.status is RunStatus.COMPLETED
    assert ctx.get_result("one") == {"n": 1}
    assert ctx.channel.get("one.__result__") == {"n": 1}
    assert ctx.get_result("missing", "dflt") == "dflt"
    assert len(ctx.session_id) == 32


def test_task_context_reads_other_results() -> None:
    with workflow("w") as wf:

        @task
        def producer() -> list[int]:
            return [1, 2]

        @task(inject_context=True)
        def consumer(ctx: TaskExecutionContext) -> tuple[str, list[int]]:
            return ctx.task_id, ctx.get_result("producer")

        producer >> consumer

    assert wf.execute() == ("consumer", [1, 2])


def test_engine_executes_a_context_directly() -> None:
    with workflow("w") as wf:

        @task
        def only() -> str:
            return "done"

    ctx = wf.create_context()
    assert WorkflowEngine().execute(ctx) == "done"
    assert ctx.completed_tasks == ["only"]


def test_every_root_starts_without_a_start_node() -> None:
    with workflow("w") as wf:

        @task
        def left() -> str:
            return "l"

        @task
        def right() -> str:
            return "r"

    _, ctx = wf.execute(ret_context=True)
    assert sorted(ctx.completed_tasks) == ["left", "right"]


def test_start_node_limits_the_run_to_its_descendants() -> None:
    with workflow("w") as wf:

        @task
        def a() -> str:
            return "a"

        @task
        def b() -> str:
            return "b"

        @task
        def c() -> str:
            return "c"

        a >> b >> c

    result, ctx = wf.execute(start_node="b", ret_context=True)
    assert result == "c" and ctx.completed_tasks == ["b", "c"]


# --- keyword arguments from the channel ------------------------------------------------


def test_keyword_parameters_receive_results() -> None:
    with workflow("w") as wf:

        @task
        def train() -> float:
            return 0.9

        @task
        def report(train: float) -> str:
            return f"accuracy {train}"

        train >> report

    assert wf.execute() == "accuracy 0.9"


def test_result_key_wins_over_plain_key_then_defaults_apply() -> None:
    with workflow("w") as wf:

        @task
        def source() -> str:
            return "from result"

        @task
        def sink(source: str, setting: str, absent: str = "default") -> tuple[str, str, str]:
            return source, setting, absent

        source >> sink

    initial = {"source": "plain key", "setting": "plain value"}
    assert wf.execute(initial_channel=initial) == ("from result", "plain value", "default")


def test_bound_keywords_override_the_channel() -> None:
    with workflow("w") as wf:

        @task
        def scale(x: int, factor: int = 1) -> int:
            return x * factor

        first = scale(task_id="first", x=2, factor=10)
        second = scale(task_id="second", x=3)
        first >> second

    result, ctx = wf.execute(start_node="first", ret_context=True, initial_channel={"x": 99})
    assert ctx.get_result("first") == 20
    assert result == 3


def test_missing_argument_fails_the_task_clearly() -> None:
    with workflow("w") as wf:

        @task
        def needs(value: int) -> int:
            return value

    with pytest.raises(TaskExecutionError, match="'needs'.*value"):
        wf.execute()


# --- failures ---------------------------------------------------------------------------


def test_task_error_names_the_task_and_chains_the_original() -> None:
    original = ValueError("bad input")
    with workflow("w") as wf:

        @task
        def explode() -> None:
            raise original

    with pytest.raises(TaskExecutionError) as info:
        wf.execute()
    error = info.value
    assert error.task_id == "explode"
    assert "'explode'" in str(error) and "ValueError: bad input" in str(error)
    assert error.__cause__ is original
    assert isinstance(error, GraflowRuntimeError) and isinstance(error, WorkflowError)


def test_failure_stops_the_run_before_successors() -> None:
    with workflow("w") as wf:

        @task
        def explode() -> None:
            raise KeyError("k")

        @task
        def never() -> None:
            raise AssertionError("must not run")

        explode >> never

    ctx = wf.create_context()
    with pytest.raises(TaskExecutionError):
        WorkflowEngine().execute(ctx)
    assert ctx.status is RunStatus.FAILED
    assert ctx.completed_tasks == []


def test_retries_until_success() -> None:
    with workflow("w") as wf:

        @task(inject_context=True, max_retries=2)
        def flaky(ctx: TaskExecutionContext) -> int:
            if ctx.attempt < 3:
                raise RuntimeError(f"attempt {ctx.attempt}")
            return ctx.retry_count

    result, ctx = wf.execute(ret_context=True)
    assert result == 2
    assert ctx.steps == 3  # every attempt counts


def test_retry_limit_exceeded() -> None:
    attempts: list[int] = []
    with workflow("w") as wf:

        @task(inject_context=True, max_retries=2)
        def hopeless(ctx: TaskExecutionContext) -> None:
            attempts.append(ctx.attempt)
            raise ConnectionError("down")

    with pytest.raises(RetryLimitExceededError) as info:
        wf.execute()
    assert attempts == [1, 2, 3]
    assert info.value.task_id == "hopeless" and info.value.attempts == 3
    assert "'hopeless'" in str(info.value) and "after 3 attempts" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_retry_backoff_does_not_block_independent_tasks() -> None:
    events: list[tuple[str, float]] = []
    with workflow("w") as wf:

        @task(inject_context=True, retry_policy=RetryPolicy(max_retries=1, initial_interval=0.3))
        def flaky(ctx: TaskExecutionContext) -> str:
            events.append(("flaky", time.time()))
            if ctx.attempt == 1:
                raise RuntimeError("transient")
            return "recovered"

        @task
        def independent() -> None:
            events.append(("independent", time.time()))

    _, ctx = wf.execute(ret_context=True)
    assert [name for name, _ in events] == ["flaky", "independent", "flaky"]
    first, other, retry = (t for _, t in events)
    assert other - first < 0.2  # ran while flaky waited for its backoff
    assert retry - first >= 0.29  # the backoff was honoured
    assert ctx.get_result("flaky") == "recovered"


# --- limits and start nodes --------------------------------------------------------------


def test_max_steps_exceeded_is_an_error() -> None:
    with workflow("w") as wf:

        @task
        def s1() -> int:
            return 1

        @task
        def s2() -> int:
            return 2

        @task
        def s3() -> int:
            return 3

        s1 >> s2 >> s3

    with pytest.raises(MaxStepsExceededError) as info:
        wf.execute(max_steps=2)
    assert info.value.max_steps == 2 and info.value.pending == ["s3"]
    assert wf.execute(max_steps=3) == 3


def test_unknown_start_node_is_an_error() -> None:
    with workflow("w") as wf:

        @task
        def real() -> None: ...

    with pytest.raises(UnknownTaskError, match="'nope'"):
        wf.execute(start_node="nope")
