"""RetryPolicy: how a failing task is tried again (Graflow's fields and defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from graflow_dist.scheduler.specs import RetrySettings


@dataclass
class RetryPolicy:
    """Retries with exponential backoff.

    Parameters
    ----------
    max_retries:
        Retries after the first attempt (``2`` means at most 3 attempts).
    initial_interval:
        Seconds before the first retry.
    backoff_factor:
        Multiplier applied to the delay after each retry.
    max_interval:
        Upper bound of one delay, in seconds.
    jitter:
        Scale each delay by a factor in [0.5, 1.5) to spread retries out.

    Backoff never blocks other ready tasks: a task waiting for its retry is parked in
    the scheduler while the rest of the workflow runs.
    """

    max_retries: int = 0
    initial_interval: float = 1.0
    backoff_factor: float = 2.0
    max_interval: float = 60.0
    jitter: bool = False

    def get_delay(self, retry_count: int) -> float:
        return self.settings().delay_before(retry_count)

    def settings(self) -> RetrySettings:
        return RetrySettings(
            max_retries=self.max_retries,
            initial_interval=self.initial_interval,
            backoff_factor=self.backoff_factor,
            max_interval=self.max_interval,
            jitter=self.jitter,
        )
