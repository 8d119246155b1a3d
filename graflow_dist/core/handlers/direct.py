"""The default handler: the task runs in the calling process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow_dist.core.handler import DEFAULT_HANDLER, TaskHandler, register_handler

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext


class DirectTaskHandler(TaskHandler):
    """Calls the task's function directly."""

    def get_name(self) -> str:
        return DEFAULT_HANDLER

    def execute_task(self, task: Any, context: ExecutionContext) -> Any:
        return task.run()


register_handler(DEFAULT_HANDLER, DirectTaskHandler())
