"""Optional dependencies (networkx, matplotlib, pygraphviz, OpenTelemetry), loaded in one
place when a feature first needs them, with one clear error when they are missing."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from graflow_dist.errors import MissingDependencyError


def require(module: str, feature: str, install: str | None = None) -> ModuleType:
    """``module``, imported; `MissingDependencyError` naming ``feature`` and how to
    install it if it is not there."""
    loaded = sys.modules.get(module)  # cheap: tracers ask for every task
    if loaded is not None:
        return loaded
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, feature,
                                     install or f"pip install {package}") from None


def available(module: str) -> bool:
    """Whether ``module`` can be imported."""
    if sys.modules.get(module) is not None:
        return True
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
