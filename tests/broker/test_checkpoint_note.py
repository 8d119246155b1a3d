"""Where a run's last checkpoint went is noted on its record, which workers keep
writing (running counts): a note that raced such a write is not lost."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from graflow_dist.broker import Broker
from graflow_dist.broker.keys import RunField

SESSION = "0123456789abcdef0123456789abcdef"


def record(redis_client: redis.Redis) -> tuple[Broker, str]:
    broker = Broker(redis_client)
    meta = broker.keyspace.run(SESSION).meta
    redis_client.hset(meta, mapping={RunField.INCARNATION: "one", RunField.STATUS: "running"})
    return broker, meta


def test_a_note_that_raced_a_worker_writing_the_record_is_kept(
        redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    broker, meta = record(redis_client)
    multi = redis.client.Pipeline.multi
    raced: list[int] = []

    def worker_writes_first(self: Any) -> None:  # between WATCH and MULTI, twice
        if len(raced) < 2:
            raced.append(redis_client.hincrby(meta, RunField.RUNNING, 1))
        multi(self)

    monkeypatch.setattr(redis.client.Pipeline, "multi", worker_writes_first)
    assert broker.runs.note_checkpoint(SESSION, "one", path="/ck/run.pkl")
    assert raced == [1, 2]
    assert redis_client.hget(meta, RunField.LAST_CHECKPOINT) == b"/ck/run.pkl"


def test_a_note_goes_only_to_its_incarnation(redis_client: redis.Redis) -> None:
    broker, meta = record(redis_client)
    assert not broker.runs.note_checkpoint(SESSION, "earlier", path="/ck/old.pkl")
    assert broker.runs.note_checkpoint(SESSION, "one", error="disk full")
    assert redis_client.hget(meta, RunField.LAST_CHECKPOINT) is None
    assert redis_client.hget(meta, RunField.CHECKPOINT_ERROR) == b"disk full"
    redis_client.delete(meta)
    assert not broker.runs.note_checkpoint(SESSION, "one", path="/ck/run.pkl")
    assert not redis_client.exists(meta), "a note never recreates an expired record"
