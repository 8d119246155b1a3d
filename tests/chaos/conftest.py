"""Prints the chaos figures (runs, faults, lost, re-runs, recovery) after the session."""

from __future__ import annotations

from typing import Any

from chaos.scenario import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in TALLY.lines():
        terminalreporter.write_line(line)
