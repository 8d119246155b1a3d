"""MemoryChannel: the in-process channel."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cloudpickle
import pytest

from graflow_dist import MemoryChannel
from graflow_dist.channels import memory
from graflow_dist.channels.base import result_key


class FakeClock:
    """Stands in for the `time` module inside the channel module."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(memory, "time", fake)
    return fake


@pytest.fixture
def channel() -> MemoryChannel:
    return MemoryChannel("session-1")


def test_get_set_delete_exists_keys(channel: MemoryChannel) -> None:
    assert channel.name == "session-1"
    assert channel.get("k") is None and channel.get("k", "dflt") == "dflt"
    channel.set("k", 1)
    channel.set("other", None)
    assert channel.get("k") == 1
    assert channel.exists("other") and "other" in channel
    assert channel.get("other", "dflt") is None  # a stored None is a value
    assert sorted(channel.keys()) == ["k", "other"]
    assert channel.delete("k") is True
    assert channel.delete("k") is False
    assert not channel.exists("k") and channel.keys() == ["other"]
    channel.clear()
    assert channel.keys() == []


def test_ttl_expiry(channel: MemoryChannel, clock: FakeClock) -> None:
    channel.set("short", "v", ttl=10)
    channel.set("forever", "v")
    clock.now += 9.9
    assert channel.get("short") == "v" and channel.exists("short")
    clock.now += 0.1
    assert channel.get("short") is None
    assert not channel.exists("short")
    assert channel.keys() == ["forever"]


def test_delete_of_an_expired_key_reports_absent(
    channel: MemoryChannel, clock: FakeClock
) -> None:
    channel.set("k", 1, ttl=1)
    clock.now += 2
    assert channel.delete("k") is False


def test_set_without_ttl_clears_an_earlier_ttl(channel: MemoryChannel, clock: FakeClock) -> None:
    channel.set("k", 1, ttl=5)
    channel.set("k", 2)
    clock.now += 60
    assert channel.get("k") == 2


def test_append_and_prepend(channel: MemoryChannel) -> None:
    assert channel.append("log", "b") == 1
    assert channel.append("log", "c") == 2
    assert channel.prepend("log", "a") == 3
    assert channel.get("log") == ["a", "b", "c"]
    channel.set("scalar", 5)
    with pytest.raises(TypeError, match="'scalar'"):
        channel.append("scalar", 1)


def test_append_with_ttl(channel: MemoryChannel, clock: FakeClock) -> None:
    channel.append("events", 1, ttl=5)
    clock.now += 6
    assert channel.append("events", 2) == 1  # the old list expired


def test_atomic_add(channel: MemoryChannel) -> None:
    assert channel.atomic_add("n") == 1
    assert channel.atomic_add("n", 5) == 6
    assert channel.atomic_add("f", 0.5) == 0.5
    channel.set("text", "x")
    with pytest.raises(TypeError, match="'text'"):
        channel.atomic_add("text")
    channel.set("flag", True)
    with pytest.raises(TypeError):
        channel.atomic_add("flag")


def test_atomic_add_is_atomic_across_threads(channel: MemoryChannel) -> None:
    def work() -> None:
        for _ in range(500):
            channel.atomic_add("counter")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert channel.get("counter") == 4000


def test_lock_excludes_other_holders(channel: MemoryChannel) -> None:
    outcome: list[str] = []

    def contender() -> None:
        try:
            with channel.lock("res", timeout=0.05):
                outcome.append("acquired")
        except TimeoutError as exc:
            outcome.append(str(exc))

    with channel.lock("res"):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert len(outcome) == 1 and "'res'" in outcome[0]
    with channel.lock("res", timeout=0.05):  # released again
        outcome.append("reacquired")
    assert outcome[-1] == "reacquired"


def test_lock_on_another_key_is_independent(channel: MemoryChannel) -> None:
    entered = []
    with channel.lock("a"), channel.lock("b", timeout=0.05):  # would raise TimeoutError
        entered.append("b")
    assert entered == ["b"]


@dataclass(frozen=True)
class Point:
    x: int
    y: int


VALUES = [
    (1, "two", 3.0),
    {1, 2, 3},
    frozenset({"a"}),
    {"outer": {"inner": [1, (2, 3), {"deep": None}]}},
    {1: "int key", (2, 3): "tuple key"},
    b"\x00bytes",
    Point(1, 2),
    [],
    {},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_exactly(channel: MemoryChannel, value: object) -> None:
    channel.set("v", value)
    got = channel.get("v")
    assert got == value and type(got) is type(value)


def test_pickled_channel_keeps_data_and_ttls(channel: MemoryChannel) -> None:
    channel.set("a", (1, 2))
    channel.set("b", "expires", ttl=3600)
    copy = cloudpickle.loads(cloudpickle.dumps(channel))
    assert copy.name == "session-1"
    assert copy.get("a") == (1, 2) and copy.get("b") == "expires"
    assert "b" in copy.ttl_data
    copy.set("c", 1)  # the copy has its own working lock
    assert not channel.exists("c")


def test_result_key_format() -> None:
    assert result_key("train") == "train.__result__"
