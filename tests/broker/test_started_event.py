"""A small run its client started travels whole in its submission event: what the
coordinator takes over from the event is exactly what the submission wrote to Redis
(so it need not read it back), and a malformed event is refused with a clear error."""

from __future__ import annotations

import copy
import dataclasses
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
    record, shape, frontier = broker.runs.started(event)
    stored_record, stored_shape, stored_frontier = broker.runs.load(sid)
    assert dataclasses.replace(record, updated_at=None) == dataclasses.replace(
        stored_record, updated_at=None)
    assert record.status.value == "running" and record.incarnation
    assert shape.nodes == stored_shape.nodes  # (HSCAN's order is the hash table's)
    assert frontier.to_dict() == stored_frontier.to_dict()
    assert [s.task_id for s in frontier.pending_tasks] == ["head"]


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
    return body


@pytest.mark.parametrize("how", [
    "no record", "record field not text", "record without status", "odd shape",
    "shape entry not bytes", "node not msgpack", "frontier of another run",
    "frontier names an unknown task", "frontier not a map"])
def test_a_malformed_event_is_refused_naming_the_run(redis_client: redis.Redis,
                                                     how: str) -> None:
    _broker, sid, event = submitted(redis_client, fan(2))
    with pytest.raises(WireError, match=f"run '{sid}' submission event"):
        decode_started(sid, _broken(event.started, how))
