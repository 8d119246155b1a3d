"""Signed blobs: HMAC-SHA256 over every pickled payload that crosses Redis or disk.

A blob is ``MAGIC + mac(32 bytes) + payload``. `verify` refuses unsigned, truncated or
forged blobs before anything is unpickled. The secret comes from
``GRAFLOW_DIST_SECRET``; without it a per-user key file is created (mode 0600) so that
the processes of one user on one host (e.g. ``graflow-dist up``) agree on a key.

A secret shorter than `MIN_SECRET_LEN` characters is refused (a short key is
brute-forced offline from any signed blob), and so is an empty variable. Event
messages are authenticated with a key derived from the secret for that purpose only
(`message_mac`), so a signed event can never pass for a signed pickle or vice versa.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import cloudpickle

from graflow_dist.errors import SecretError, SignatureError

MAGIC = b"GFD1"
MAC_LEN = 32
SECRET_ENV = "GRAFLOW_DIST_SECRET"
SECRET_FILE_ENV = "GRAFLOW_DIST_SECRET_FILE"
DEFAULT_SECRET_FILE = Path.home() / ".graflow-dist" / "secret"
MIN_SECRET_LEN = 32
MESSAGE_MAGIC = b"GFM1"
_MESSAGE_KEY_LABEL = b"graflow-dist/message-mac/v1"

_cached: dict[str, bytes] = {}
_from_env: list[tuple[str, bytes]] = []  # the variable as last read, and its key
_message_keys: dict[bytes, bytes] = {}


def _checked(secret: bytes, source: str, length: int | None = None) -> bytes:
    length = len(secret) if length is None else length
    if length < MIN_SECRET_LEN:
        raise SecretError(
            f"{source} holds {length} characters; a signing secret needs at least "
            f"{MIN_SECRET_LEN} (generate one with: openssl rand -hex 32)")
    return secret


def load_secret() -> bytes:
    """The signing key: ``GRAFLOW_DIST_SECRET``, else the key file (created once).

    Raises `SecretError` (one line) for an empty variable, a secret shorter than
    `MIN_SECRET_LEN` characters, or an unusable key file.
    """
    env = os.environ.get(SECRET_ENV)
    if env is not None:
        if _from_env and _from_env[0][0] == env:  # every message is signed: no re-checks
            return _from_env[0][1]
        if not env.strip():
            raise SecretError(f"{SECRET_ENV} is set but empty: set it to a secret of at "
                              f"least {MIN_SECRET_LEN} characters, or unset it to use the "
                              "key file")
        key = _checked(env.encode(), SECRET_ENV, len(env))
        _from_env[:] = [(env, key)]
        return key
    path = Path(os.environ.get(SECRET_FILE_ENV) or DEFAULT_SECRET_FILE)
    key = str(path)
    if key not in _cached:
        _cached[key] = _checked(_read_or_create_key_file(path), f"key file {path}")
    return _cached[key]


def _read_or_create_key_file(path: Path) -> bytes:
    """The key in ``path``; created complete or not at all, so concurrent first starts
    agree on one key (the first link wins, the others read it)."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SecretError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".secret.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:  # mkstemp: mode 0600
                fh.write(secrets.token_hex(32).encode())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # atomic, and fails if another process won
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
        return path.read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"cannot create key file {path}: {exc.strerror or exc}") from None


def message_key(secret: bytes | None = None) -> bytes:
    """The key that authenticates event messages, derived from the signing secret."""
    base = secret if secret is not None else load_secret()
    derived = _message_keys.get(base)
    if derived is None:
        derived = hmac.new(base, _MESSAGE_KEY_LABEL, hashlib.sha256).digest()
        _message_keys[base] = derived
    return derived


def message_mac(body: bytes, secret: bytes | None = None) -> bytes:
    """The MAC of an encoded message body."""
    return hmac.new(message_key(secret), body, hashlib.sha256).digest()


def seal(body: bytes, secret: bytes | None = None) -> bytes:
    """``body`` with its message MAC: ``MESSAGE_MAGIC + mac + body``."""
    return MESSAGE_MAGIC + message_mac(body, secret) + body


def unseal(raw: Any, what: str, secret: bytes | None = None) -> bytes:
    """The body of a sealed message, or `SignatureError` naming ``what`` (unsigned,
    truncated, forged, or sealed with another secret)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise SignatureError(f"{what}: expected a signed message, got {type(raw).__name__}")
    raw = bytes(raw)
    head = len(MESSAGE_MAGIC) + MAC_LEN
    if not raw.startswith(MESSAGE_MAGIC) or len(raw) < head:
        raise SignatureError(f"{what}: unsigned message (no graflow-dist MAC)")
    body = raw[head:]
    if not hmac.compare_digest(raw[len(MESSAGE_MAGIC):head], message_mac(body, secret)):
        raise SignatureError(f"{what}: message MAC does not verify (forged, or sent by a "
                             f"process with another {SECRET_ENV})")
    return body


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


def is_content_hash(value: object) -> bool:
    """Whether ``value`` looks like a `content_hash` (it becomes part of a key name)."""
    return (isinstance(value, str) and len(value) == 32
            and all(c in "0123456789abcdef" for c in value))
