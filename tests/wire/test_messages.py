"""Wire format: batches, events and rq job payloads round-trip; bad input is refused."""

from __future__ import annotations

import importlib
import math
import zlib

import msgpack
import pytest

from graflow_dist.errors import SignatureError, WireError
from graflow_dist.scheduler.events import NextTask, TaskOutcome
from graflow_dist.scheduler.specs import NodeShape, RetrySettings, TaskSpec
from graflow_dist.wire.messages import DONE, JOB_FUNC, Batch, Event, MsgpackSerializer
from graflow_dist.wire.signing import MAC_LEN, seal
from graflow_dist.wire.signing import MESSAGE_MAGIC as MAGIC
from graflow_dist.wire.specs import (
    decode_spec,
    encode_spec,
    node_shape_from_dict,
    spec_from_dict,
)
from graflow_dist.worker.plain_rq import run_batch


def _batch() -> Batch:
    specs = [TaskSpec("a", "e1.1"), TaskSpec("b", "e1.2", cycle=2, attempt=3, crashes=1,
                                              group="ParallelGroup_1", not_before=12.5)]
    return Batch("sess", "hash", specs, trace_id="trace", default_max_cycles=7)


def _job(body: object) -> bytes:
    return msgpack.packb([JOB_FUNC, None, [body], {}])


def test_batch_round_trip_through_an_rq_job_payload() -> None:
    batch = _batch()
    decoded = Batch.from_job_data(batch.job_data(), "job-1")
    assert decoded.specs == batch.specs
    assert (decoded.session_id, decoded.graph_hash, decoded.trace_id) == ("sess", "hash", "trace")
    assert decoded.default_max_cycles == 7


def test_rq_can_read_our_job_payload_with_our_serializer() -> None:
    # rq decompresses `data` when it can and falls back to the raw bytes: ours is raw
    # msgpack, one encoding, no nested payloads.
    with pytest.raises(zlib.error):
        zlib.decompress(_batch().job_data())
    func, instance, args, kwargs = MsgpackSerializer.loads(_batch().job_data())
    module, _, name = func.rpartition(".")
    assert getattr(importlib.import_module(module), name) is run_batch  # what rq would call
    assert instance is None and kwargs == {} and isinstance(args[0], dict)
    assert Batch.from_body(args[0]).specs == _batch().specs


def _spec_body(spec: list[object]) -> dict[str, object]:
    return {"v": 1, "s": "x", "g": "h", "specs": [spec]}


@pytest.mark.parametrize(
    "data",
    [
        b"\x00garbage",
        b"\xc1",  # never-used msgpack byte
        zlib.compress(_job(_batch().to_body())),  # compressed: not our format
        msgpack.packb(["other.func", None, [{}], {}]),
        _job(b"\x93"),
        msgpack.packb({"not": "a list"}),
        _job(_spec_body(["t", "k", "x", 1, 0, None, 0.0])),  # cycle "x"
        _job(_spec_body(["t", "k", None, 1, 0, None, 0.0])),
        _job(_spec_body(["t", "k", 0, 1, 0, None, math.inf])),  # not_before inf
        _job(_spec_body(["t", "k", -1, 1, 0, None, 0.0])),
        _job(_spec_body(["t", "k", 0, 0, 0, None, 0.0])),  # attempt 0
        _job(_spec_body(["t", "k", True, 1, 0, None, 0.0])),  # a bool is not a count
        _job(_spec_body(["", "k", 0, 1, 0, None, 0.0])),
        _job(_spec_body(["t", "k", 0, 1, 0, 7, 0.0])),  # group 7
        _job({"v": 1, "s": 5, "g": "h", "specs": []}),
    ],
)
def test_malformed_job_payloads_raise_wire_errors_naming_the_job(data: bytes) -> None:
    with pytest.raises(WireError, match="rq job job-9"):
        Batch.from_job_data(data, "job-9")


def test_batch_timeouts_round_trip_and_old_payloads_have_none() -> None:
    batch = _batch()
    assert "to" not in batch.to_body()  # a batch without timeouts looks as before
    assert Batch.from_job_data(batch.job_data(), "job-1").timeouts == {}
    batch.timeouts = {"a": 1.5, "b": 30}
    assert Batch.from_job_data(batch.job_data(), "job-1").timeouts == {"a": 1.5, "b": 30.0}


@pytest.mark.parametrize("timeouts", [{"a": 0}, {"a": -1}, {"a": math.inf}, {"a": math.nan},
                                      {"a": "soon"}, {"a": True}, {1: 2.0}, [1.0]])
def test_bad_batch_timeouts_are_refused(timeouts: object) -> None:
    body = {**_batch().to_body(), "to": timeouts}
    with pytest.raises(WireError, match="rq job job-9"):
        Batch.from_job_data(_job(body), "job-9")


def test_batch_of_an_unknown_wire_version_is_refused() -> None:
    with pytest.raises(WireError, match="unsupported wire version 99"):
        Batch.from_body({"v": 99, "s": "x", "g": "h", "specs": []})


def test_malformed_spec_is_refused() -> None:
    with pytest.raises(WireError, match="malformed task spec"):
        Batch.from_body({"v": 1, "s": "x", "g": "h", "specs": [["only", "two"]]})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("cycle", True, "'cycle' must be an integer"),
    ("attempt", 0, "'attempt' must be >= 1"),
    ("crashes", -1, "'crashes' must be >= 0"),
    ("not_before", float("nan"), "'not_before' must be a finite number"),
    ("not_before", float("inf"), "'not_before' must be a finite number"),
    ("group", 3, "'group' must be a string or null"),
    ("token", "", "valid task id and token"),
    ("token", "a:b", "valid task id and token"),
    ("task_id", "bad\nid", "valid task id and token"),
])
def test_every_spec_field_is_checked_in_both_encodings(field: str, value: object,
                                                       message: str) -> None:
    good = TaskSpec("t", "e.1", cycle=2, attempt=3, crashes=1, group="g", not_before=5.0)
    assert spec_from_dict(good.to_dict(), "x") == good
    assert decode_spec(encode_spec(good), "x") == good
    bad = {**good.to_dict(), field: value}
    with pytest.raises(WireError, match=message):
        spec_from_dict(bad, "state document")
    with pytest.raises(WireError, match=message):
        decode_spec([bad[name] for name in good.to_dict()], "rq job j")


@pytest.mark.parametrize(("change", "message"), [
    ({"node_id": 5}, "'node_id' must be a string"),
    ({"successors": ["a", 1]}, "'successors' must be a list of strings"),
    ({"predecessors": "a"}, "'predecessors' must be a list of strings"),
    ({"max_cycles": 0}, "'max_cycles' must be >= 1"),
    ({"retry": {"jitter": 0}}, "'jitter' must be true or false"),
    ({"retry": {"max_retries": False}}, "'max_retries' must be an integer"),
    ({"code": 7}, "'code' must be a string"),
])
def test_every_node_shape_field_is_checked(change: dict[str, object], message: str) -> None:
    plain = NodeShape("t", successors=["u"], predecessors=["s"], code="h1")
    shared: dict[object, object] = {}
    decoded = node_shape_from_dict(plain.to_dict(), "x", shared)
    assert decoded == plain
    assert node_shape_from_dict(plain.to_dict(), "x", shared).code is decoded.code
    group = NodeShape("g", members=["m"], retry=RetrySettings(2, 0.5))
    assert node_shape_from_dict(group.to_dict(), "x") == group
    with pytest.raises(WireError, match=message):
        node_shape_from_dict({**plain.to_dict(), **change}, "run shape")


def test_event_round_trip_keeps_every_field() -> None:
    group = NodeShape("g", successors=["j"], members=["m"])
    outcome = TaskOutcome(iterate=True, next_tasks=[
        NextTask("d", True, NodeShape("d")),
        NextTask("g", False, group, (NodeShape("m"), NodeShape("j", predecessors=["g"]))),
    ], terminate="enough")
    event = Event(DONE, "sess", token="e.3", task_id="t", worker="w1", outcome=outcome,
                  dynamic={"x": b"blob"}, error="boom", error_type="ValueError", fatal=True,
                  error_data={"task_id": "t"}, result=b"m\x01")
    assert Event.decode(event.encode()) == event


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (seal(b"\xc1"), "not valid msgpack"),
        (seal(msgpack.packb([1, 2])), "expected a map"),
        (seal(msgpack.packb({"v": 1, "k": "explode", "s": "x"})), "unknown event kind"),
        (seal(msgpack.packb({"v": 1, "k": "done"})), "missing field"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "o": [1]})), "expected a map"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "o": {"next_tasks": "x"}})),
         "next_tasks must be a list"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x",
                             "o": {"next_tasks": [{"task_id": "g", "nodes": "m"}]}})),
         "next_task nodes must be a list"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x",
                             "o": {"next_tasks": [{"task_id": "g", "nodes": [{"x": 1}]}]}})),
         "node_id"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "dyn": {"t": "not bytes"}})),
         "signed blobs"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "r": 5})), "must be bytes"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "fatal": "yes"})), "true or false"),
        # fields a plain report has: checked on the fast path too
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "t": 5})), "'t' must be a string"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "qa": -1.0})), "'qa' must be >= 0"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "du": True})), "finite number"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "at": float("nan")})),
         "finite number"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "x", "r": "text"})), "must be bytes"),
        (seal(msgpack.packb({"v": 2, "k": "done", "s": "x"})), "unsupported wire version"),
        (seal(msgpack.packb({"v": 1, "k": "done", "s": "a:b"})), "invalid session id"),
    ],
)
def test_malformed_events_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        Event.decode(raw)


def test_reports_carry_times_traceback_and_preview_and_old_payloads_still_decode() -> None:
    from graflow_dist.wire.messages import DONE, Event, packb

    event = Event(DONE, "s", token="t", task_id="a", queued_at=1.0, started_at=2.0,
                  finished_at=2.5, duration_s=0.5, traceback="Traceback ...", preview="[1, 2]")
    back = Event.decode(event.encode())
    assert (back.queued_at, back.started_at, back.finished_at, back.duration_s,
            back.traceback, back.preview) == (1.0, 2.0, 2.5, 0.5, "Traceback ...", "[1, 2]")
    old = Event.decode(seal(packb({"v": 1, "k": DONE, "s": "s", "t": "t", "task": "a",
                                   "at": 3.0})))
    assert (old.started_at, old.traceback, old.preview) == (0.0, "", "")


def test_task_records_and_worker_stats_round_trip_and_reject_bad_fields() -> None:
    import pytest

    from graflow_dist.errors import WireError
    from graflow_dist.wire.messages import packb
    from graflow_dist.wire.task_records import (
        MAX_PREVIEW_CHARS,
        TaskRecord,
        WorkerStats,
        preview,
    )

    record = TaskRecord("a", "failed", attempts=2, worker="w", queued_at=1.0, started_at=1.5,
                        duration_s=0.25, error="E: x", error_type="E", traceback="tb")
    back = TaskRecord.decode("a", record.encode())
    assert back == record and back.queue_wait_s == 0.5
    with pytest.raises(WireError, match="unknown outcome 'weird'"):
        TaskRecord.decode("a", packb({"o": "weird"}))
    with pytest.raises(WireError, match="'n' must be >= 0"):
        TaskRecord.decode("a", packb({"o": "done", "n": -1}))
    stats = WorkerStats("w", queue="q", pid=7, tasks_done=3, current_tasks=["a", "b"])
    assert WorkerStats.decode("w", stats.encode()) == stats
    assert len(preview(list(range(100_000)))) <= MAX_PREVIEW_CHARS
    assert len(preview("x" * 10_000)) <= MAX_PREVIEW_CHARS


def test_events_are_sealed_and_unsigned_or_forged_ones_refused() -> None:
    event = Event(DONE, "sess", token="e.3", task_id="t", result=b"m\x01")
    raw = event.encode()
    body = raw[len(MAGIC) + MAC_LEN:]
    with pytest.raises(SignatureError, match="unsigned message"):
        Event.decode(body)  # the msgpack body alone: what a writer without the secret has
    forged = bytearray(raw)
    forged[-1] ^= 0x01  # the result changed
    with pytest.raises(SignatureError, match="does not verify"):
        Event.decode(bytes(forged))
    with pytest.raises(SignatureError, match="does not verify"):
        Event.decode(seal(body, secret=b"x" * 32))  # sealed with another secret
    assert Event.decode(raw) == event


def test_an_event_over_the_message_limit_is_refused_unread() -> None:
    raw = Event(DONE, "sess", token="e.3", result=b"x" * 1000).encode()
    with pytest.raises(WireError, match="over the 500-byte message limit"):
        Event.decode(raw, max_bytes=500)


@pytest.mark.parametrize("session_id", ["*", "../../..", "a:b", "", "x" * 200, "é"])
def test_events_for_invalid_session_ids_are_refused(session_id: str) -> None:
    raw = seal(msgpack.packb({"v": 1, "k": "cancel", "s": session_id}))
    with pytest.raises(WireError, match="invalid session id"):
        Event.decode(raw)


def test_the_size_estimate_of_a_completion_counts_its_continuation() -> None:
    """A worker decides to continue only if the completion with its proposal stays
    within the message limit: the estimate must grow by the proposal's encoding."""
    done = Event(DONE, "s" * 32, token="t.1", task_id="step", result=b"r" * 1000)
    proposal = TaskSpec("next-" + "x" * 200, "c" * 24, 1)
    grown = Event(DONE, "s" * 32, token="t.1", task_id="step", result=b"r" * 1000,
                  continuation=proposal)
    assert grown.size_estimate() - done.size_estimate() >= 200
    assert len(grown.encode()) <= grown.size_estimate()
