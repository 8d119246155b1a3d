"""The supervisor's release of a gone executor's job and registration against damaged
keys (found by the poison soak): it repairs what it can and never dies of it."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ResponseError

from graflow_dist.broker.keys import Keyspace
from graflow_dist.worker.slot import SlotState
from graflow_dist.worker.supervisor import CRASHED, Abandoned, Supervisor


def _supervisor(client: redis.Redis) -> Supervisor:
    return Supervisor(client, keyspace=Keyspace("graflow"), concurrency=1)


def test_a_registration_key_of_the_wrong_type_is_quarantined_and_the_release_done(
    redis_client: redis.Redis,
) -> None:
    supervisor = _supervisor(redis_client)
    keyspace = supervisor.broker.keyspace
    registration = supervisor.broker.registration("gone-executor", supervisor.queue, 60)
    registration.register()
    assert redis_client.sismember("rq:workers", registration.rq_key)
    redis_client.delete(keyspace.workers)
    redis_client.set(keyspace.workers, "planted by someone else")
    supervisor.abandoned.append(Abandoned("gone-executor", "", CRASHED, SlotState(), True))

    supervisor._release_abandoned()

    assert supervisor.abandoned == []
    assert redis_client.type(keyspace.workers) in (b"none", b"zset")
    moved = list(redis_client.scan_iter(match=keyspace.quarantine_head + "*"))
    assert [redis_client.get(k) for k in moved] == [b"planted by someone else"]
    assert not redis_client.sismember("rq:workers", registration.rq_key)  # unregistered


@pytest.mark.parametrize("refusal", [
    "NOPERM this user has no permissions to run the 'evalsha' command",
    "WRONGTYPE Operation against a key holding the wrong kind of value",  # planted again
])
def test_a_release_redis_keeps_refusing_is_left_to_the_lease(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, refusal: str,
) -> None:
    supervisor = _supervisor(redis_client)
    workers_key = supervisor.broker.keyspace.workers
    attempts: list[str] = []

    def refused(item: Abandoned) -> None:
        attempts.append(item.job_id)
        if refusal.startswith("WRONGTYPE"):  # someone keeps planting it
            redis_client.delete(workers_key)
            redis_client.set(workers_key, "planted")
        raise ResponseError(refusal)

    monkeypatch.setattr(supervisor, "_release", refused)
    supervisor.abandoned.append(Abandoned("gone-executor", "job-1", CRASHED,
                                          SlotState(), True))

    supervisor._release_abandoned()  # logs and moves on, does not raise

    assert supervisor.abandoned == []
    # a wrong type is repaired and tried once more; anything else is not retried
    assert attempts == (["job-1"] * 2 if refusal.startswith("WRONGTYPE") else ["job-1"])
