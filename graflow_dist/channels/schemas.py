"""Common message types for typed channels (Graflow's names), registered by name."""

from __future__ import annotations

from typing import Any, TypedDict

from graflow_dist.channels.typed import ChannelTypeRegistry


class TaskResultMessage(TypedDict):
    task_id: str
    result: Any
    timestamp: float
    status: str


class TaskProgressMessage(TypedDict):
    task_id: str
    progress: float
    message: str
    timestamp: float


class TaskErrorMessage(TypedDict):
    task_id: str
    error_type: str
    error_message: str
    timestamp: float


class WorkflowStateMessage(TypedDict):
    workflow_id: str
    state: str
    current_task: str
    completed_tasks: list[str]
    timestamp: float


class DataTransferMessage(TypedDict):
    from_task: str
    to_task: str
    data: Any
    data_type: str
    timestamp: float


class CycleNotificationMessage(TypedDict):
    task_id: str
    cycle_count: int
    max_cycles: int
    data: Any


for _name, _type in (("task_result", TaskResultMessage), ("task_progress", TaskProgressMessage),
                     ("task_error", TaskErrorMessage), ("workflow_state", WorkflowStateMessage),
                     ("data_transfer", DataTransferMessage),
                     ("cycle_notification", CycleNotificationMessage)):
    ChannelTypeRegistry.register(_name, _type)
