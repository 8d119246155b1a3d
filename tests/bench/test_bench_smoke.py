"""Smoke test of the benchmark: `bench/run.py --quick --peers rq` runs every workload
end to end for graflow-dist and RQ (both from the repository's virtualenv: the test
never installs the other peers) and prints its table. No timing assertions:
performance claims live in bench/, not in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
ONE_REDIS = BENCH.parent / "one_redis.py"


def test_bench_quick_run_prints_the_peer_table(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--peers", "rq", "--out", str(out)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    assert any(line.split() == ["graflow-dist", "RQ"] for line in lines), proc.stdout
    for row in ("fan-out 1+N+1", "chain of M", "small runs", "scale fan-out",
                "peak RSS per worker"):
        assert any(line.startswith(row) for line in lines), (row, proc.stdout)
    assert not any(line.startswith("FAILED") for line in lines), proc.stdout

    data = json.loads(out.read_text())
    assert data["config"]["quick"] is True
    assert data["failures"] == {}
    summary, ratios = data["summary"], data["ratios"]
    for workload in ("fanout", "chain", "small", "scale"):
        assert summary[workload]["graflow-dist"]["median"] > 0
        assert summary[workload]["rq"]["median"] > 0
        assert ratios[workload]["rq"] > 0
    for extra in ("fanout_plain", "chain_wait", "single"):
        assert summary[extra]["rq"]["median"] > 0
        assert ratios[extra]["rq"] > 0
    scale = data["raw"]["graflow-dist"]["scale"][0]
    assert scale["tasks"] == data["config"]["sizes"]["graflow-dist"]["scale"] + 2
    for role in ("workers", "coordinator", "client"):
        assert all(mb and mb > 10 for mb in scale["peak_rss_mb"][role]), scale["peak_rss_mb"]
    memory = scale["redis_used_memory_mb"]
    assert 0 < memory["before"] <= memory["peak"], memory
    assert scale["redis_peak_bytes_per_task"] >= 0
    assert data["raw"]["graflow-dist"]["fanout"][0]["commands_per_task"] > 0
    assert set(data["environment"]["versions"]) == {"graflow-dist", "rq"}


@pytest.mark.slow
def test_one_redis_reports_every_figure_of_a_small_fan_out(tmp_path: Path) -> None:
    # CPU time comes from /proc in clock ticks (10 ms): 200 tasks cost the workers 1-3
    # ticks, and once none (CI). 2,000 cost them about 20.
    proc = subprocess.run([sys.executable, str(ONE_REDIS), "--tasks", "2000"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout
    assert "fan-out of 2,000 no-ops, 2 workers" in out, out
    for role in ("coordinator", "workers", "client", "redis-server"):
        assert any(line.split()[:1] == [role] and float(line.split()[1]) > 0
                   for line in out.splitlines()), (role, out)
    commands = next(line for line in out.splitlines() if "Redis commands/task" in line)
    assert float(commands.split("Redis commands/task ")[1].split(":")[0]) > 0, commands
    assert "Redis used_memory MB: before" in out and "peak RSS MB: coordinator" in out, out
