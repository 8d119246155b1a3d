"""Smoke test of the benchmark: `bench/run.py --quick` runs end to end and prints its
ratio lines. No timing assertions: performance claims live in bench/, not in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def test_bench_quick_run_prints_ratios(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert any(line.startswith("RATIO throughput graflow-dist/RQ") for line in lines), proc.stdout
    assert any(line.startswith("RATIO latency graflow-dist/RQ") for line in lines), proc.stdout
    data = json.loads(out.read_text())
    assert data["config"]["quick"] is True
    assert data["ratios"]["throughput_gf_over_rq"] > 0
    assert data["ratios"]["latency_gf_over_rq"] > 0
    assert data["commands"]["gf_fanout"]["per_task"] > 0
