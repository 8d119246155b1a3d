"""JobChannel: the run's channel as the tasks of one job see it.

A task continued at once after its predecessor (local continuation) starts before the
coordinator has applied the predecessor's report, so the predecessor's result is not in
the channel yet (only the coordinator writes result keys, and only for an accepted
attempt). The job keeps the encoded results of its own finished tasks and serves them
for their result keys. Should the coordinator not accept such a result, it refuses the
continuation too, and the continued task's report is fenced off with it.
"""

from __future__ import annotations

from typing import Any

from graflow_dist.channels.base import result_key
from graflow_dist.channels.redis import RedisChannel
from graflow_dist.wire.values import decode_value


class JobChannel(RedisChannel):
    """A `RedisChannel` that reads the results of the job's own tasks from the job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._results: dict[str, bytes] = {}  # result key -> encoded value

    def remember(self, task_id: str, encoded: bytes) -> None:
        """``task_id`` finished in this job with the result ``encoded``."""
        self._results[result_key(task_id)] = encoded

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._results.get(key)
        if raw is None:
            return super().get(key, default)
        return decode_value(raw, self._what(key))

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        local = {k: decode_value(self._results[k], self._what(k))
                 for k in keys if k in self._results}
        found = super().get_many([k for k in keys if k not in local])
        found.update(local)
        return found

    def exists(self, key: str) -> bool:
        return key in self._results or super().exists(key)
