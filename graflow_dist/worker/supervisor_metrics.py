"""The metrics a ``graflow-dist worker`` serves: its executors' task counters (read
from their slots, summed with those of executors it replaced) and its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from graflow_dist.worker.slot import DURATION_BUCKETS, OUTCOMES, SlotCounters


class ExecutorCounters(Collector):
    """``graflow_tasks_total``, ``graflow_task_duration_seconds`` and
    ``graflow_leases_lost_total`` over every executor, past and present.

    Parameters
    ----------
    live:
        The counters of the executors running now.
    """

    def __init__(self, live: Callable[[], list[SlotCounters]]) -> None:
        self.live = live
        self.retired = SlotCounters()  # executors that were replaced
        self.lock = threading.Lock()

    def retire(self, counters: SlotCounters) -> None:
        """Keep a replaced executor's counts (call with ``lock`` held, together with
        resetting its slot, so no scrape counts them twice or not at all)."""
        self.retired = self.retired + counters

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            total = self.retired
            for counters in self.live():
                total = total + counters
        tasks = CounterMetricFamily("graflow_tasks", "Task executions by outcome",
                                    labels=["outcome"])
        for outcome, count in zip(OUTCOMES, total.outcomes, strict=True):
            tasks.add_metric([outcome], count)
        yield tasks
        cumulative, running = [], 0
        for bound, count in zip(DURATION_BUCKETS, total.buckets, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily("graflow_task_duration_seconds", "Task run time",
                                    buckets=cumulative, sum_value=total.duration_sum)
        yield CounterMetricFamily("graflow_leases_lost",
                                  "Jobs whose lease this worker lost (re-dispatched elsewhere)",
                                  value=total.leases_lost)


class SupervisorMetrics:
    """The registry a worker's ``/metrics`` serves."""

    def __init__(self, live: Callable[[], list[SlotCounters]]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # the supervisor's own process_*
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.executors = ExecutorCounters(live)
        self.registry.register(self.executors)
        self.timeouts = Counter("graflow_task_timeouts_total",
                                "Tasks stopped because they ran past their timeout",
                                registry=self.registry)
        self.cancelled = Counter("graflow_cancelled_tasks_stopped_total",
                                 "Running tasks stopped because their run had ended "
                                 "(cancelled or failed)", registry=self.registry)
        self.restarts = Counter("graflow_executor_restarts_total",
                                "Executor processes replaced, by reason",
                                ["reason"], registry=self.registry)
