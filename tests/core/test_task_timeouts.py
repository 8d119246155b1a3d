"""Task timeouts in process: ``@task(timeout=...)`` interrupts the task's thread at its
deadline; a C call holding the GIL is caught when it returns (a thread cannot be
killed); retries follow the task's policy; the run fails with TaskTimeoutError."""

from __future__ import annotations

import math
import signal
import threading
import time
from typing import Any

import pytest

from graflow_dist import RetryPolicy, TaskExecutionContext, task, workflow
from graflow_dist.core.time_limit import (
    INTERRUPT_SIGNAL,
    TimeLimitExceeded,
    call_with_time_limit,
)
from graflow_dist.errors import TaskExecutionError, TaskTimeoutError, WireError
from graflow_dist.scheduler import RunStatus
from graflow_dist.wire.specs import node_shape_from_dict

# Wall-clock bounds below are loose on purpose (a shared 2-core machine): they tell an
# interrupted task (well under a second) from one left to run (tens of seconds).
INTERRUPT_BOUND_S = 5.0


def _gil_holding_call(seconds: float) -> int:
    """A single C call that holds the GIL for about ``seconds``: sum over a range."""
    started = time.perf_counter()
    sum(range(1_000_000))
    per_item = (time.perf_counter() - started) / 1_000_000
    return sum(range(int(seconds / per_item)))


def test_a_while_true_task_is_interrupted_and_fails_with_task_timeout_error() -> None:
    with workflow("spin") as wf:

        @task(timeout=0.3)
        def spin() -> None:
            while True:
                pass

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError) as caught:
        wf.execute()
    assert time.monotonic() - started < INTERRUPT_BOUND_S
    error = caught.value
    assert isinstance(error, TaskExecutionError)  # what callers already catch
    assert error.task_id == "spin" and error.timeout_s == 0.3 and error.attempts == 1
    assert "'spin'" in str(error) and "timed out after 0.3 s" in str(error)


def test_sleep_and_except_exception_do_not_escape_the_interrupt() -> None:
    caught: list[str] = []
    with workflow("sleepy") as wf:

        @task(timeout=0.2)
        def sleepy() -> None:
            try:
                time.sleep(60)
            except Exception as exc:  # the interrupt is not an Exception
                caught.append(type(exc).__name__)

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        wf.execute()
    assert time.monotonic() - started < INTERRUPT_BOUND_S
    assert caught == []


def test_in_another_thread_python_code_is_interrupted_too() -> None:
    """Off the main thread no signal can help: the interrupt is raised in the task's
    thread by a timer thread (Python code stops; a blocking call would first return)."""
    outcome: list[BaseException] = []
    with workflow("threaded") as wf:

        @task(timeout=0.3)
        def spin() -> None:
            while True:
                pass

    def run() -> None:
        try:
            wf.execute()
        except BaseException as exc:  # noqa: BLE001 - the test reads what it was
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=INTERRUPT_BOUND_S)
    assert not thread.is_alive()
    assert [type(e) for e in outcome] == [TaskTimeoutError]


@pytest.mark.skipif(INTERRUPT_SIGNAL is None, reason="no real-time signals here")
def test_a_program_s_own_handler_of_the_interrupt_signal_is_left_alone() -> None:
    assert INTERRUPT_SIGNAL is not None
    fired: list[int] = []
    previous = signal.signal(INTERRUPT_SIGNAL, lambda *_: fired.append(1))
    try:
        with workflow("own-handler") as wf:

            @task(timeout=0.2)
            def spin() -> None:
                while True:
                    pass

        with pytest.raises(TaskTimeoutError):
            wf.execute()
        assert fired == []
        assert signal.getsignal(INTERRUPT_SIGNAL) is not signal.SIG_DFL
    finally:
        signal.signal(INTERRUPT_SIGNAL, previous)


def test_timed_out_attempts_are_retried_per_the_policy() -> None:
    attempts: list[int] = []
    with workflow("retried") as wf:

        @task(inject_context=True, timeout=0.2, max_retries=2)
        def flaky(ctx: TaskExecutionContext) -> str:
            attempts.append(ctx.spec.attempt)
            if ctx.spec.attempt < 3:
                while True:
                    time.sleep(0.01)
            return "third time"

        @task
        def after(flaky: str) -> str:
            return f"after {flaky}"

        flaky >> after

    result, ctx = wf.execute(ret_context=True)
    assert result == "after third time"
    assert attempts == [1, 2, 3]
    assert ctx.status is RunStatus.COMPLETED


def test_retries_spent_the_run_fails_with_the_attempt_count() -> None:
    attempts: list[int] = []
    with workflow("hopeless") as wf:

        @task(inject_context=True, timeout=0.1,
              retry_policy=RetryPolicy(max_retries=1, initial_interval=0.0))
        def hopeless(ctx: TaskExecutionContext) -> None:
            attempts.append(ctx.spec.attempt)
            time.sleep(60)

    with pytest.raises(TaskTimeoutError) as caught:
        wf.execute()
    assert attempts == [1, 2]
    assert caught.value.attempts == 2 and "after 2 attempts" in str(caught.value)


def test_a_gil_holding_c_call_fails_when_it_returns() -> None:
    """The honest limit of in-process timeouts: the interrupt cannot reach into a C
    call that holds the GIL, so the task runs to the end of that call, then fails
    (even if it returned before the interrupt landed)."""
    with workflow("c-call") as wf:

        @task(timeout=0.05)
        def crunch() -> int:
            return _gil_holding_call(0.6)

    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        wf.execute()
    assert time.monotonic() - started >= 0.3  # the call was not cut short


def test_a_timed_out_member_leaves_the_other_tasks_alone() -> None:
    with workflow("mixed") as wf:

        @task
        def quick() -> int:
            return 1

        @task(timeout=0.1)
        def stuck(quick: int) -> None:
            time.sleep(60)

        @task(timeout=30)
        def fine(quick: int) -> int:
            return quick + 1

        @task
        def report(fine: int) -> str:
            return f"fine={fine}"

        quick >> (stuck | fine).with_execution(policy="best_effort") >> report

    result, ctx = wf.execute(ret_context=True)
    assert result == "fine=2"
    assert ctx.get_result("fine") == 2
    assert "stuck" not in ctx.completed_tasks


# --- the setting itself -------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, "5", True])
def test_bad_timeouts_are_refused_naming_the_task(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"task 'bad_one': timeout must be a number"):

        @task("bad_one", timeout=bad)
        def bad_one() -> None: ...


def test_bound_instances_keep_the_timeout_and_it_reaches_the_shape() -> None:
    with workflow("shapes") as wf:

        @task(timeout=2.5)
        def template(x: int) -> int:
            return x

        bound = template(task_id="bound", x=1)

        @task
        def free() -> None: ...

    assert bound.timeout == 2.5
    shape = wf.graph.shape()
    assert shape.node("template").timeout == 2.5
    assert shape.node("bound").timeout == 2.5
    assert shape.node("free").timeout is None
    # Through the strict decoder (what Redis and checkpoints hold) and back.
    assert node_shape_from_dict(shape.node("bound").to_dict(), "shape").timeout == 2.5
    assert node_shape_from_dict(shape.node("free").to_dict(), "shape").timeout is None


@pytest.mark.parametrize("bad", [0, -3, "soon", [1]])
def test_the_shape_decoder_refuses_bad_timeouts(bad: Any) -> None:
    body = {"node_id": "n", "timeout": bad}
    with pytest.raises(WireError, match="timeout"):
        node_shape_from_dict(body, "shape of n")


# --- call_with_time_limit ---------------------------------------------------------------


def test_a_time_limit_that_is_not_reached_changes_nothing() -> None:
    assert call_with_time_limit(5, lambda: sum(range(1000))) == (499500, False)


@pytest.mark.parametrize("thread", ["main", "other"])
def test_no_interrupt_leaks_out_of_calls_ending_around_their_deadline(thread: str) -> None:
    """Calls ending right around their deadline (or before their timer even started):
    the interrupt is delivered inside and absorbed, or cancelled, never raised later
    in the caller (a signal in the main thread, an async exception in others)."""

    def busy(seconds: float) -> str:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
        return "done"

    outcomes: set[tuple[str | None, bool]] = set()
    leaked: list[BaseException] = []

    def calls() -> None:
        try:
            for i in range(300):
                # Every 60th call runs far past its deadline, so that some are surely
                # interrupted even when the timer thread waits for the GIL (a switch
                # interval is 5 ms) on a loaded machine; the others end around theirs.
                work = 0.2 if i % 60 == 0 else (i % 7) * 0.0004
                result, expired = call_with_time_limit(0.0005 + (i % 5) * 0.0005,
                                                       lambda work=work: busy(work))
                outcomes.add((result, expired))
                for _ in range(200):  # where a leaked interrupt would land
                    pass
        except TimeLimitExceeded as exc:
            leaked.append(exc)

    if thread == "main":
        calls()
    else:
        worker = threading.Thread(target=calls)
        worker.start()
        worker.join()
    assert leaked == []
    assert (None, True) in outcomes and ("done", False) in outcomes


def test_exceptions_of_the_call_propagate() -> None:
    def broken() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        call_with_time_limit(5, broken)


def test_the_interrupt_is_a_base_exception() -> None:
    assert not issubclass(TimeLimitExceeded, Exception)
