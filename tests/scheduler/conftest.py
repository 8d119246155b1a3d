"""Builders for the pure scheduler tests: graph shapes from compact edge strings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scheduler_shapes import build_shape, dispatched

from graflow_dist.scheduler import Decision, GraphShape


@pytest.fixture
def shape_of() -> Callable[..., GraphShape]:
    return build_shape


@pytest.fixture
def ready() -> Callable[[Decision], dict[str, str]]:
    return dispatched
