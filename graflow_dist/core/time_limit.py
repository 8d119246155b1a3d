"""Task timeouts in process: interrupt the thread running a task at its deadline.

A thread cannot be killed, so the in-process engine does what it can: at the deadline a
timer thread raises `TimeLimitExceeded` inside the thread running the task.

- In the main thread on Linux it sends that thread a signal (a real-time signal the
  program does not use) whose handler raises: Python code stops, and so do blocking
  calls such as ``time.sleep`` or a socket read (the signal interrupts them).
- In any other thread (or without such a signal) it uses CPython's
  ``PyThreadState_SetAsyncExc``, as Dramatiq's time limits do: Python code stops, but a
  blocking call only when it returns.

Neither can stop a C call that holds the GIL (a huge regex backtrack,
``sum(range(10**12))``): the interrupt lands when that call returns, and the task fails
with `TaskTimeoutError` then, however long it took. Workers have no such gaps: they kill
and replace the process running the task (see `graflow_dist.worker.supervisor`).
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

# A real-time signal (Linux), rarely used by programs; never used if it has a handler.
INTERRUPT_SIGNAL: int | None = (signal.SIGRTMIN + 2 if hasattr(signal, "SIGRTMIN")
                                and hasattr(signal, "pthread_kill") else None)


T = TypeVar("T")


class TimeLimitExceeded(BaseException):  # noqa: N818 - an interrupt, not an error
    """Raised inside a task's thread at its deadline. A BaseException, so the task's own
    ``except Exception`` does not swallow it."""


# One C function, two prototypes: raise an exception class, or clear (a NULL pointer).
_raise_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))
_clear_in = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi))


def _signal_is_free() -> bool:
    """Whether this thread can be interrupted by `INTERRUPT_SIGNAL`: the main thread
    (the one that runs signal handlers), with no handler of the program's own."""
    return (INTERRUPT_SIGNAL is not None
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(INTERRUPT_SIGNAL) == signal.SIG_DFL)


class TimeLimit:
    """A deadline for the calling thread: `start`, run something, `stop` (always, and
    in a ``finally``). Use `call_with_time_limit`, which gets the corner cases right:
    the interrupt may land anywhere between `start` and `stop`, `stop` included.

    ``expired`` tells afterwards whether the limit was reached, also when the code ended
    on its own past it (a C call the interrupt could not reach).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._thread_id = 0
        self._started = 0.0
        self._lock = threading.Lock()
        self._running = False
        self._fired = False
        self._use_signal = False
        self._timer: threading.Timer | None = None
        self._old_handler: Any = None

    def start(self) -> None:
        self._thread_id = threading.get_ident()
        self._started = time.monotonic()
        self._running = True
        if _signal_is_free():  # nothing can interrupt us before the timer runs
            assert INTERRUPT_SIGNAL is not None
            self._old_handler = signal.signal(INTERRUPT_SIGNAL, self._on_signal)
            self._use_signal = True
        timer = threading.Timer(self.seconds, self._interrupt)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self._running:  # a late signal after `stop`: nothing to interrupt
            raise TimeLimitExceeded

    def _interrupt(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._fired = True
            if self._use_signal:
                signal.pthread_kill(self._thread_id, INTERRUPT_SIGNAL)  # type: ignore[arg-type]
            else:
                _raise_in(self._thread_id, TimeLimitExceeded)

    def stop(self) -> None:
        """Disarm; idempotent, and safe to repeat when the interrupt lands inside it
        (it fires at most once)."""
        while True:
            try:
                with self._lock:
                    self._running = False
                    if self._fired and not self._use_signal:
                        _clear_in(self._thread_id, None)  # not delivered yet: never later
                if self._timer is not None:
                    self._timer.cancel()
                if self._use_signal:
                    assert INTERRUPT_SIGNAL is not None
                    signal.signal(INTERRUPT_SIGNAL, self._old_handler)
                self.expired = self._fired or time.monotonic() - self._started >= self.seconds
                return
            except TimeLimitExceeded:
                continue


def call_with_time_limit(seconds: float, func: Callable[[], T]) -> tuple[T | None, bool]:
    """Run ``func()`` with a deadline of ``seconds``: ``(its result, False)``, or
    ``(None or its result, True)`` if the deadline passed (interrupted, or it returned
    late). Exceptions of ``func`` other than the interrupt propagate."""
    limit = TimeLimit(seconds)
    result: T | None = None
    try:
        try:
            limit.start()
            result = func()
        finally:
            limit.stop()
    except TimeLimitExceeded:
        pass  # delivered before `stop` ran: `stop` has run since (finally)
    return result, limit.expired
