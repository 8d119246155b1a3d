"""Wire format: batches, events and rq job payloads round-trip; bad input is refused."""

from __future__ import annotations

import zlib

import msgpack
import pytest

from graflow_dist.errors import WireError
from graflow_dist.scheduler.specs import TaskSpec
from graflow_dist.wire.messages import (
    DONE,
    Batch,
    Event,
    MsgpackSerializer,
    batch_from_rq_data,
    rq_job_data,
)


def _batch() -> Batch:
    specs = [TaskSpec("a", "e1.1"), TaskSpec("b", "e1.2", cycle=2, attempt=3, crashes=1,
                                              group="ParallelGroup_1", not_before=12.5)]
    return Batch("sess", "hash", specs, trace_id="trace", default_max_cycles=7)


def test_batch_round_trip_through_an_rq_job_payload() -> None:
    batch = _batch()
    decoded = batch_from_rq_data(rq_job_data(batch.encode()), "job-1")
    assert decoded.specs == batch.specs
    assert (decoded.session_id, decoded.graph_hash, decoded.trace_id) == ("sess", "hash", "trace")
    assert decoded.default_max_cycles == 7


def test_rq_can_read_our_job_payload_with_our_serializer() -> None:
    func, instance, args, kwargs = MsgpackSerializer.loads(zlib.decompress(
        rq_job_data(_batch().encode())))
    assert func == "graflow_dist.worker.batch.run_batch"
    assert instance is None and kwargs == {} and isinstance(args[0], bytes)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00garbage",
        zlib.compress(b"\xc1"),  # never-used msgpack byte
        zlib.compress(msgpack.packb(["other.func", None, [b"x"], {}])),
        zlib.compress(msgpack.packb(["graflow_dist.worker.batch.run_batch", None, [b"\x93"], {}])),
        zlib.compress(msgpack.packb({"not": "a list"})),
    ],
)
def test_malformed_job_payloads_raise_wire_errors_naming_the_job(data: bytes) -> None:
    with pytest.raises(WireError, match="rq job job-9"):
        batch_from_rq_data(data, "job-9")


def test_batch_of_an_unknown_wire_version_is_refused() -> None:
    raw = msgpack.packb({"v": 99, "s": "x", "g": "h", "specs": []})
    with pytest.raises(WireError, match="unsupported wire version 99"):
        Batch.decode(raw)


def test_malformed_spec_is_refused() -> None:
    raw = msgpack.packb({"v": 1, "s": "x", "g": "h", "specs": [["only", "two"]]})
    with pytest.raises(WireError, match="malformed task spec"):
        Batch.decode(raw)


def test_event_round_trip_keeps_every_field() -> None:
    event = Event(DONE, "sess", token="e.3", task_id="t", worker="w1",
                  outcome={"iterate": True}, dynamic={"x": b"blob"}, error="boom",
                  error_type="ValueError", fatal=True, tokens=["a", "b"])
    assert Event.decode(event.encode()) == event


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xc1", "not valid msgpack"),
        (msgpack.packb([1, 2]), "expected a map"),
        (msgpack.packb({"v": 1, "k": "explode", "s": "x"}), "unknown event kind"),
        (msgpack.packb({"v": 1, "k": "done"}), "missing field"),
    ],
)
def test_malformed_events_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        Event.decode(raw)
