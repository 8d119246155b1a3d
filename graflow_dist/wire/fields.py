"""Typed reads of decoded payloads: every decoder of data from Redis or disk uses these,
so a value of the wrong type or out of range is a `WireError` naming where it was,
never a ``TypeError`` deep inside a service."""

from __future__ import annotations

import math
import reprlib
from typing import Any

from graflow_dist.errors import WireError

_MISSING = object()
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def shown(value: Any) -> str:
    """A short repr of ``value`` for an error message (bounded, even for deeply nested
    or huge data someone else wrote)."""
    return _REPR.repr(value)[:100]


def _get(body: dict[str, Any], key: str, default: Any, what: str) -> Any:
    value = body.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise WireError(f"{what}: missing field {key!r}")
        return default
    return value


def mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{what}: expected a map, got {type(value).__name__}")
    return value


def text(body: dict[str, Any], key: str, what: str, default: Any = _MISSING) -> str:
    value = _get(body, key, default, what)
    if not isinstance(value, str):
        raise WireError(f"{what}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def optional_text(body: dict[str, Any], key: str, what: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WireError(f"{what}: field {key!r} must be a string or null, "
                        f"got {type(value).__name__}")
    return value


def integer(body: dict[str, Any], key: str, what: str, default: Any = _MISSING, *,
            minimum: int | None = None) -> int:
    value = _get(body, key, default, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{what}: field {key!r} must be an integer, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise WireError(f"{what}: field {key!r} must be >= {minimum}, got {value}")
    return value


def number(body: dict[str, Any], key: str, what: str, default: Any = _MISSING, *,
           minimum: float | None = None) -> float:
    value = _get(body, key, default, what)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireError(f"{what}: field {key!r} must be a finite number, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise WireError(f"{what}: field {key!r} must be >= {minimum}, got {value}")
    return float(value)


def flag(body: dict[str, Any], key: str, what: str, default: Any = _MISSING) -> bool:
    value = _get(body, key, default, what)
    if not isinstance(value, bool):
        raise WireError(f"{what}: field {key!r} must be true or false, got {shown(value)}")
    return value


def text_list(body: dict[str, Any], key: str, what: str, default: Any = _MISSING) -> list[str]:
    value = _get(body, key, default, what)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise WireError(f"{what}: field {key!r} must be a list of strings")
    return list(value)


def submap(body: dict[str, Any], key: str, what: str, default: Any = _MISSING
           ) -> dict[str, Any]:
    value = _get(body, key, default, what)
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise WireError(f"{what}: field {key!r} must be a map with string keys")
    return value


def int_text(raw: str, what: str, *, minimum: int | None = None) -> int:
    """An integer stored as text (Redis hash fields)."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise WireError(f"{what}: expected an integer, got {shown(raw)}") from None
    if minimum is not None and value < minimum:
        raise WireError(f"{what}: must be >= {minimum}, got {value}")
    return value


def float_text(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise WireError(f"{what}: expected a number, got {shown(raw)}") from None
    if not math.isfinite(value):
        raise WireError(f"{what}: expected a finite number, got {shown(raw)}")
    return value
