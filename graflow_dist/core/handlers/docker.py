"""Graflow's container handler is not provided: this machine has no container engine to
test one against, so using it fails with an error that says so."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graflow_dist.core.handler import TaskHandler
from graflow_dist.errors import TaskHandlerError

if TYPE_CHECKING:
    from graflow_dist.core.context import ExecutionContext

UNAVAILABLE = (
    "DockerTaskHandler is not available in graflow-dist: running a task in a container "
    "needs a container handler and a Docker-compatible engine, and graflow-dist ships no "
    "container handler yet. Run the task with the default handler, write a TaskHandler "
    "of your own, or run the task's work in a worker image (see workers/)"
)


class DockerTaskHandler(TaskHandler):
    """Placeholder with Graflow's name; constructing it raises `TaskHandlerError`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TaskHandlerError(UNAVAILABLE)

    def get_name(self) -> str:
        return "docker"

    def execute_task(self, task: Any, context: ExecutionContext) -> Any:
        raise TaskHandlerError(UNAVAILABLE)
