"""TypedChannel: a view of a run's channel whose values are checked against a message
type, a ``TypedDict`` (as in Graflow) or a dataclass.

TypedDict messages are stored as the dicts they are. Dataclass messages are stored as
plain dicts of their fields (portable to any worker, no pickle) and read back as
instances. A value that does not match raises `ChannelTypeError` naming the key, the
field and the problem, on write and on read (Graflow silently returned None on read).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Generic, TypeVar

from graflow_dist.channels.base import DEFAULT_LOCK_TIMEOUT_S, Channel
from graflow_dist.errors import ChannelTypeError

T = TypeVar("T")
_MAX_DEPTH = 16


def is_typed_dict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__") \
        and hasattr(tp, "__annotations__")


def is_message_type(tp: Any) -> bool:
    return is_typed_dict(tp) or (isinstance(tp, type) and dataclasses.is_dataclass(tp))


def _hints(tp: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(tp)
    except Exception:  # unresolvable forward references: check names, not types
        return dict(getattr(tp, "__annotations__", {}))


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def problem_with(value: Any, tp: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not a ``tp`` (None if it is). Checks classes, unions,
    ``Literal``, ``list``/``set``/``tuple``/``dict`` items, nested TypedDicts and
    dataclasses; anything else is accepted."""
    if tp is Any or tp is object or isinstance(tp, TypeVar) or depth > _MAX_DEPTH:
        return None
    if tp is None or tp is type(None):
        return None if value is None else f"expected None, got {type(value).__name__}"
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        problems = [problem_with(value, a, depth + 1) for a in args]
        return None if any(p is None for p in problems) else \
            f"expected {_name(tp)}, got {type(value).__name__}"
    if origin is typing.Literal:
        return None if value in args else f"expected one of {list(args)}, got {value!r}"
    if is_message_type(tp):
        return _message_problem(value, tp, depth + 1)
    if origin in (list, set, frozenset, tuple, dict) or (isinstance(origin, type)
                                                          and args):
        return _container_problem(value, origin, args, depth)
    if isinstance(tp, type):
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return None  # an int is a fine float
        if isinstance(value, tp):
            return None
        return f"expected {tp.__name__}, got {type(value).__name__}"
    return None


def _container_problem(value: Any, origin: Any, args: tuple[Any, ...], depth: int
                       ) -> str | None:
    if not isinstance(value, origin):
        return f"expected {origin.__name__}, got {type(value).__name__}"
    if origin is dict and len(args) == 2:
        for k, v in value.items():
            problem = problem_with(k, args[0], depth + 1) or problem_with(v, args[1], depth + 1)
            if problem:
                return f"[{k!r}]: {problem}"
    elif origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            return f"expected {len(args)} items, got {len(value)}"
        for i, (item, a) in enumerate(zip(value, args, strict=True)):
            if problem := problem_with(item, a, depth + 1):
                return f"[{i}]: {problem}"
    elif args and origin in (list, set, frozenset, tuple):
        for i, item in enumerate(value):
            if problem := problem_with(item, args[0], depth + 1):
                return f"[{i}]: {problem}"
    return None


def _message_problem(value: Any, tp: type, depth: int) -> str | None:
    hints = _hints(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, tp):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(tp)}
        required: set[str] = set()
    elif isinstance(value, Mapping):
        fields = dict(value)
        if is_typed_dict(tp):
            required = _required_keys(tp)
        else:
            required = {f.name for f in dataclasses.fields(tp)
                        if f.default is dataclasses.MISSING
                        and f.default_factory is dataclasses.MISSING}
    else:
        return f"expected {tp.__name__}, got {type(value).__name__}"
    missing = sorted(required - set(fields))
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    extra = sorted(str(k) for k in fields if k not in hints)
    if extra:
        return f"unknown field(s) {', '.join(extra)}"
    for name, item in fields.items():
        if problem := problem_with(item, hints[name], depth):
            return f"field {name!r}: {problem}"
    return None


def _required_keys(tp: type) -> set[str]:
    # __required_keys__ misses NotRequired[...] written as a string annotation (modules
    # with `from __future__ import annotations`): read the markers from the hints too.
    required = set(getattr(tp, "__required_keys__", ()))
    try:
        marked = typing.get_type_hints(tp, include_extras=True)
    except Exception:
        return required
    for name, hint in marked.items():
        origin = typing.get_origin(hint)
        if origin is typing.NotRequired:
            required.discard(name)
        elif origin is typing.Required:
            required.add(name)
    return required


class TypedChannel(Channel, Generic[T]):
    """``channel`` seen through ``message_type``: `set`/`send` check what is written,
    `get`/`receive` check what is read; lists and counters pass through unchecked."""

    def __init__(self, channel: Channel, message_type: type[T]) -> None:
        if not is_message_type(message_type):
            raise ChannelTypeError(
                f"a typed channel needs a TypedDict or dataclass message type, got "
                f"{_name(message_type)!r}")
        super().__init__(channel.name)
        self._channel = channel
        self._message_type = message_type
        self.backend = channel.backend

    @property
    def message_type(self) -> type[T]:
        return self._message_type

    @property
    def channel(self) -> Channel:
        """The untyped channel underneath."""
        return self._channel

    def _stored(self, key: str, value: Any) -> Any:
        problem = problem_with(value, self._message_type)
        if problem:
            raise ChannelTypeError(f"typed channel key {key!r}: value is not a valid "
                                   f"{self._message_type.__name__} ({problem})")
        if dataclasses.is_dataclass(self._message_type) and not isinstance(value, Mapping):
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return value

    def _loaded(self, key: str, value: Any) -> Any:
        problem = problem_with(value, self._message_type)
        if problem:
            raise ChannelTypeError(f"typed channel key {key!r} holds a value that is not a "
                                   f"valid {self._message_type.__name__} ({problem})")
        if dataclasses.is_dataclass(self._message_type) and isinstance(value, Mapping):
            return self._message_type(**value)
        return value

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        self._channel.set(key, self._stored(key, value), ttl)

    def get(self, key: str, default: Any = None) -> Any:
        found = self._channel.get_many([key])
        return self._loaded(key, found[key]) if key in found else default

    def send(self, key: str, message: T, ttl: int | None = None) -> None:
        """Write a message (checked)."""
        self.set(key, message, ttl)

    def receive(self, key: str, default: T | None = None) -> T | None:
        """Read a message (checked); ``default`` if the key does not exist."""
        return self.get(key, default)

    def exists(self, key: str) -> bool:
        return self._channel.exists(key)

    def delete(self, key: str) -> bool:
        return self._channel.delete(key)

    def keys(self) -> list[str]:
        return self._channel.keys()

    def clear(self) -> None:
        self._channel.clear()

    def append(self, key: str, value: Any, ttl: int | None = None) -> int:
        return self._channel.append(key, value, ttl)

    def prepend(self, key: str, value: Any, ttl: int | None = None) -> int:
        return self._channel.prepend(key, value, ttl)

    def atomic_add(self, key: str, amount: int | float = 1) -> int | float:
        return self._channel.atomic_add(key, amount)

    def lock(self, key: str, timeout: float = DEFAULT_LOCK_TIMEOUT_S
             ) -> AbstractContextManager[None]:
        return self._channel.lock(key, timeout)

    def items(self) -> Iterator[tuple[str, Any]]:
        return self._channel.items()

    def describe(self) -> dict[str, Any]:
        return self._channel.describe()


class ChannelTypeRegistry:
    """Message types by name, for code that picks a type from configuration."""

    _types: ClassVar[dict[str, type]] = {}

    @classmethod
    def register(cls, name: str, message_type: type) -> None:
        if not is_message_type(message_type):
            raise ChannelTypeError(f"cannot register {name!r}: {_name(message_type)!r} is "
                                   "not a TypedDict or dataclass")
        cls._types[name] = message_type

    @classmethod
    def get(cls, name: str) -> type | None:
        return cls._types.get(name)

    @classmethod
    def create_channel(cls, channel: Channel, type_name: str) -> TypedChannel[Any]:
        message_type = cls.get(type_name)
        if message_type is None:
            known = ", ".join(sorted(cls._types)) or "none"
            raise ChannelTypeError(f"message type {type_name!r} is not registered "
                                   f"(registered: {known})")
        return TypedChannel(channel, message_type)
