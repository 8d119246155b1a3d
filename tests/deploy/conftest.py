"""Fixtures: each kustomization rendered once per session."""

from __future__ import annotations

import pytest

from deploy.rendering import KUSTOMIZATIONS, OVERLAYS, Rendered, render


@pytest.fixture(params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return Rendered(render(request.param))


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> Rendered:
    return Rendered(render(request.param))
