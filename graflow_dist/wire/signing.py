"""Signed blobs: HMAC-SHA256 over every pickled payload that crosses Redis or disk.

A blob is ``MAGIC + mac(32 bytes) + payload``. `verify` refuses unsigned, truncated or
forged blobs before anything is unpickled. The secret comes from
``GRAFLOW_DIST_SECRET``; without it a per-user key file is created (mode 0600) so that
the processes of one user on one host (e.g. ``graflow-dist up``) agree on a key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import cloudpickle

from graflow_dist.errors import SignatureError

MAGIC = b"GFD1"
MAC_LEN = 32
SECRET_ENV = "GRAFLOW_DIST_SECRET"
SECRET_FILE_ENV = "GRAFLOW_DIST_SECRET_FILE"
DEFAULT_SECRET_FILE = Path.home() / ".graflow-dist" / "secret"

_cached: dict[str, bytes] = {}


def load_secret() -> bytes:
    """The signing key: ``GRAFLOW_DIST_SECRET``, else the key file (created once)."""
    env = os.environ.get(SECRET_ENV)
    if env:
        return env.encode()
    path = Path(os.environ.get(SECRET_FILE_ENV) or DEFAULT_SECRET_FILE)
    key = str(path)
    if key in _cached:
        return _cached[key]
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
        secret = path.read_bytes().strip()
    _cached[key] = secret
    return secret


def sign(payload: bytes, secret: bytes | None = None) -> bytes:
    key = secret if secret is not None else load_secret()
    return MAGIC + hmac.new(key, payload, hashlib.sha256).digest() + payload


def verify(blob: bytes, what: str, secret: bytes | None = None) -> bytes:
    """Return the payload of a signed blob, or raise `SignatureError` naming ``what``."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise SignatureError(f"{what}: expected a signed blob, got {type(blob).__name__}")
    blob = bytes(blob)
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + MAC_LEN:
        raise SignatureError(f"{what}: not a signed graflow-dist blob (unsigned or truncated)")
    mac = blob[len(MAGIC) : len(MAGIC) + MAC_LEN]
    payload = blob[len(MAGIC) + MAC_LEN :]
    key = secret if secret is not None else load_secret()
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise SignatureError(
            f"{what}: signature does not verify (forged, corrupted, or signed with another "
            f"secret; check that every process shares the same {SECRET_ENV})"
        )
    return payload


def dumps_signed(obj: Any, secret: bytes | None = None) -> bytes:
    """cloudpickle ``obj`` and sign it."""
    return sign(cloudpickle.dumps(obj), secret)


def loads_signed(blob: bytes, what: str, secret: bytes | None = None) -> Any:
    """Verify, then unpickle. Unpickling only ever happens after verification."""
    return cloudpickle.loads(verify(blob, what, secret))


def content_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:32]
