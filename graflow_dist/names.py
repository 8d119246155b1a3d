"""The names users give things, checked where they enter (client, CLI, decoders).

Session ids, deployment prefixes and queue names end up inside Redis keys, checkpoint
paths and SCAN patterns, so they are plain identifiers: letters, digits, ``_ . -``,
not starting with ``.`` or ``-`` (so never ``..``, ``*``, ``:`` or ``/``). Workflow
names and task ids are shown and stored, never used as a key or path of their own:
any printable text of bounded length.
"""

from __future__ import annotations

import re

from graflow_dist.errors import InvalidNameError

MAX_SESSION_ID_LEN = 128
MAX_PREFIX_LEN = 64
MAX_TEXT_NAME_LEN = 200

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_IDENTIFIER_RULE = "letters, digits, '_', '.', '-', not starting with '.' or '-'"


def _identifier_ok(value: object, max_len: int) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= max_len
            and _IDENTIFIER.fullmatch(value) is not None)


def _text_ok(value: object, max_len: int, *, allow_empty: bool = False) -> bool:
    return (isinstance(value, str) and (allow_empty or value != "")
            and len(value) <= max_len and value.isprintable())


def is_session_id(value: object) -> bool:
    return _identifier_ok(value, MAX_SESSION_ID_LEN)


def is_prefix(value: object) -> bool:
    """Deployment prefixes and queue names."""
    return _identifier_ok(value, MAX_PREFIX_LEN)


def is_token(value: object) -> bool:
    """Dispatch tokens (``{epoch}.{seq}``), which become part of job ids."""
    return _identifier_ok(value, MAX_SESSION_ID_LEN)


def is_task_id(value: object) -> bool:
    return _text_ok(value, MAX_TEXT_NAME_LEN)


def is_workflow_name(value: object) -> bool:
    return _text_ok(value, MAX_TEXT_NAME_LEN, allow_empty=True)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_session_id(value: object) -> str:
    if not is_session_id(value):
        raise InvalidNameError(
            f"invalid session id {_shown(value)}: use 1-{MAX_SESSION_ID_LEN} characters, "
            f"{_IDENTIFIER_RULE}")
    return str(value)


def check_prefix(value: object, what: str = "prefix") -> str:
    if not is_prefix(value):
        raise InvalidNameError(
            f"invalid {what} {_shown(value)}: use 1-{MAX_PREFIX_LEN} characters, "
            f"{_IDENTIFIER_RULE}")
    return str(value)


def check_task_id(value: object) -> str:
    if not is_task_id(value):
        raise InvalidNameError(
            f"invalid task id {_shown(value)}: use 1-{MAX_TEXT_NAME_LEN} printable "
            "characters (no control characters or newlines)")
    return str(value)


def check_workflow_name(value: object) -> str:
    if not is_workflow_name(value):
        raise InvalidNameError(
            f"invalid workflow name {_shown(value)}: use at most {MAX_TEXT_NAME_LEN} "
            "printable characters (no control characters or newlines)")
    return str(value)
