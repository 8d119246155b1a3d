"""Channels: the shared state of a run (in process, or in Redis)."""

from graflow_dist.channels.base import Channel, result_key
from graflow_dist.channels.memory import MemoryChannel

__all__ = ["Channel", "MemoryChannel", "result_key"]
