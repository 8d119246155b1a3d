"""`graflow-dist submit MODULE:ATTR` as a newcomer uses it: mistakes in the reference or
in the user's file give one line saying where and what, nothing of the user's code runs
by accident, and every repository example can be submitted."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from graflow_dist.cli.loading import EXAMPLE_REF

CLI = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]
CHECKPOINT_EXAMPLES = sorted((REPO / "examples" / "checkpoints").glob("*.py"))
# Every workflow file of examples/hitl (reviewer.py is the helper they share).
HITL_EXAMPLES = sorted(p for p in (REPO / "examples" / "hitl").glob("*.py")
                       if p.name != "reviewer.py")

FLOWS = textwrap.dedent("""
    from pathlib import Path

    from graflow_dist import task, workflow
    from graflow_dist.core.workflow import WorkflowContext

    MARK = Path(__file__).with_name("ran")


    def touch(name):
        MARK.mkdir(exist_ok=True)
        (MARK / name).touch()


    def build() -> WorkflowContext:
        with workflow("flows") as wf:

            @task
            def hello():
                return "hello"

        return wf


    def build_unannotated():
        return build()


    with workflow("module-level") as wf:

        @task
        def side_effect():
            touch("side_effect")
            return 1


    def needs(region, day=1) -> WorkflowContext:
        return build()


    def main() -> None:
        touch("main")


    def broken() -> WorkflowContext:
        raise ValueError("no config for this region")


    NOT_A_WORKFLOW = 42
""")


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


@pytest.mark.parametrize(("attr", "expected"), [
    ("side_effect", "error: flows.py:side_effect is a task, not a workflow"),
    ("needs", "error: flows.py:needs needs arguments (region)"),
    ("main", "error: flows.py:main returns None, not a workflow"),
    ("broken", "error: flows.py:broken() raised ValueError: no config for this region"),
    ("NOT_A_WORKFLOW", "error: flows.py:NOT_A_WORKFLOW is a int; expected a workflow"),
    ("nope", "error: flows.py has no attribute 'nope'; workflows in it: wf"),
])
def test_attributes_that_are_not_workflows(
        project: Path, redis_url: str, graflow_dist: CLI, attr: str, expected: str) -> None:
    proc = graflow_dist("--redis-url", redis_url, "submit", f"flows.py:{attr}", cwd=project)
    assert one_line_error(proc).startswith(expected)
    assert not (project / "ran").exists(), "the user's code ran inside the CLI"


@pytest.mark.parametrize(("source", "expected"), [
    ("x = 1\nwith workflow('w') as wf\n", "error: flows.py line 2: SyntaxError: "),
    ("import json\nimport pandsa_not_installed\n",
     "error: flows.py line 2: cannot import: ModuleNotFoundError: No module named "
     "'pandsa_not_installed'"),
    ("\n\nraise RuntimeError('bad config')\n",
     "error: flows.py line 3: failed at import: RuntimeError: bad config"),
])
@pytest.mark.parametrize("ref", ["flows.py:wf", "flows:wf"])
def test_errors_in_the_users_file_are_one_line(
        tmp_path: Path, redis_url: str, graflow_dist: CLI, source: str, expected: str,
        ref: str) -> None:
    (tmp_path / "flows.py").write_text(source)
    proc = graflow_dist("--redis-url", redis_url, "submit", ref, cwd=tmp_path)
    assert one_line_error(proc).startswith(expected)


def test_a_module_of_the_current_directory_is_found_and_shipped(
        project: Path, cluster: object, redis_url: str, graflow_dist: CLI) -> None:
    # The workers run elsewhere (another cwd): the module travels with the run.
    proc = graflow_dist("--redis-url", redis_url, "submit", "flows:build", "--wait",
                        "--timeout", "60", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == [f"run {proc.stdout.split()[0]} completed",
                                            "result: 'hello'"]
    unannotated = graflow_dist("--redis-url", redis_url, "submit", "flows:build_unannotated",
                               cwd=project)
    assert unannotated.returncode == 0, unannotated.stderr


def test_an_unknown_module_says_where_it_looked(
        tmp_path: Path, redis_url: str, graflow_dist: CLI) -> None:
    line = one_line_error(graflow_dist("--redis-url", redis_url, "submit", "flowz:wf",
                                       cwd=tmp_path))
    assert line.startswith("error: no module named 'flowz' (looked in the current directory")


def test_the_hint_names_a_reference_that_works(
        tmp_path: Path, cluster: object, redis_url: str, graflow_dist: CLI) -> None:
    line = one_line_error(graflow_dist("--redis-url", redis_url, "submit", "flows.py",
                                       cwd=tmp_path))
    assert EXAMPLE_REF in line
    proc = graflow_dist("--redis-url", redis_url, "submit", EXAMPLE_REF, "--wait",
                        "--timeout", "60", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "refined estimate" in proc.stdout


@pytest.mark.parametrize("example", CHECKPOINT_EXAMPLES, ids=[p.stem for p in CHECKPOINT_EXAMPLES])
def test_every_checkpoint_example_can_be_submitted_and_completes(
        example: Path, tmp_path: Path, cluster: object, redis_url: str,
        graflow_dist: CLI) -> None:
    proc = graflow_dist("--redis-url", redis_url, "submit",
                        f"{example.relative_to(REPO)}:wf", "--wait", "--timeout", "90",
                        cwd=REPO, timeout_s=120)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.splitlines()[1].endswith(" completed"), proc.stdout


@pytest.fixture
def feedback_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the workers started after it keep feedback requests (not the repository)."""
    monkeypatch.setenv("GRAFLOW_DIST_FEEDBACK_DIR", str(tmp_path / "feedback"))
    return tmp_path / "feedback"


@pytest.mark.parametrize("example", HITL_EXAMPLES, ids=[p.stem for p in HITL_EXAMPLES])
def test_every_feedback_example_can_be_submitted(
        example: Path, feedback_dir: Path, cluster: object, redis_url: str,
        graflow_dist: CLI) -> None:
    """They wait for a person's answer: submitted, then cancelled."""
    proc = graflow_dist("--redis-url", redis_url, "submit",
                        f"{example.relative_to(REPO)}:build_workflow", cwd=REPO)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    session = proc.stdout.strip()
    status = graflow_dist("--redis-url", redis_url, "status", session)
    assert status.returncode == 0 and f"session:  {session}" in status.stdout
    assert graflow_dist("--redis-url", redis_url, "cancel", session).returncode == 0
