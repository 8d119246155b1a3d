"""A small run its client started travels whole in its submission event: what the
coordinator takes over from the event is exactly what the submission wrote to Redis
(so it need not read it back), and a malformed event is refused with a clear error."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import redis

from graflow_dist import Client, task, workflow
from graflow_dist.broker import Broker
from graflow_dist.broker.frontier import STARTED_EVENT_MAX_NODES, decode_started
from graflow_dist.errors import WireError
from graflow_dist.wire.messages import SUBMIT, Event


def fan(width: int) -> Any:
    with workflow("fan") as wf:

        @task
        def head() -> int:
            return 1

        @task
        def join() -> int:
            return 2

        leaves = [task(f"leaf_{i}")(lambda: None) for i in range(width)]
        group = leaves[0]
        for leaf in leaves[1:]:
            group = group | leaf
        head >> group >> join
    return wf


def submitted(redis_client: redis.Redis, wf: Any) -> tuple[Broker, str, Event]:
    """Submit ``wf`` (no coordinator runs) and return its submission event."""
    run = Client(redis_client=redis_client).submit(wf)
    broker = Broker(redis_client)
    events = [Event.decode(fields[b"d"]) for _id, fields in
              redis_client.xrange(broker.keyspace.events)]
    event, = [e for e in events if e.kind == SUBMIT and e.session_id == run.session_id]
    return broker, run.session_id, event


def test_a_small_started_run_is_the_same_from_its_event_as_from_redis(
        redis_client: redis.Redis) -> None:
    broker, sid, event = submitted(redis_client, fan(10))
    assert event.started
    record, shape, frontier = broker.runs.started([event])[sid]
    stored_record, stored_shape, stored_frontier = broker.runs.load(sid)
    assert record == stored_record
    assert record.status.value == "running" and record.incarnation
    assert shape.nodes == stored_shape.nodes  # (HSCAN's order is the hash table's)
    assert frontier.to_dict() == stored_frontier.to_dict()
    assert [s.task_id for s in frontier.pending_tasks] == ["head"]


@pytest.mark.parametrize("change", ["cancelled", "failed on takeover", "submitted again",
                                    "gone"])
def test_a_run_that_is_no_longer_what_its_event_says_is_read_from_redis(
        redis_client: redis.Redis, change: str) -> None:
    broker, sid, event = submitted(redis_client, fan(3))
    meta = broker.keyspace.run(sid).meta
    if change == "cancelled":
        redis_client.hset(meta, "status", "cancelled")
    elif change == "failed on takeover":
        redis_client.hset(meta, "status", "failed")
    elif change == "submitted again":
        redis_client.hset(meta, "incarnation", "another")
    else:
        redis_client.delete(meta)
    assert broker.runs.started([event]) == {sid: None}


def test_a_submission_sent_again_after_its_code_was_lost_writes_its_frontier(
        redis_client: redis.Redis) -> None:
    client = Client(redis_client=redis_client)
    wf = fan(3)
    client.submit(wf)  # the client now counts on the graph's code being stored
    broker = Broker(redis_client)
    for key in redis_client.scan_iter(f"{broker.keyspace.prefix}:code:*"):
        redis_client.delete(key)  # Redis lost it: the next submission is refused once
    run = client.submit(wf)
    _record, _shape, frontier = broker.runs.load(run.session_id)
    assert [s.task_id for s in frontier.pending_tasks] == ["head"]
    assert len(frontier.active) == 6


def test_a_large_run_is_not_carried_by_its_event(redis_client: redis.Redis) -> None:
    _broker, _sid, event = submitted(redis_client, fan(STARTED_EVENT_MAX_NODES))
    assert event.started == {}


def _broken(body: dict[str, Any], how: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    if how == "no record":
        del body["m"]
    elif how == "record field not text":
        body["m"]["max_steps"] = 5
    elif how == "record without status":
        del body["m"]["status"]
    elif how == "odd shape":
        body["sh"] = body["sh"][:-1]
    elif how == "shape entry not bytes":
        body["sh"][1] = "text"
    elif how == "node not msgpack":
        body["sh"][1] = b"\xc1"
    elif how == "frontier of another run":
        body["fr"]["session_id"] = "f" * 32
    elif how == "frontier names an unknown task":
        body["fr"]["completed_tasks"] = ["ghost"]
    elif how == "frontier not a map":
        body["fr"] = [1]
    elif how == "not a map":
        body = [body]
    elif how == "not started by its client":
        body["m"]["status"] = "submitted"
    elif how == "counters not the record's":
        body["fr"]["dispatch_seq"] += 1
    elif how == "a pending token twice":
        body["fr"]["pending_tasks"] *= 2
    return body


@pytest.mark.parametrize("how", [
    "no record", "record field not text", "record without status", "odd shape",
    "shape entry not bytes", "node not msgpack", "frontier of another run",
    "frontier names an unknown task", "frontier not a map", "not a map",
    "not started by its client", "counters not the record's", "a pending token twice"])
def test_a_malformed_event_is_refused_naming_the_run(redis_client: redis.Redis,
                                                     how: str) -> None:
    _broker, sid, event = submitted(redis_client, fan(2))
    with pytest.raises(WireError, match=f"run '{sid}' submission event"):
        decode_started(sid, _broken(event.started, how))
