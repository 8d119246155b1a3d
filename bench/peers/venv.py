"""The peers' own virtualenv (``bench/.peers-venv``, git-ignored), created and filled
from ``requirements.txt`` with pip (the machine's configured index) on first use, and
refreshed when that file changes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from peers.base import BENCH_DIR

PEERS_VENV = BENCH_DIR / ".peers-venv"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
STAMP = "bench-requirements.sha256"


def peers_python(venv: Path = PEERS_VENV) -> str:
    """The peers' interpreter, installing the venv first if it is missing or stale."""
    python = venv / "bin" / "python"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = venv / STAMP
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return str(python)
    print(f"installing the peers into {venv} (first use; a few minutes) ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip could not install {REQUIREMENTS} into {venv}:\n"
                           f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    stamp.write_text(digest + "\n")
    return str(python)
