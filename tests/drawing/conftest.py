"""Fixtures of the drawing tests."""

from __future__ import annotations

import pytest
from drawings import diamond_workflow

from graflow_dist.core.workflow import WorkflowContext


@pytest.fixture
def diamond() -> WorkflowContext:
    return diamond_workflow()
