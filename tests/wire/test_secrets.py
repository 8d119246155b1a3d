"""The signing secret: long enough or refused, never empty, and a key file that
concurrent first starts agree on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graflow_dist.errors import SecretError
from graflow_dist.wire import signing

FIRST_START = """
import sys
from graflow_dist.wire.signing import load_secret
sys.stdout.write(load_secret().decode())
"""


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "holds 3 characters; a signing secret needs at least 32"),
    ("x" * 31, "holds 31 characters"),
    ("", "is set but empty"),
    ("   ", "is set but empty"),
])
def test_a_weak_or_empty_secret_is_refused(monkeypatch: pytest.MonkeyPatch, value: str,
                                           message: str) -> None:
    monkeypatch.setenv(signing.SECRET_ENV, value)
    with pytest.raises(SecretError, match=message) as refused:
        signing.load_secret()
    assert value.strip() == "" or value not in str(refused.value), "the secret was shown"
    with pytest.raises(SecretError):
        signing.dumps_signed({"x": 1})  # nothing is signed with it either


def test_a_key_file_too_short_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    key_file = tmp_path / "secret"
    key_file.write_text("")  # what a racing first start once left behind
    monkeypatch.delenv(signing.SECRET_ENV, raising=False)
    monkeypatch.setenv(signing.SECRET_FILE_ENV, str(key_file))
    with pytest.raises(SecretError, match=f"key file {key_file} holds 0 characters"):
        signing.load_secret()


def test_ten_concurrent_first_starts_converge_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "home" / ".graflow-dist" / "secret"
    env = {k: v for k, v in os.environ.items() if k != signing.SECRET_ENV}
    env[signing.SECRET_FILE_ENV] = str(key_file)
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_START], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(10)]
    keys = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        keys.append(out)
    assert len(set(keys)) == 1 and len(keys[0]) >= signing.MIN_SECRET_LEN
    assert key_file.read_bytes().strip() == keys[0]
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret"], "temp files left"
