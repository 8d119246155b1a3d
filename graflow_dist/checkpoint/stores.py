"""Checkpoint stores: where the three files of a checkpoint live.

`FileCheckpointStore` writes each file crash-safely (temp file, fsync, rename, then the
directory fsync) with ``.meta.json`` last: a checkpoint without its meta file was never
committed and is refused. `RedisCheckpointStore` writes all three in one transaction,
for pods without a shared disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from graflow_dist.checkpoint.format import META, PKL, STATE, SUFFIXES
from graflow_dist.errors import CheckpointError
from graflow_dist.files import atomic_write, fsync_dir

# Where checkpoints without an absolute path go (in process, on a coordinator, listed).
DEFAULT_CHECKPOINT_DIR = "checkpoints"


class CheckpointStore(Protocol):
    """Where checkpoints are written; ``base`` is the path without suffix."""

    def write(self, base: str, files: dict[str, bytes]) -> None: ...

    def read(self, base: str, suffix: str) -> bytes: ...

    def list_bases(self) -> list[str]: ...


REDIS_SCHEMES = ("redis://", "rediss://")


def is_redis_path(path: str) -> bool:
    """A checkpoint in a Redis store (``redis://`` or ``rediss://``)."""
    return path.startswith(REDIS_SCHEMES)


def _split_query(path: str) -> tuple[str, str]:
    """A Redis store path's query (``?ssl_ca_certs=...``) belongs to its server, not to
    the checkpoint's name: suffixes go before it."""
    if is_redis_path(path) and "?" in path:
        cut = path.index("?")
        return path[:cut], path[cut:]
    return path, ""


def split_base(path: str) -> str:
    """``x.pkl``, ``x.meta.json``, ``x.state.json`` and ``x`` all name checkpoint ``x``."""
    head, query = _split_query(path)
    for suffix in (META, STATE, PKL):
        if head.endswith(suffix):
            return head[: -len(suffix)] + query
    return path


def with_suffix(base: str, suffix: str) -> str:
    """The path of one file of checkpoint ``base`` (``.pkl``, ``.state.json``, ...)."""
    head, query = _split_query(base)
    return head + suffix + query


class FileCheckpointStore:
    """Checkpoints as files on a local or shared filesystem."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_CHECKPOINT_DIR) -> None:
        self.root = Path(root)

    def write(self, base: str, files: dict[str, bytes]) -> None:
        target = Path(base)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix in (PKL, STATE, META):  # meta last: it commits the checkpoint
                atomic_write(Path(base + suffix), files[suffix])
            fsync_dir(target.parent)
        except OSError as exc:
            raise CheckpointError(base + META, f"cannot write ({exc.strerror or exc})") from None

    def read(self, base: str, suffix: str) -> bytes:
        path = base + suffix
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            hint = (
                " (the write never completed: a checkpoint is valid only once its .meta.json "
                "exists)"
                if suffix == META and any(Path(base + s).exists() for s in (PKL, STATE))
                else ""
            )
            raise CheckpointError(path, f"file is missing{hint}") from None
        except OSError as exc:
            raise CheckpointError(path, f"cannot read ({exc.strerror or exc})") from None

    def list_bases(self) -> list[str]:
        """Every committed checkpoint below the root."""
        if not self.root.exists():
            return []
        return sorted(str(p)[: -len(META)] for p in self.root.rglob(f"*{META}"))


__all__ = ["DEFAULT_CHECKPOINT_DIR", "CheckpointStore", "FileCheckpointStore", "SUFFIXES",
           "is_redis_path", "split_base", "with_suffix"]
