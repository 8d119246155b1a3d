"""RedisChannel against a real redis-server: the channel protocol, exactly."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from graflow_dist.broker.channel_data import queue_channel_writes, read_channel
from graflow_dist.broker.keys import Keyspace
from graflow_dist.channels.redis import WRITE_MARK_TTL_S, RedisChannel
from graflow_dist.errors import PayloadTooLargeError, WireError


@pytest.fixture
def channel(redis_client: redis.Redis) -> RedisChannel:
    return RedisChannel("session-1", redis_client, prefix="gftest")


def test_get_set_delete_exists_keys(channel: RedisChannel) -> None:
    assert channel.get("missing", "default") == "default"
    channel.set("a", {"x": (1, 2)})
    channel.set("b", 2)
    assert channel.get("a") == {"x": (1, 2)}
    assert channel.exists("a") and "b" in channel
    assert channel.keys() == ["a", "b"]
    assert channel.delete("a") is True and channel.delete("a") is False
    assert channel.get_many(["a", "b", "c"]) == {"b": 2}


def test_ttl_expires_a_value(channel: RedisChannel) -> None:
    channel.set("short", "v", ttl=1)
    assert channel.get("short") == "v"
    deadline = time.monotonic() + 5
    while channel.exists("short") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert channel.get("short") is None


def test_sessions_and_prefixes_are_isolated(redis_client: redis.Redis) -> None:
    one = RedisChannel("s1", redis_client, prefix="gftest")
    two = RedisChannel("s2", redis_client, prefix="gftest")
    other = RedisChannel("s1", redis_client, prefix="otherdeploy")
    one.set("k", 1)
    assert two.get("k") is None and other.get("k") is None
    two.clear()
    assert one.get("k") == 1


def test_append_prepend_and_lists_set_directly(channel: RedisChannel) -> None:
    assert channel.append("log", "b") == 1
    assert channel.prepend("log", "a") == 2
    assert channel.get("log") == ["a", "b"]
    channel.set("ids", [1, 2])  # a list value, later appended to
    assert channel.append("ids", 3) == 3
    assert channel.get("ids") == [1, 2, 3]
    assert channel.get_many(["ids"]) == {"ids": [1, 2, 3]}
    channel.set("scalar", 5)
    with pytest.raises(TypeError, match="not a list"):
        channel.append("scalar", 1)


def test_atomic_add_is_atomic_across_threads(channel: RedisChannel,
                                             redis_client: redis.Redis) -> None:
    def add() -> None:
        mine = RedisChannel("session-1", redis.Redis(
            connection_pool=redis_client.connection_pool), prefix="gftest")
        for _ in range(50):
            mine.atomic_add("counter", 1)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert channel.get("counter") == 200
    assert channel.atomic_add("counter", 0.5) == 200.5
    channel.set("text", "x")
    with pytest.raises(TypeError, match="atomic_add needs a number"):
        channel.atomic_add("text")


def test_lock_excludes_and_times_out(channel: RedisChannel) -> None:
    with channel.lock("res", timeout=1):
        with pytest.raises(TimeoutError, match="res"):
            with channel.lock("res", timeout=0.2):
                pass
    with channel.lock("res", timeout=1):
        pass
    assert "res" not in channel.keys()  # locks live outside the channel's namespace


def test_raw_values_copy_a_channel_without_decoding(channel: RedisChannel,
                                                    redis_client: redis.Redis) -> None:
    channel.set("obj", {1, 2})
    channel.append("lst", (1, "x"))
    raw = read_channel(redis_client, Keyspace("gftest").run("session-1"))
    pipe = redis_client.pipeline()
    queue_channel_writes(pipe, Keyspace("gftest").run("copy"), raw)
    pipe.execute()
    copy = RedisChannel("copy", redis_client, prefix="gftest")
    assert copy.get("obj") == {1, 2}
    assert copy.get("lst") == [(1, "x")]


def test_redis_channel_refuses_to_be_pickled(channel: RedisChannel) -> None:
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(channel)


def test_a_channel_key_someone_else_wrote_is_our_error_and_not_in_a_checkpoint(
    channel: RedisChannel, redis_client: redis.Redis,
) -> None:
    channel.set("fine", 1)
    redis_client.hset(channel._key("planted"), "x", "y")  # neither a value nor a list
    with pytest.raises(WireError, match="holds neither a value nor a list"):
        channel.get("planted")
    with pytest.raises(WireError, match="cannot append.*holds a hash"):
        channel.append("planted", 1)  # it looped forever
    assert set(read_channel(redis_client, channel.keys_of)) == {"fine"}
    with pytest.raises(PayloadTooLargeError, match="key 'big'.*external storage"):
        RedisChannel(channel.name, redis_client, max_value_bytes=100).set("big", b"x" * 200)


def test_every_writer_names_its_key_in_the_run_s_index_and_nothing_scans(
        channel: RedisChannel, redis_client: redis.Redis) -> None:
    def scans() -> int:
        return int(redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))

    for i in range(50):  # unrelated keys of another run
        RedisChannel("other", redis_client, prefix="gftest").set(f"x{i}", i)
    before = scans()
    channel.set("plain", 1)
    channel.append("items", "a")
    channel.atomic_add("count", 2)
    channel.set("gone", 0)
    assert channel.delete("gone")
    index = Keyspace("gftest").run("session-1").channel_index
    assert {m.decode() for m in redis_client.smembers(index)} == {"plain", "items", "count"}
    assert channel.keys() == ["count", "items", "plain"]
    raw = read_channel(redis_client, Keyspace("gftest").run("session-1"))
    assert set(raw) == {"plain", "items", "count"}
    channel.clear()
    assert channel.keys() == [] and not redis_client.exists(index)
    assert RedisChannel("other", redis_client, prefix="gftest").get("x7") == 7
    assert scans() == before


def test_a_write_that_adds_marks_itself_applied_until_the_next_one(
        channel: RedisChannel, redis_client: redis.Redis) -> None:
    """Each append and atomic_add leaves a mark with a TTL (so a retry after a lost reply
    adds nothing: tests/reliability/test_lost_replies.py); the channel's next such write
    deletes it, so a loop leaves one. The marks are not channel keys."""
    def marks() -> list[bytes]:
        return redis_client.keys(channel.keys_of.channel_write("*"))

    channel.append("log", "a", ttl=100)
    assert len(marks()) == 1
    for _ in range(50):
        channel.atomic_add("n", 2)
        channel.prepend("log", "b")
    assert len(marks()) == 1
    assert 0 < redis_client.ttl(marks()[0]) <= WRITE_MARK_TTL_S
    assert 0 < redis_client.ttl(channel._key("log")) <= 100
    assert channel.get("n") == 100 and len(channel.get("log")) == 51
    assert channel.keys() == ["log", "n"]
