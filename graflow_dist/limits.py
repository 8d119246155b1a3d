"""Size limits on what tasks put through Redis: results, channel values, messages.

Redis refuses a value over 512 MB, and far smaller ones already stall every process
that moves them (a worker retrying a report it can never send, a coordinator commit
carrying it). Beyond these limits data belongs in external storage; the task gets a
clear error saying so. Each limit is set by an environment variable (or the services'
CLI options, which set the same variables for their processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from graflow_dist.errors import ConfigurationError, PayloadTooLargeError

MAX_RESULT_BYTES_ENV = "GRAFLOW_DIST_MAX_RESULT_BYTES"
MAX_VALUE_BYTES_ENV = "GRAFLOW_DIST_MAX_VALUE_BYTES"
MAX_MESSAGE_BYTES_ENV = "GRAFLOW_DIST_MAX_MESSAGE_BYTES"
MIB = 1024 * 1024
DEFAULT_MAX_RESULT_BYTES = 32 * MIB
DEFAULT_MAX_VALUE_BYTES = 32 * MIB
# A message (a task's report, a queued batch) carries a result plus a little more.
DEFAULT_MAX_MESSAGE_BYTES = 64 * MIB
# Redis's own ceiling for one value (proto-max-bulk-len).
REDIS_MAX_BULK_BYTES = 512 * MIB

EXTERNAL_STORAGE_HINT = ("keep large data in external storage (object storage, a database, "
                         "a shared file) and pass a reference to it instead")


def _from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r:.40} is not a number of bytes") from None
    if not 0 < value <= REDIS_MAX_BULK_BYTES:
        raise ConfigurationError(f"{name}={value} must be between 1 and "
                                   f"{REDIS_MAX_BULK_BYTES} bytes")
    return value


def max_result_bytes() -> int:
    return _from_env(MAX_RESULT_BYTES_ENV, DEFAULT_MAX_RESULT_BYTES)


def max_value_bytes() -> int:
    return _from_env(MAX_VALUE_BYTES_ENV, DEFAULT_MAX_VALUE_BYTES)


def max_message_bytes() -> int:
    return _from_env(MAX_MESSAGE_BYTES_ENV, DEFAULT_MAX_MESSAGE_BYTES)


@dataclass(frozen=True)
class Limits:
    """The three limits, in bytes."""

    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @classmethod
    def from_env(cls) -> Limits:
        """The limits of this process (`ConfigurationError` for a bad setting)."""
        return cls(max_result_bytes(), max_value_bytes(), max_message_bytes())


def shown_size(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"


def too_large(what: str, size: int, limit: int, env: str) -> PayloadTooLargeError:
    """The error for ``what`` of ``size`` bytes over ``limit`` (set by ``env``)."""
    return PayloadTooLargeError(
        f"{what} is {shown_size(size)}, over the limit of {shown_size(limit)} "
        f"({env}); {EXTERNAL_STORAGE_HINT}")
