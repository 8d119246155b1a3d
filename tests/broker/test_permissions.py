"""The minimal Redis ACL (documented in docs/security.md) and the check every service
runs before it writes anything: it names each missing permission and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from graflow_dist.broker import Broker
from graflow_dist.broker.keys import Keyspace
from graflow_dist.broker.permissions import ROLES, acl_rules, acl_setuser_command
from graflow_dist.errors import PermissionDeniedError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
KS = Keyspace("gfacl")


@pytest.fixture
def acl_user(redis_client: redis.Redis) -> Iterator[object]:
    """``make(*extra_rules)``: a client of a new ACL user with `acl_rules` plus
    ``extra_rules``; the users are deleted afterwards."""
    made: list[str] = []
    clients: list[redis.Redis] = []
    host, port = redis_client.connection_pool.connection_kwargs["host"], \
        redis_client.connection_pool.connection_kwargs["port"]

    def make(*extra: str, rules: list[str] | None = None) -> redis.Redis:
        name = f"gf-{uuid.uuid4().hex[:8]}"
        redis_client.execute_command("ACL", "SETUSER", name, "reset", "on", ">pw-" + name,
                                     *(rules if rules is not None else acl_rules(KS.prefix)),
                                     *extra)
        made.append(name)
        client = redis.Redis(host=host, port=port, username=name, password="pw-" + name)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    for name in made:
        redis_client.execute_command("ACL", "DELUSER", name)


@pytest.mark.parametrize("role", ROLES)
def test_the_documented_acl_grants_every_role_everything_and_the_check_writes_nothing(
    redis_client: redis.Redis, acl_user: object, role: str
) -> None:
    client = acl_user()  # type: ignore[operator]
    redis_client.set("gfacl:canary", "1")
    Broker(client, KS).check_permissions(role)
    assert redis_client.keys("*") == [b"gfacl:canary"], "the permission check wrote"


@pytest.mark.parametrize(("extra", "named"), [
    (["-xadd"], "XADD"),
    (["-evalsha"], "EVALSHA"),
    (["-info"], "INFO"),
])
def test_a_missing_command_is_named(acl_user: object, extra: list[str], named: str) -> None:
    client = acl_user(*extra)  # type: ignore[operator]
    with pytest.raises(PermissionDeniedError, match=named) as refused:
        Broker(client, KS).check_permissions("coordinator")
    assert "docs/security.md" in str(refused.value) and "\n" not in str(refused.value)


def test_missing_key_patterns_are_named(acl_user: object) -> None:
    rules = [r for r in acl_rules(KS.prefix) if r != "~rq:*"]
    client = acl_user(rules=rules)  # type: ignore[operator]
    with pytest.raises(PermissionDeniedError, match="rq:"):
        Broker(client, KS).check_permissions("worker")


def test_dangerous_commands_stay_denied(acl_user: object) -> None:
    client = acl_user()  # type: ignore[operator]
    for command in (["FLUSHALL"], ["KEYS", "*"], ["CONFIG", "GET", "dir"], ["DEBUG", "SLEEP", 0]):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("otherapp:key", "x")  # outside the deployment's keys


def test_the_docs_show_exactly_this_acl() -> None:
    assert acl_setuser_command("graflow", "graflow") in DOCS.read_text()


def test_the_check_takes_two_round_trips_whatever_the_role_needs(
        acl_user: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """MULTI alone, then every command and DISCARD at once: it took a round trip per
    command (about 60), 18 s before a service started on a Redis 300 ms away."""
    client = acl_user()  # type: ignore[operator]
    client.ping()
    sent: list[bytes] = []
    send = redis.connection.Connection.send_packed_command

    def counting(self: redis.connection.Connection, command: object,
                 check_health: bool = True) -> None:
        sent.append(b"")
        send(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    Broker(client, KS).check_permissions("worker")
    assert len(sent) == 2


def test_without_multi_nothing_else_is_sent(redis_client: redis.Redis,
                                            acl_user: object) -> None:
    """Denied MULTI, the commands would run instead of being queued: none is sent."""
    client = acl_user("-multi")  # type: ignore[operator]
    redis_client.set("gfacl:canary", "1")
    with pytest.raises(PermissionDeniedError, match="MULTI"):
        Broker(client, KS).check_permissions("worker")
    assert redis_client.keys("*") == [b"gfacl:canary"], "the permission check wrote"
