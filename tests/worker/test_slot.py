"""ExecutorSlot: what an executor publishes and its supervisor reads, across processes;
torn and oversized writes are detected; counters feed the worker's /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from prometheus_client import generate_latest

from graflow_dist.worker.slot import (
    DURATION_BUCKETS,
    HOLDING,
    IDLE,
    RUNNING,
    ExecutorSlot,
    SlotCounters,
)
from graflow_dist.worker.supervisor_metrics import SupervisorMetrics


def test_states_as_the_executor_moves_through_a_job() -> None:
    slot = ExecutorSlot.create()
    try:
        assert slot.read() is not None and slot.read().state == IDLE and not slot.ready
        slot.mark_ready()
        slot.holding("gf.s1.e.1", "s1")
        held = slot.read()
        assert (held.state, held.job_id, held.session_id, held.token) == (
            HOLDING, "gf.s1.e.1", "s1", None)
        deadline = time.monotonic() + 5
        slot.running("e.1", "train", deadline, 5.0)
        running = slot.read()
        assert (running.state, running.job_id, running.token, running.task_id) == (
            RUNNING, "gf.s1.e.1", "e.1", "train")
        assert running.deadline == deadline and running.timeout_s == 5.0
        slot.between_tasks()
        between = slot.read()
        assert (between.state, between.job_id, between.token, between.deadline) == (
            HOLDING, "gf.s1.e.1", None, 0.0)
        slot.idle()
        assert slot.read().state == IDLE and slot.read().job_id is None
        assert slot.ready
    finally:
        slot.close()


def test_another_process_writes_what_the_supervisor_reads() -> None:
    slot = ExecutorSlot.create()
    try:
        code = textwrap.dedent(f"""
            from graflow_dist.worker.slot import ExecutorSlot
            slot = ExecutorSlot.attach({slot.fd})
            slot.mark_ready()
            slot.holding("job-9", "sess-9")
            slot.running("tok-9", "task-9", 123.5, 7.0)
            slot.count_task("done", 0.2)
            slot.count_lease_lost()
        """)
        child = subprocess.run([sys.executable, "-c", code], pass_fds=(slot.fd,), timeout=60)
        assert child.returncode == 0
        state = slot.read()  # the writer is gone; its last state stays readable
        assert state is not None
        assert (state.state, state.job_id, state.session_id, state.token, state.task_id,
                state.deadline) == (RUNNING, "job-9", "sess-9", "tok-9", "task-9", 123.5)
        assert state.pid not in (0, os.getpid())
        counters = slot.counters()
        assert counters.outcomes == (1, 0) and counters.leases_lost == 1
    finally:
        slot.close()


def test_a_torn_write_reads_as_unknown() -> None:
    slot = ExecutorSlot.create()
    try:
        slot.holding("job", "sess")
        slot.memory[0:8] = (7).to_bytes(8, "little")  # odd sequence: a write never finished
        assert slot.read() is None
    finally:
        slot.close()


def test_an_oversized_job_id_is_published_as_unknown() -> None:
    slot = ExecutorSlot.create()
    try:
        slot.holding("j" * 20_000, "sess")
        slot.running("tok", "task", 1.0, 1.0)
        state = slot.read()
        assert state.state == RUNNING and state.job_id is None and state.token == "tok"
    finally:
        slot.close()


def test_counters_sum_and_reset() -> None:
    slot = ExecutorSlot.create()
    try:
        slot.count_task("done", 0.003)
        slot.count_task("done", 2.0)
        slot.count_task("fail", 100.0)
        slot.count_task("handback", 1.0)  # not a task outcome: not counted
        counters = slot.counters()
        assert counters.outcomes == (2, 1)
        assert abs(counters.duration_sum - 102.003) < 1e-9
        buckets = dict(zip(DURATION_BUCKETS, counters.buckets, strict=True))
        assert buckets[0.005] == 1 and buckets[2.5] == 1 and buckets[float("inf")] == 1
        assert sum(counters.buckets) == 3
        total = counters + counters
        assert total.outcomes == (4, 2) and sum(total.buckets) == 6
        slot.reset()
        assert slot.counters() == SlotCounters()
    finally:
        slot.close()


def test_metrics_sum_live_and_replaced_executors() -> None:
    slots = [ExecutorSlot.create(), ExecutorSlot.create()]
    try:
        metrics = SupervisorMetrics(lambda: [s.counters() for s in slots])
        slots[0].count_task("done", 0.01)
        slots[1].count_task("fail", 0.5)
        slots[1].count_lease_lost()
        with metrics.executors.lock:  # what a replacement does
            metrics.executors.retire(slots[1].counters())
            slots[1].reset()
        slots[1].count_task("done", 0.01)
        metrics.timeouts.inc()
        text = generate_latest(metrics.registry).decode()
        assert 'graflow_tasks_total{outcome="done"} 2.0' in text
        assert 'graflow_tasks_total{outcome="fail"} 1.0' in text
        assert "graflow_leases_lost_total 1.0" in text
        assert 'graflow_task_duration_seconds_bucket{le="+Inf"} 3.0' in text
        assert 'graflow_task_duration_seconds_bucket{le="0.01"} 2.0' in text
        assert "graflow_task_duration_seconds_count 3.0" in text
        assert "graflow_task_timeouts_total 1.0" in text
    finally:
        for slot in slots:
            slot.close()
