"""Graflow programs run unchanged after renaming ``graflow`` to ``graflow_dist``, and
print what Graflow 0.2.0 printed.

Each ``graflow_programs/NAME.py`` is written against Graflow's API; ``NAME.out`` is its
output under graflow 0.2.0. The test renames the imports, runs the program in a fresh
process and a fresh working directory, and compares the output line for line. With
``GRAFLOW_REFERENCE_PYTHON`` pointing at a Python that has graflow installed, the
originals run there too, checking the recorded outputs are still Graflow's. Re-record
with ``python tests/compat/test_graflow_programs.py PYTHON``.

The programs avoid Graflow's known bugs (DESIGN.md section 8), where our output differs
on purpose: e.g. a join with several predecessors runs once here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).resolve().parent / "graflow_programs"
REFERENCE_ENV = "GRAFLOW_REFERENCE_PYTHON"
TIMEOUT_S = 120
_IMPORT = re.compile(r"^(\s*)(from|import) graflow(?=[.\s])", re.MULTILINE)


def renamed(source: str) -> str:
    return _IMPORT.sub(r"\1\2 graflow_dist", source)


def run_program(python: str, source: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GRAFLOW_DIST_") or k == "GRAFLOW_DIST_SECRET"}
    with tempfile.TemporaryDirectory(prefix="graflow-program-") as cwd:
        script = Path(cwd) / "program.py"
        script.write_text(source)
        proc = subprocess.run([python, str(script)], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def program_names() -> list[str]:
    return sorted(p.stem for p in PROGRAMS.glob("*.py"))


def test_every_program_has_its_recorded_output() -> None:
    names = program_names()
    assert len(names) >= 6
    assert sorted(p.stem for p in PROGRAMS.glob("*.out")) == names


def test_renaming_touches_imports_only() -> None:
    source = "import graflow.x\nfrom graflow.core import y\n    from graflow import z\n" \
             "print('graflow.core')\n"
    assert renamed(source) == ("import graflow_dist.x\nfrom graflow_dist.core import y\n"
                               "    from graflow_dist import z\nprint('graflow.core')\n")


@pytest.mark.parametrize("name", program_names())
def test_program_prints_what_graflow_printed(name: str) -> None:
    source = (PROGRAMS / f"{name}.py").read_text()
    recorded = (PROGRAMS / f"{name}.out").read_text()
    assert "graflow_dist" not in source
    assert run_program(sys.executable, renamed(source)).splitlines() == recorded.splitlines()
    reference = os.environ.get(REFERENCE_ENV)
    if reference:  # the recorded output is still what Graflow prints
        assert run_program(reference, source).splitlines() == recorded.splitlines()


if __name__ == "__main__":
    for program in program_names():
        text = run_program(sys.argv[1], (PROGRAMS / f"{program}.py").read_text())
        (PROGRAMS / f"{program}.out").write_text(text)
        print(f"recorded {program}.out")
