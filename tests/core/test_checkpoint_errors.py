"""Bad checkpoints fail loudly: a `CheckpointError` naming the file and the cause,
never a bare pickle or json traceback."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest

from graflow_dist import CheckpointManager
from graflow_dist.errors import CheckpointError
from graflow_dist.wire.signing import SECRET_ENV, sign


def refused(path: Path | str) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        CheckpointManager.resume_from_checkpoint(path)
    error = info.value
    # the loader's own error, not a chained traceback from json, msgpack or pickle
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def edit_json(path: Path, **changes: object) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_missing_meta_means_never_committed(pipeline_checkpoint) -> None:
    pipeline_checkpoint.meta.unlink()
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.meta)
    assert str(pipeline_checkpoint.meta) in str(error)
    assert "missing" in str(error) and "never completed" in str(error)


@pytest.mark.parametrize("which", ["pkl", "state"])
def test_missing_data_file(pipeline_checkpoint, which: str) -> None:
    path = getattr(pipeline_checkpoint, which)
    path.unlink()
    error = refused(pipeline_checkpoint.meta)
    assert error.path == str(path) and "missing" in str(error)


def test_no_checkpoint_at_all(tmp_path: Path) -> None:
    error = refused(tmp_path / "nothing.pkl")
    assert error.path == str(tmp_path / "nothing.meta.json")


def test_truncated_state(pipeline_checkpoint) -> None:
    raw = pipeline_checkpoint.state.read_bytes()
    pipeline_checkpoint.state.write_bytes(raw[: len(raw) // 2])
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.state)
    assert "corrupt or truncated JSON" in str(error)


def test_state_that_is_not_an_object(pipeline_checkpoint) -> None:
    pipeline_checkpoint.state.write_text("[1, 2, 3]")
    assert "JSON object" in str(refused(pipeline_checkpoint.pkl))


def test_state_without_pending_tasks(pipeline_checkpoint) -> None:
    doc = json.loads(pipeline_checkpoint.state.read_text())
    del doc["pending_tasks"]
    pipeline_checkpoint.state.write_text(json.dumps(doc))
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.state)
    assert "malformed" in str(error) and "pending_tasks" in str(error)


def test_corrupt_meta(pipeline_checkpoint) -> None:
    pipeline_checkpoint.meta.write_bytes(b"\xff\xfe not utf-8")
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.meta)


@pytest.mark.parametrize("which", ["state", "meta"])
def test_unknown_schema_version(pipeline_checkpoint, which: str) -> None:
    path = getattr(pipeline_checkpoint, which)
    edit_json(path, schema_version=99)
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(path)
    assert "schema_version 99" in str(error)


def test_flipped_byte_in_pkl_fails_the_signature(pipeline_checkpoint) -> None:
    raw = bytearray(pipeline_checkpoint.pkl.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    pipeline_checkpoint.pkl.write_bytes(bytes(raw))
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.pkl)
    assert "signature does not verify" in str(error)


def test_truncated_pkl(pipeline_checkpoint) -> None:
    pipeline_checkpoint.pkl.write_bytes(pipeline_checkpoint.pkl.read_bytes()[:20])
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.pkl)
    assert "unsigned or truncated" in str(error)


def test_plain_pickle_is_refused(pipeline_checkpoint) -> None:
    import pickle

    pipeline_checkpoint.pkl.write_bytes(pickle.dumps({"not": "signed"}))
    assert "unsigned" in str(refused(pipeline_checkpoint.pkl))


def test_pkl_signed_with_another_secret(
    pipeline_checkpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "a-different-secret-0123456789abcdef")
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.pkl)
    assert "signature does not verify" in str(error) and SECRET_ENV in str(error)


def test_signed_garbage_payload(pipeline_checkpoint) -> None:
    pipeline_checkpoint.pkl.write_bytes(sign(b"\xc1 not msgpack"))
    assert "corrupt context payload" in str(refused(pipeline_checkpoint.pkl))


def test_signed_payload_of_another_format(pipeline_checkpoint) -> None:
    pipeline_checkpoint.pkl.write_bytes(sign(msgpack.packb({"format": "something else"})))
    assert "not a graflow-dist context payload" in str(refused(pipeline_checkpoint.pkl))


def test_payload_with_an_unknown_schema_version(pipeline_checkpoint) -> None:
    body = {"format": "graflow-dist/context", "schema_version": 42}
    pipeline_checkpoint.pkl.write_bytes(sign(msgpack.packb(body)))
    error = refused(pipeline_checkpoint.pkl)
    assert error.path == str(pipeline_checkpoint.pkl) and "schema_version 42" in str(error)


def test_files_of_different_sessions_are_refused(pipeline_checkpoint) -> None:
    edit_json(pipeline_checkpoint.meta, session_id="another-session")
    assert "session ids" in str(refused(pipeline_checkpoint.pkl))


def test_state_pending_task_unknown_to_the_graph(pipeline_checkpoint) -> None:
    doc = json.loads(pipeline_checkpoint.state.read_text())
    doc["pending_tasks"][0]["task_id"] = "ghost"
    pipeline_checkpoint.state.write_text(json.dumps(doc))
    error = refused(pipeline_checkpoint.pkl)
    assert str(pipeline_checkpoint.pkl) in str(error) and "'ghost'" in str(error)
