"""Prints the chaos figures (runs, faults, lost, re-runs, recovery) after the session;
under pytest-xdist each worker sends its figures to the controller, which prints them."""

from __future__ import annotations

from typing import Any

import pytest

from chaos.scenario import TALLY

_OUTPUT_KEY = "chaos_tally"


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker
        output[_OUTPUT_KEY] = TALLY.to_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    figures = getattr(node, "workeroutput", {}).get(_OUTPUT_KEY)
    if figures:
        TALLY.merge(figures)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in TALLY.lines():
        terminalreporter.write_line(line)
