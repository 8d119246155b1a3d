"""The three checkpoint files and their contents.

``BASE.pkl``: a signed envelope (msgpack) around the graph (its manifest and signed code
blobs, `graflow_dist.wire.code`; schema 1 held one cloudpickled graph instead) and the
channel data (or, for a Redis channel, its session reference), plus run settings
without secrets. ``BASE.state.json``: the frontier. ``BASE.meta.json``: the commit
marker, written last.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack

from graflow_dist.errors import CheckpointError, SignatureError, WireError
from graflow_dist.names import is_session_id
from graflow_dist.scheduler.frontier import FrontierSnapshot
from graflow_dist.wire import fields as f
from graflow_dist.wire.signing import is_content_hash, sign, verify
from graflow_dist.wire.specs import frontier_from_dict

# 2: the graph as a manifest and code blobs (1: one pickled graph, still read).
SCHEMA_VERSION = 2
SUPPORTED_SCHEMA_VERSIONS = frozenset({1, 2})
PAYLOAD_FORMAT = "graflow-dist/context"

PKL, STATE, META = ".pkl", ".state.json", ".meta.json"
# .state.json and .meta.json are small; a bigger one is not ours (and is not parsed).
MAX_JSON_BYTES = 256 * 1024 * 1024
SUFFIXES = (PKL, STATE, META)


@dataclass
class CheckpointMetadata:
    """What ``BASE.meta.json`` holds."""

    checkpoint_id: str
    session_id: str
    created_at: str
    steps: int
    start_node: str | None = None
    backend: dict[str, Any] = field(default_factory=dict)
    user_metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    path: str | None = None  # where it was read from; not written

    @classmethod
    def create(
        cls,
        session_id: str,
        steps: int,
        start_node: str | None = None,
        backend: dict[str, Any] | None = None,
        user_metadata: dict[str, Any] | None = None,
    ) -> CheckpointMetadata:
        now = datetime.now(UTC)
        return cls(
            checkpoint_id=f"{session_id}_{steps}_{int(now.timestamp())}_{uuid.uuid4().hex[:8]}",
            session_id=session_id,
            created_at=now.isoformat(),
            steps=steps,
            start_node=start_node,
            backend=dict(backend or {}),
            user_metadata=dict(user_metadata or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | None = None) -> CheckpointMetadata:
        """Every field checked (`WireError` naming it)."""
        what = "metadata"
        data = f.mapping(data, what)
        session_id = f.text(data, "session_id", what)
        if not is_session_id(session_id):
            raise WireError(f"{what}: invalid session id {f.shown(session_id)}")
        return cls(
            checkpoint_id=f.text(data, "checkpoint_id", what),
            session_id=session_id,
            created_at=f.text(data, "created_at", what),
            steps=f.integer(data, "steps", what, minimum=0),
            start_node=f.optional_text(data, "start_node", what),
            backend=dict(f.submap(data, "backend", what, {}) or {}),
            user_metadata=dict(f.submap(data, "user_metadata", what, {}) or {}),
            schema_version=f.integer(data, "schema_version", what, SCHEMA_VERSION),
            path=path,
        )


@dataclass
class ContextPayload:
    """The content of ``BASE.pkl``: user code and data stay pickled (and signed), so a
    coordinator can write a checkpoint without importing the user's modules.

    The graph is ``graph_manifest`` plus ``graph_code`` (code blob hash -> signed
    blob); a schema 1 checkpoint has ``graph_blob`` (the signed, pickled graph) instead.
    """

    session_id: str
    channel: dict[str, Any]
    start_node: str | None
    max_steps: int
    default_max_cycles: int
    default_max_retries: int
    graph_manifest: bytes = b""
    graph_code: dict[str, bytes] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    dynamic: dict[str, bytes] = field(default_factory=dict)  # signed tasks added at run time
    graph_blob: bytes = b""

    def encode(self) -> bytes:
        body = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if not body["graph_blob"]:
            del body["graph_blob"]
        body["format"] = PAYLOAD_FORMAT
        body["schema_version"] = SCHEMA_VERSION
        return sign(msgpack.packb(body, use_bin_type=True))

    @classmethod
    def decode(cls, blob: bytes, path: str) -> ContextPayload:
        try:
            body = msgpack.unpackb(verify(blob, path), raw=False, strict_map_key=False)
        except SignatureError as exc:
            raise CheckpointError(path, str(exc).removeprefix(f"{path}: ")) from None
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CheckpointError(path, f"corrupt context payload ({exc})") from None
        if not isinstance(body, dict) or body.get("format") != PAYLOAD_FORMAT:
            raise CheckpointError(path, "not a graflow-dist context payload")
        _check_schema(body.get("schema_version"), path)
        try:
            return cls._from_body(body)
        except WireError as exc:
            raise CheckpointError(path, str(exc)) from None

    @classmethod
    def _from_body(cls, body: dict[str, Any]) -> ContextPayload:
        what = "context payload"
        session_id = f.text(body, "session_id", what)
        if not is_session_id(session_id):
            raise WireError(f"{what}: invalid session id {f.shown(session_id)}")
        # Schema 1: one pickled graph; later: a manifest and its code blobs.
        graph_field = "graph_blob" if body.get("schema_version") == 1 else "graph_manifest"
        graph = body.get(graph_field)
        if not isinstance(graph, bytes):
            raise WireError(f"{what}: field {graph_field!r} must be bytes")
        code = f.submap(body, "graph_code", what, {})
        if not all(is_content_hash(h) and isinstance(v, bytes) for h, v in code.items()):
            raise WireError(f"{what}: the graph's code must be blobs by content hash")
        channel = f.submap(body, "channel", what)
        values = f.submap(channel, "values", what, {})
        if not all(isinstance(v, bytes) for v in values.values()):
            raise WireError(f"{what}: channel values must be encoded bytes")
        f.text(channel, "backend", what)
        dynamic = f.submap(body, "dynamic", what, {})
        if not all(isinstance(v, bytes) for v in dynamic.values()):
            raise WireError(f"{what}: dynamic tasks must be signed blobs")
        return cls(
            session_id=session_id, channel=channel, graph_code=dict(code),
            **{graph_field: graph},
            start_node=f.optional_text(body, "start_node", what),
            max_steps=f.integer(body, "max_steps", what, minimum=1),
            default_max_cycles=f.integer(body, "default_max_cycles", what, minimum=1),
            default_max_retries=f.integer(body, "default_max_retries", what, minimum=0),
            config=dict(f.submap(body, "config", what, {})),
            dynamic=dict(dynamic),
        )


def _check_schema(version: Any, path: str) -> None:
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise CheckpointError(
            path,
            f"unknown schema_version {version!r} (this graflow-dist reads "
            f"{sorted(SUPPORTED_SCHEMA_VERSIONS)}); was it written by a newer release?",
        )


def state_document(
    frontier: FrontierSnapshot,
    *,
    trace_id: str,
    start_node: str | None,
    max_steps: int,
    backend: dict[str, Any],
) -> dict[str, Any]:
    """The ``.state.json`` document for ``frontier``."""
    body = frontier.to_dict()
    return {
        "schema_version": SCHEMA_VERSION,
        "session_id": frontier.session_id,
        "trace_id": trace_id,
        "start_node": start_node,
        "steps": frontier.steps,
        "max_steps": max_steps,
        "completed_tasks": body.pop("completed_tasks"),
        "pending_tasks": body.pop("pending_tasks"),
        "cycle_counts": body.pop("cycle_counts"),
        "backend": backend,
        "frontier": {k: v for k, v in body.items() if k not in ("session_id", "steps")},
    }


def parse_state(raw: bytes, path: str) -> tuple[FrontierSnapshot, dict[str, Any]]:
    """Validate a ``.state.json`` and return the frontier and the document."""
    doc = parse_json(raw, path)
    _check_schema(doc.get("schema_version"), path)
    what = "state document"
    try:
        rest = f.submap(doc, "frontier", what, {})
        for name in ("session_id", "steps", "completed_tasks", "pending_tasks",
                     "cycle_counts"):
            if name not in doc:
                raise WireError(f"{what}: missing field {name!r}")
        frontier = frontier_from_dict(
            {**rest, **{k: doc[k] for k in ("session_id", "steps", "completed_tasks",
                                             "pending_tasks", "cycle_counts")}}, what)
        if not is_session_id(frontier.session_id):
            raise WireError(f"{what}: invalid session id {f.shown(frontier.session_id)}")
    except WireError as exc:
        raise CheckpointError(path, f"malformed {exc}") from None
    return frontier, doc


def parse_json(raw: bytes, path: str) -> dict[str, Any]:
    if len(raw) > MAX_JSON_BYTES:
        raise CheckpointError(path, f"{len(raw)} bytes: too large for a checkpoint document")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError too
        raise CheckpointError(path, f"corrupt or truncated JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(path, "expected a JSON object")
    return doc


def parse_meta(raw: bytes, path: str) -> CheckpointMetadata:
    doc = parse_json(raw, path)
    _check_schema(doc.get("schema_version", SCHEMA_VERSION), path)
    try:
        return CheckpointMetadata.from_dict(doc, path)
    except WireError as exc:
        raise CheckpointError(path, f"malformed {exc}") from None


def dump_json(doc: dict[str, Any]) -> bytes:
    """``doc`` as JSON for people and for 10,000-task frontiers alike: the keys of the
    top two levels and the items of their lists on lines of their own, each item
    compact. (``json.dumps(indent=...)`` falls back to the pure-Python encoder, which
    took most of the time of writing a large checkpoint.)"""
    return (_layout(doc, 2, "") + "\n").encode("utf-8")


def _layout(value: Any, levels: int, indent: str) -> str:
    inner = indent + "  "
    if levels and isinstance(value, dict) and value:
        items = (f"{inner}{_compact(str(k))}: {_layout(v, levels - 1, inner)}"
                 for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if levels and isinstance(value, list) and value:
        return "[\n" + ",\n".join(inner + _compact(v) for v in value) + f"\n{indent}]"
    return _compact(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


_compact = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode
