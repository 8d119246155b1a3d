"""A Graflow program using tracing, drawing, typed channels and the cycle controller runs
with only its import prefix renamed and prints what Graflow 0.2.0 printed.

The program is ``graflow_programs/tracing_drawing_typed.py``; Graflow's output
(recorded with graflow==0.2.0, trailing spaces stripped) is beside it. Timestamps,
durations and session ids differ from run to run and are masked. One difference is
ours on purpose: a typed-channel write that does not match its type fails the run
with a `TaskExecutionError` (a `GraflowRuntimeError`) caused by a `TypeError`, where
Graflow's error did not say it was a type error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

PROGRAMS = Path(__file__).parent / "graflow_programs"
MASKS = [
    (re.compile(r"\[\d\d:\d\d:\d\d\.\d{3}\]"), "[TIME]"),
    (re.compile(r"\(\d+ms\)"), "(DURATION)"),
    (re.compile(r"workflow_[0-9a-f]{8}"), "workflow_SESSION"),
    (re.compile(r"trace_id: [0-9a-f]{32}"), "trace_id: TRACE"),
]


def normalised(text: str) -> tuple[list[str], dict]:
    lines = []
    result: dict = {}
    for line in text.splitlines():
        if line.startswith("JSON:"):
            result = json.loads(line.removeprefix("JSON:"))
            continue
        for pattern, mask in MASKS:
            line = pattern.sub(mask, line)
        lines.append(line.rstrip())
    return lines, result


def test_graflow_program_prints_what_graflow_printed() -> None:
    program = PROGRAMS / "tracing_drawing_typed.py"
    assert "from graflow." not in program.read_text()  # only the prefix was renamed
    run = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                         timeout=60, cwd=program.parent)
    assert run.returncode == 0, run.stderr
    ours, our_result = normalised(run.stdout)
    theirs, their_result = normalised(
        (PROGRAMS / "tracing_drawing_typed.graflow.txt").read_text())
    assert ours == theirs
    assert their_result.pop("bad_error") == "GraflowRuntimeError"
    assert their_result.pop("bad_raised") is False
    assert our_result.pop("bad_error") == "TaskExecutionError"
    assert our_result.pop("bad_raised") is True
    assert our_result == their_result
    assert our_result["result"] == {"epoch": 3, "loss": 0.125}
