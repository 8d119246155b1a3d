"""Every decoder of what is read from Redis or disk, fed random bytes and mutations of
valid payloads: it returns a valid value or raises our error (a `GraflowError`), never
anything else, and never hangs (hypothesis' deadline)."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graflow_dist.broker.connection import connect, mask_url
from graflow_dist.broker.jobs import decode_jobmap
from graflow_dist.broker.record import RunRecord
from graflow_dist.checkpoint.format import (
    ContextPayload,
    parse_meta,
    parse_state,
    state_document,
)
from graflow_dist.checkpoint.redis_store import public_path
from graflow_dist.coordinator.checkpoints import checkpoint_location
from graflow_dist.errors import GraflowError
from graflow_dist.names import is_session_id, is_task_id
from graflow_dist.scheduler.events import CheckpointRequest, NextTask, RunStatus, TaskOutcome
from graflow_dist.scheduler.frontier import FrontierSnapshot, GroupProgress
from graflow_dist.scheduler.specs import GroupPolicySpec, NodeShape, TaskSpec
from graflow_dist.wire import fields
from graflow_dist.wire.messages import CANCEL, DONE, FAIL, Batch, Event, packb
from graflow_dist.wire.signing import seal, sign, unseal, verify
from graflow_dist.wire.specs import (
    decode_spec,
    encode_spec,
    frontier_from_dict,
    group_progress_from_dict,
    node_shape_from_dict,
    outcome_from_dict,
    spec_from_dict,
)
from graflow_dist.wire.values import decode_value, encode_value

PROPERTY = settings(max_examples=150, deadline=1000,
                    suppress_health_check=[HealthCheck.too_slow])

SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=True) | st.text(max_size=12) | st.binary(max_size=12))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4),
    max_leaves=16)


def ours_or_value(decode: Callable[[], Any]) -> Any:
    """Run ``decode``: our error (None back) or its value; anything else fails."""
    try:
        return decode()
    except GraflowError:
        return None


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """``valid`` with one place replaced by a random value, removed, or given a new key."""
    value = copy.deepcopy(valid)
    paths = _paths(value)
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if not path:
        return draw(VALUES) if action == "replace" else value
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "replace":
        parent[last] = draw(VALUES)
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=6))] = draw(VALUES)
    else:
        parent.insert(last, draw(VALUES))
    return value


SPEC = TaskSpec("train", "e1.7", cycle=2, attempt=3, crashes=1, group="G", not_before=12.5)
SHAPE = NodeShape("G", successors=["b"], predecessors=["a"], members=["x", "y"],
                  policy=GroupPolicySpec("at_least_n", 1, ("x",)))
OUTCOME = TaskOutcome(iterate=True, next_tasks=[NextTask("d", True, NodeShape("d"))],
                      terminate="done", checkpoint=CheckpointRequest("ck/a", {"k": 1}))
FRONTIER = FrontierSnapshot("s1", steps=4, completed_tasks=["a"], released=["a"],
                            pending_tasks=[SPEC], cycle_counts={"train": 2},
                            groups={"G": GroupProgress(["x"], ["y"], {})}, active=["G"],
                            dispatch_seq=7, crash_workers={"train": ["w1"]})
EVENTS = [Event(DONE, "s1", token="e1.7", task_id="train", worker="w1", outcome=OUTCOME,
                dynamic={"d": b"blob"}, result=encode_value({"x": [1, 2]})),
          Event(FAIL, "s1", token="e1.8", task_id="t", error="boom", error_type="ValueError",
                fatal=True, error_data={"task_id": "t"}),
          Event(CANCEL, "s1", error="stop")]


def _body(event: Event) -> dict[str, Any]:
    return msgpack.unpackb(unseal(event.encode(), "event"), raw=False)


@PROPERTY
@given(st.binary(max_size=600))
def test_event_decode_of_random_bytes(raw: bytes) -> None:
    ours_or_value(lambda: Event.decode(raw))
    ours_or_value(lambda: Event.decode(seal(raw)))  # past the MAC: the body decoder


@PROPERTY
@given(st.data())
def test_event_decode_of_mutated_events(data: st.DataObject) -> None:
    body = data.draw(mutated(_body(data.draw(st.sampled_from(EVENTS)))))
    event = ours_or_value(lambda: Event.decode(seal(packb(body))))
    if event is not None:
        assert is_session_id(event.session_id) and isinstance(event.outcome, TaskOutcome)
        assert all(is_task_id(n.task_id) for n in event.outcome.next_tasks)
        assert event.result is None or isinstance(event.result, bytes)


@PROPERTY
@given(st.data())
def test_batch_decode_of_random_bytes_and_mutations(data: st.DataObject) -> None:
    ours_or_value(lambda: Batch.from_job_data(data.draw(st.binary(max_size=300)), "j"))
    job = msgpack.unpackb(Batch("s1", "h", [SPEC], "tr", 5).job_data(), raw=False)
    raw = packb(data.draw(mutated(job)))
    batch = ours_or_value(lambda: Batch.from_job_data(raw, "j"))
    if batch is not None:
        assert is_session_id(batch.session_id) and batch.default_max_cycles >= 1
        assert all(s.attempt >= 1 and s.cycle >= 0 and math.isfinite(s.not_before)
                   for s in batch.specs)


@PROPERTY
@given(st.data())
def test_spec_decoders(data: st.DataObject) -> None:
    spec = ours_or_value(lambda: decode_spec(data.draw(mutated(encode_spec(SPEC))), "s"))
    if spec is not None:
        assert is_task_id(spec.task_id) and spec.attempt >= 1 and spec.not_before >= 0
    ours_or_value(lambda: spec_from_dict(data.draw(mutated(SPEC.to_dict())), "s"))
    ours_or_value(lambda: node_shape_from_dict(data.draw(mutated(SHAPE.to_dict())), "n"))
    ours_or_value(lambda: outcome_from_dict(data.draw(mutated(OUTCOME.to_dict())), "o"))
    ours_or_value(lambda: group_progress_from_dict(data.draw(mutated(
        GroupProgress(["x"], ["y"], {"z": "e"}).to_dict())), "g"))
    frontier = ours_or_value(lambda: frontier_from_dict(
        data.draw(mutated(FRONTIER.to_dict())), "f"))
    if frontier is not None:
        assert frontier.steps >= 0
        assert all(isinstance(v, int) and v >= 0 for v in frontier.cycle_counts.values())


@PROPERTY
@given(st.data())
def test_run_record_decoder(data: st.DataObject) -> None:
    meta = {k.encode(): str(v).encode() for k, v in RunRecord(
        "s1", status=RunStatus.RUNNING, graph_hash="h", queue="graflow", start_node="a",
        workflow="wf", incarnation="i").settings_meta().items()}
    key = data.draw(st.sampled_from(sorted(meta)))
    meta[key] = data.draw(st.binary(max_size=20) | st.sampled_from(
        [b"abc", b"-1", b"nan", b"inf", b"1e999", b"9" * 5000, b"\xff\xfe", b""]))
    record = ours_or_value(lambda: RunRecord.from_meta("s1", meta))
    if record is not None:
        assert record.max_steps >= 1 and record.crash_limit >= 1 and record.running >= 0


@PROPERTY
@given(st.binary(max_size=200), st.data())
def test_jobmap_and_value_decoders(raw: bytes, data: st.DataObject) -> None:
    entry = ours_or_value(lambda: decode_jobmap(raw, "j"))
    if entry is not None:
        assert is_session_id(entry[0])
    mutated_entry = packb(data.draw(mutated(["s1", ["e.1", "e.2"]])))
    ours_or_value(lambda: decode_jobmap(mutated_entry, "j"))
    ours_or_value(lambda: decode_value(raw, "k"))
    encoded = bytearray(encode_value(data.draw(VALUES)))
    if encoded:
        encoded[data.draw(st.integers(0, len(encoded) - 1))] ^= data.draw(st.integers(1, 255))
    ours_or_value(lambda: decode_value(bytes(encoded), "k"))
    ours_or_value(lambda: verify(raw, "blob"))


def _state_doc() -> dict[str, Any]:
    return state_document(FRONTIER, trace_id="t", start_node=None, max_steps=100,
                          backend={"channel": "memory"})


@PROPERTY
@given(st.data())
def test_checkpoint_documents(data: st.DataObject) -> None:
    state = json.dumps(data.draw(mutated(_state_doc())), default=repr).encode()
    parsed = ours_or_value(lambda: parse_state(state, "x.state.json"))
    if parsed is not None:
        assert is_session_id(parsed[0].session_id)
    meta = {"checkpoint_id": "c", "session_id": "s1", "created_at": "2026-11-30T00:00:00",
            "steps": 1, "schema_version": 1, "user_metadata": {}, "backend": {}}
    raw_meta = json.dumps(data.draw(mutated(meta)), default=repr).encode()
    ours_or_value(lambda: parse_meta(raw_meta, "x.meta.json"))
    ours_or_value(lambda: parse_meta(data.draw(st.binary(max_size=100)), "x.meta.json"))
    payload = ContextPayload("s1", b"graph", {"backend": "memory", "values": {"k": b"m\x01"}},
                             None, 10, 5, 0)
    body = msgpack.unpackb(verify(payload.encode(), "p"), raw=False)
    signed = sign(packb(data.draw(mutated(body))))
    ours_or_value(lambda: ContextPayload.decode(signed, "x.pkl"))


@pytest.mark.parametrize(("doc", "cause"), [
    ({"schema_version": [1]}, "unknown schema_version"),
    ({"cycle_counts": []}, "cycle_counts"),
    ({"pending_tasks": [{"task_id": "t", "token": "e.1", "not_before": "soon"}]},
     "not_before"),
    ({"steps": "3"}, "steps"),
    ({"session_id": "../../x"}, "invalid session id"),
])
def test_tampered_state_documents_give_one_clear_checkpoint_error(doc: dict[str, Any],
                                                                 cause: str) -> None:
    raw = json.dumps({**_state_doc(), **doc}).encode()
    with pytest.raises(GraflowError, match=cause) as raised:
        parse_state(raw, "run.state.json")
    assert type(raised.value).__name__ == "CheckpointError"
    assert "run.state.json" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("meta", [{"schema_version": [1]}, {"steps": "x"}, {"steps": -1},
                                  {"session_id": 5}, {"checkpoint_id": None}])
def test_tampered_meta_documents_give_one_clear_checkpoint_error(meta: dict[str, Any]) -> None:
    base = {"checkpoint_id": "c", "session_id": "s1", "created_at": "now", "steps": 1}
    with pytest.raises(GraflowError, match="run.meta.json") as raised:
        parse_meta(json.dumps({**base, **meta}).encode(), "run.meta.json")
    assert type(raised.value).__name__ == "CheckpointError"


@PROPERTY
@given(st.text(max_size=80))
def test_text_fields_and_paths(value: str) -> None:
    ours_or_value(lambda: fields.int_text(value, "n"))
    ours_or_value(lambda: fields.float_text(value, "x"))
    ours_or_value(lambda: public_path("redis://h:6379/0/" + value))
    ours_or_value(lambda: public_path(value))
    location = ours_or_value(lambda: checkpoint_location("/srv/ck", value))
    if location is not None:
        assert location.startswith("/srv/ck/")
    stored = ours_or_value(lambda: checkpoint_location("redis://h:6379/0/ck", value))
    if stored is not None:
        assert stored.startswith("redis://h:6379/0/ck/") and ".." not in stored.split("/")


@settings(max_examples=100, deadline=1000)
@given(st.text(max_size=60))
def test_redis_urls(url: str) -> None:
    mask_url(url)
    client = ours_or_value(lambda: connect(url, retries=0))
    if client is not None:
        client.close()
