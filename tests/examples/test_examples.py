"""The checkpoint examples run as users run them: a script, a fresh process, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clusters import WORKER_OPTIONS

from graflow_dist.embedded.cluster import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "checkpoints"
TIMEOUT_S = 120
SEED_ENV = "GRAFLOW_EXAMPLE_SEED"


def run_example(
    name: str, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    tmpdir = cwd / "tmp"
    tmpdir.mkdir(exist_ok=True)
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("GRAFLOW_DIST_CLUSTER", SEED_ENV)
    }
    full_env.update(
        {"GRAFLOW_DIST_SECRET": "examples-test-secret-0123456789abcdef",
         "TMPDIR": str(tmpdir), **(env or {})}
    )
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def assert_lines(output: str, *expected: str) -> None:
    for line in expected:
        assert line in output, f"missing {line!r} in:\n{output}"


def assert_no_leftovers(cwd: Path) -> None:
    """Checkpoints went to a temporary directory that was removed again."""
    assert not (cwd / "checkpoints").exists()
    assert list((cwd / "tmp").iterdir()) == []


def test_basic_checkpoint(tmp_path: Path) -> None:
    out = run_example("01_basic_checkpoint.py", tmp_path).stdout
    assert_lines(
        out,
        "ran: ['step_1', 'step_2', 'step_3']",
        "restored completed tasks: ['step_1', 'step_2']",
        "restored pending tasks: ['step_3']",
        "ran in the resumed run: ['step_3']",
        "OK: the resumed run executed only step_3",
    )
    assert out.count("step_1: loaded") == 1
    assert out.count("step_3: report") == 2
    assert_no_leftovers(tmp_path)


def test_basic_checkpoint_into_given_dir(tmp_path: Path) -> None:
    target = tmp_path / "ckpts"
    run_example("01_basic_checkpoint.py", tmp_path, "--dir", str(target))
    names = sorted(p.name for p in target.iterdir())
    assert names == ["after_step_2.meta.json", "after_step_2.pkl", "after_step_2.state.json"]


def test_state_machine_checkpoint(tmp_path: Path) -> None:
    out = run_example("02_state_machine_checkpoint.py", tmp_path).stdout
    assert_lines(
        out,
        "process_order (cycle 1): NEW -> VALIDATED",
        "process_order (cycle 3): PAID -> SHIPPED",
        "== resume from the VALIDATED checkpoint",
        "transitions in the resumed run: ['VALIDATED->PAID', 'PAID->SHIPPED']; "
        "final state: SHIPPED",
        "== resume from the PAID checkpoint",
        "transitions in the resumed run: ['PAID->SHIPPED']; final state: SHIPPED",
        "== resume from the SHIPPED checkpoint",
        "transitions in the resumed run: []; final state: SHIPPED",
        "OK: all 3 resumed runs reached SHIPPED",
    )
    assert out.count("send_confirmation: order A-1001 is SHIPPED") == 4
    assert_no_leftovers(tmp_path)


def test_periodic_checkpoint(tmp_path: Path) -> None:
    out = run_example("03_periodic_checkpoint.py", tmp_path).stdout
    assert_lines(
        out,
        "interrupted: task 'train' failed: SimulatedInterruption",
        "epochs run in the first run: [1, 2, 3, 4, 5, 6, 7]",
        "epochs [3, 6]",
        "== resume from the latest checkpoint (epoch 6)",
        "epochs run in the resumed run: [7, 8, 9, 10]",
        "OK: resumed at epoch 7, right after the last checkpointed epoch 6",
    )
    assert_no_leftovers(tmp_path)


def test_fault_recovery_default_seed(tmp_path: Path) -> None:
    out = run_example("04_fault_recovery.py", tmp_path).stdout
    assert_lines(
        out,
        "attempt 1 failed: task 'train_model' failed: NodeLost",
        "== attempt 2: resume from before_train_model",
        "attempt 2 failed",
        "train_model: attempt 3 succeeded",
        "succeeded after 3 attempt(s)",
        "{'fetch_data': 1, 'clean_data': 1, 'build_features': 1, 'train_model': 3, "
        "'publish': 1}",
        "OK: the cheap steps ran once",
    )
    assert out.count("fetch_data: 100 rows") == 1
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("how", ["argv", "env"])
def test_fault_recovery_other_seed(tmp_path: Path, how: str) -> None:
    # Seed 3 fails the first attempt only.
    args, env = (("--seed", "3"), None) if how == "argv" else ((), {SEED_ENV: "3"})
    out = run_example("04_fault_recovery.py", tmp_path, *args, env=env).stdout
    assert_lines(out, "seed=3", "succeeded after 2 attempt(s)", "'train_model': 2")


def test_idempotency_patterns(tmp_path: Path) -> None:
    out = run_example("05_idempotency_patterns.py", tmp_path).stdout
    assert_lines(
        out,
        "charges per order (naive): {'A-1': 2, 'A-2': 2, 'A-3': 1, 'A-4': 1}",
        "charges per order (idempotent): {'A-1': 1, 'A-2': 1, 'A-3': 1, 'A-4': 1}",
        "OK pattern 1",
        "stages run in the resumed run: ['PROCESSING', 'FINALIZING']; final state: COMPLETE",
        "OK pattern 2",
        "payment API: duplicate key, returning ch_1",
        "payment API requests: 2, charges per order: {'A-1': 1}",
        "OK pattern 3",
        "OK: all three idempotency patterns held",
    )
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "01_basic_checkpoint.py",
        "02_state_machine_checkpoint.py",
        "03_periodic_checkpoint.py",
        "04_fault_recovery.py",
        "05_idempotency_patterns.py",
    ],
)
def test_examples_run_on_a_cluster(tmp_path: Path, name: str, redis_url: str) -> None:
    """GRAFLOW_DIST_CLUSTER sends every run (and every resume) to the cluster. As the
    README says: the coordinator's checkpoint directory is ``./checkpoints`` (as for
    `graflow-dist up` run here; it refuses paths outside it) and the example is given
    ``--dir checkpoints/examples``, a relative path it makes absolute (the coordinator
    would put a relative one below its directory)."""
    checkpoints = tmp_path / "checkpoints"
    with LocalCluster(2, redis_url=redis_url, data_dir=str(tmp_path / "cluster"),
                      worker_options=WORKER_OPTIONS,
                      coordinator_options=["--checkpoint-dir", str(checkpoints)]) as cluster:
        env = {"GRAFLOW_DIST_CLUSTER": cluster.url,
               "GRAFLOW_DIST_SECRET": os.environ["GRAFLOW_DIST_SECRET"]}
        out = run_example(name, tmp_path, "--dir", "checkpoints/examples", env=env).stdout
    assert list((checkpoints / "examples").rglob("*.meta.json")), "written where asked"
    assert "OK" in out
    assert "Traceback" not in out
