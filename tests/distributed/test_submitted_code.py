"""What a client stores of a workflow's code: code blobs by content hash and a manifest,
once; a workflow submitted again is neither pickled nor stored again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

import graflow_dist.submitter as submitter_module
from graflow_dist import Client, task, workflow
from graflow_dist.broker.keys import Keyspace


def small() -> Any:
    with workflow("small") as wf:

        @task
        def a() -> int:
            return 1

        @task
        def b(a: int) -> int:
            return a + 1

        a >> b
    return wf


def sets(redis_client: redis.Redis) -> int:
    stats = redis_client.info("commandstats")
    return int(stats.get("cmdstat_set", {}).get("calls", 0))


@pytest.fixture
def splits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often the client pickled a graph."""
    calls: list[int] = []
    real: Callable[..., Any] = submitter_module.split_graph

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(submitter_module, "split_graph", counting)
    return calls


def test_a_workflow_submitted_again_is_not_pickled_or_stored_again(
        redis_client: redis.Redis, splits: list[int]) -> None:
    client = Client(redis_client=redis_client)
    wf = small()
    first = client.submit(wf)
    assert len(splits) == 1
    keyspace = Keyspace.from_env()
    graph_hash = first.info()["graph_hash"]
    assert redis_client.exists(keyspace.blob(graph_hash))
    before = sets(redis_client)
    second = client.submit(wf)
    assert second.info()["graph_hash"] == graph_hash
    assert len(splits) == 1 and sets(redis_client) == before  # no code SET at all
    # A changed task is a changed graph: pickled and stored again.
    wf.graph.get_node("b").max_retries = 3
    third = client.submit(wf)
    assert len(splits) == 2 and third.info()["graph_hash"] != graph_hash
    assert sets(redis_client) > before


def test_code_lost_from_redis_is_stored_again_from_the_client_s_copy(
        redis_client: redis.Redis, splits: list[int]) -> None:
    client = Client(redis_client=redis_client)
    wf = small()
    run = client.submit(wf)
    keyspace = Keyspace.from_env()
    stored = sorted(redis_client.scan_iter(match=f"{keyspace.prefix}:code:*"))
    assert len(stored) == 1
    redis_client.delete(*stored, keyspace.blob(run.info()["graph_hash"]))
    again = client.submit(wf)
    assert len(splits) == 1  # the client kept the signed blobs of this small graph
    assert sorted(redis_client.scan_iter(match=f"{keyspace.prefix}:code:*")) == stored
    assert redis_client.exists(keyspace.blob(again.info()["graph_hash"]))
    assert again.context().graph.get_node("b").func(a=1) == 2  # whole again, from Redis


def test_a_large_shape_is_written_ahead_and_renamed_into_place(
        redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    import graflow_dist.broker.runs as runs_module
    from graflow_dist import parallel
    from graflow_dist.errors import RunActiveError

    monkeypatch.setattr(runs_module, "STAGED_SHAPE_NODES", 3)
    monkeypatch.setattr(runs_module, "_SHAPE_CHUNK_NODES", 2)

    @task
    def leaf(i: int) -> int:
        return i

    with workflow("wide") as wf:

        @task
        def head() -> None:
            return None

        head >> parallel(*[leaf(task_id=f"l{i}", i=i) for i in range(7)])
    client = Client(redis_client=redis_client)
    run = client.submit(wf)
    keys = Keyspace.from_env().run(run.session_id)
    shapes = client.broker.runs.node_shapes(run.session_id, [f"l{i}" for i in range(7)])
    assert len(shapes) == 7 and redis_client.hlen(keys.shape) == 9  # + head and group
    assert redis_client.ttl(keys.shape) == -1  # the staging TTL went with the rename
    assert not list(redis_client.scan_iter(match=f"{keys.shape}:*"))
    ctx = wf.create_context()
    ctx.session_id = run.session_id  # the same session while it is active: refused
    with pytest.raises(RunActiveError):
        client.submit(ctx)
    assert not list(redis_client.scan_iter(match=f"{keys.shape}:*"))  # nothing left behind
