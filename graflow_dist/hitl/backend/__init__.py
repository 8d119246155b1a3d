"""Where feedback requests and responses are kept.

``base.FeedbackBackend`` is the protocol; ``memory`` and ``filesystem`` implement it
here, and the Redis store plugs in through `graflow_dist.hitl.manager.register_backend`.
"""

from graflow_dist.hitl.backend.base import FeedbackBackend
from graflow_dist.hitl.backend.filesystem import FilesystemFeedbackBackend
from graflow_dist.hitl.backend.memory import MemoryFeedbackBackend

__all__ = ["FeedbackBackend", "FilesystemFeedbackBackend", "MemoryFeedbackBackend"]
