"""The human-in-the-loop examples, run in process as users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graflow_dist.embedded.cluster import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hitl"
TIMEOUT_S = 120


def run_example(name: str, cwd: Path, *args: str, cluster: str | None = None) -> str:
    tmpdir = cwd / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRAFLOW_DIST_CLUSTER", "GRAFLOW_DIST_FEEDBACK_DIR")}
    env.update({"GRAFLOW_DIST_SECRET": "examples-test-secret-of-at-least-32-characters",
                "TMPDIR": str(tmpdir)})
    if cluster is not None:  # the cluster's services sign with the test session's secret
        env.update({"GRAFLOW_DIST_CLUSTER": cluster,
                    "GRAFLOW_DIST_SECRET": os.environ["GRAFLOW_DIST_SECRET"]})
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def assert_lines(output: str, *expected: str) -> None:
    for line in expected:
        assert line in output, f"missing {line!r} in:\n{output}"


def assert_no_leftovers(cwd: Path) -> None:
    assert sorted(p.name for p in cwd.iterdir()) == ["tmp"]
    assert list((cwd / "tmp").iterdir()) == []


def test_approval_in_time_and_late(tmp_path: Path) -> None:
    out = run_example("01_approval.py", tmp_path)
    assert_lines(
        out,
        "== 1. answered within the timeout",
        "request_approval: approved=True reason='tests passed'",
        "status: completed, result: 'deployed 2.4.1'",
        "== 2. answered after the timeout",
        "status: waiting, checkpoint: session_",
        "completed: ['process'], pending: ['request_approval']",
        "== resume once the answer is in",
        "checkpoint reason: feedback_timeout",
        "request_approval: approved=True reason='approved late'",
        "executed: ['process', 'request_approval', 'request_approval', 'deploy']",
        "OK: the late approval was picked up under the same feedback id",
    )
    # The late answer came after the run stopped waiting, not before.
    assert out.index("status: waiting") < out.index("approved late")
    assert_no_leftovers(tmp_path)


def test_approval_keeps_its_files_in_a_given_dir(tmp_path: Path) -> None:
    target = tmp_path / "kept"
    target.mkdir()
    run_example("01_approval.py", tmp_path, "--dir", str(target))
    assert sorted(p.name for p in target.iterdir()) == ["checkpoints", "feedback"]
    assert len(list((target / "feedback" / "responses").iterdir())) == 2
    assert len(list((target / "checkpoints").rglob("*.meta.json"))) == 1


def test_text_feedback_review_rounds(tmp_path: Path) -> None:
    out = run_example("02_text_feedback.py", tmp_path)
    assert_lines(
        out,
        "review (round 1): 'Too long: keep the part before the colon'",
        "review (round 2): 'LGTM'",
        "publish: 'Announcing graflow-dist'",
        "comments: ['Too long: keep the part before the colon', 'LGTM']",
        "last comment in the channel: 'LGTM'",
        "review rounds: 2, distinct feedback ids: 2",
        "OK: one feedback id per review round",
    )
    assert_no_leftovers(tmp_path)


def test_selection_fans_out_to_the_chosen_regions(tmp_path: Path) -> None:
    out = run_example("03_selection.py", tmp_path)
    assert_lines(
        out,
        "choose_strategy: canary",
        "selected_multiple must be a list of options from ['eu-west', 'us-east', "
        "'ap-south', 'sa-east'], got ['eu-west', 'mars-north']",
        "choose_regions: ['eu-west', 'us-east', 'ap-south']",
        "strategy in the channel: 'canary'",
        "deployed: ['ap-south', 'eu-west', 'us-east']",
        "result: '3 regions live'",
        "OK: the chosen regions were deployed, then summarised once",
    )
    assert out.count("summary: ") == 1
    assert out.index("summary: ") > max(out.index(f"deploy_region: {r}")
                                        for r in ("eu-west", "us-east", "ap-south"))
    assert_no_leftovers(tmp_path)


@pytest.mark.parametrize(("name", "ok"), [
    ("01_approval.py", "OK: the late approval was picked up under the same feedback id"),
    ("02_text_feedback.py", "OK: one feedback id per review round"),
    ("03_selection.py", "OK: the chosen regions were deployed, then summarised once"),
])
def test_examples_run_on_a_cluster(tmp_path: Path, name: str, ok: str,
                                   cluster: LocalCluster) -> None:
    """With GRAFLOW_DIST_CLUSTER the runs go to the cluster: a waiting task is parked and
    the reviewer answers through Client.pending_feedback / Client.respond."""
    out = run_example(name, tmp_path, cluster=cluster.url)
    assert ok in out
