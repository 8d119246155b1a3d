"""The redis:// checkpoint store: write, resume, list, and no password in paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from graflow_dist.checkpoint.redis_store import RedisCheckpointStore, public_path
from graflow_dist.checkpoint.stores import split_base, with_suffix
from graflow_dist.core.checkpoint import CheckpointManager
from graflow_dist.core.decorators import task
from graflow_dist.core.engine import WorkflowEngine
from graflow_dist.core.workflow import workflow
from graflow_dist.embedded import RedisServer
from graflow_dist.errors import CheckpointError


def _build(base: str):  # noqa: ANN202
    with workflow("redis-store") as wf:

        @task(inject_context=True)
        def first(ctx) -> int:  # noqa: ANN001
            ctx.get_channel().set("seen", ["first"])
            ctx.checkpoint(path=base, metadata={"stage": "first"})
            return 1

        @task
        def second(first: int) -> int:
            return first + 1

        first >> second
    return wf


def test_checkpoint_round_trip_through_redis(redis_url: str) -> None:
    base = redis_url.removesuffix("/0") + "/0/checkpoints/demo/after-first"
    result, ctx = _build(base).execute(ret_context=True)
    assert result == 2
    assert ctx.last_checkpoint_path == base + ".pkl"

    restored, meta = CheckpointManager.resume_from_checkpoint(ctx.last_checkpoint_path)
    assert meta.user_metadata["stage"] == "first"
    assert restored.completed_tasks == ["first"]
    assert restored.channel.get("seen") == ["first"]
    assert WorkflowEngine().execute(restored) == 2

    listed = CheckpointManager.list_checkpoints(redis_url, ctx.session_id)
    assert [m.checkpoint_id for m in listed] == [meta.checkpoint_id]


def test_password_never_lands_in_the_checkpoint_path(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with RedisServer(password="s3cret-pw", dir=tmp_path / "redis") as server:
        base = f"redis://:s3cret-pw@127.0.0.1:{server.port}/0/ck/pw-test"
        _result, ctx = _build(base).execute(ret_context=True)
        assert "s3cret-pw" not in ctx.last_checkpoint_path
        # Resuming a password-less path takes the credentials from the environment.
        monkeypatch.setenv("GRAFLOW_DIST_REDIS_URL", server.url)
        restored, _meta = CheckpointManager.resume_from_checkpoint(ctx.last_checkpoint_path)
        assert restored.completed_tasks == ["first"]


def test_missing_redis_checkpoint_is_a_clear_error(redis_url: str) -> None:
    with pytest.raises(CheckpointError, match="not found in the Redis store"):
        CheckpointManager.resume_from_checkpoint(redis_url + "/nothing/here.pkl")


def test_a_rediss_store_keeps_its_query_and_shows_no_password() -> None:
    base = ("rediss://:s3cret-pw@127.0.0.1:6390/0/ck/run-1"
            "?ssl_ca_certs=/etc/ssl/ca.pem&password=also-secret")
    store = RedisCheckpointStore.for_path(f"{base}.pkl")  # connects lazily: nothing sent
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/etc/ssl/ca.pem"
    shown = public_path(base)
    assert shown == "rediss://127.0.0.1:6390/0/ck/run-1?ssl_ca_certs=%2Fetc%2Fssl%2Fca.pem"
    assert "secret" not in shown and "pw" not in shown
    assert split_base(with_suffix(base, ".meta.json")) == base
    assert with_suffix(base, ".pkl").endswith("run-1.pkl?ssl_ca_certs=/etc/ssl/ca.pem"
                                              "&password=also-secret")


@pytest.mark.parametrize("path", ["redis://127.0.0.1:notaport/0/x", "redis:///0/x",
                                  "redis://127.0.0.1:6379/0"])
def test_malformed_store_paths_are_checkpoint_errors(path: str) -> None:
    with pytest.raises(CheckpointError):
        CheckpointManager.resume_from_checkpoint(path)
