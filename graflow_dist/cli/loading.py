"""Loading ``MODULE:ATTR`` workflow references for ``graflow-dist submit``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.workflow import WorkflowContext
from graflow_dist.errors import GraflowError


def load_module(ref: str, by_value: bool = False) -> ModuleType:
    """Import a dotted module, or load a ``.py`` file.

    Tasks of a file (and, with ``by_value``, of a dotted module) are pickled by value,
    so workers need not have the module installed; otherwise workers import it.
    """
    if ref.endswith(".py") or "/" in ref:
        path = Path(ref).resolve()
        if not path.is_file():
            raise GraflowError(f"no such workflow file: {ref}")
        name = f"graflow_user_{path.stem}_{abs(hash(str(path))) % 10**8}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise GraflowError(f"cannot load {ref} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
        cloudpickle.register_pickle_by_value(module)
        return module
    try:
        module = importlib.import_module(ref)
    except ImportError as exc:
        raise GraflowError(f"cannot import workflow module {ref!r}: {exc}") from None
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    return module


def load_workflow(ref: str, by_value: bool = False) -> WorkflowContext | ExecutionContext:
    """``MODULE:ATTR`` where ATTR is a workflow, a context, or a function returning one."""
    module_ref, sep, attr = ref.rpartition(":")
    if not sep or not module_ref or not attr:
        raise GraflowError(f"expected MODULE:ATTR (e.g. examples/demo.py:wf), got {ref!r}")
    module = load_module(module_ref, by_value)
    try:
        target: Any = getattr(module, attr)
    except AttributeError:
        raise GraflowError(f"{module_ref} has no attribute {attr!r}") from None
    if callable(target) and not isinstance(target, WorkflowContext | ExecutionContext):
        target = target()
    if not isinstance(target, WorkflowContext | ExecutionContext):
        raise GraflowError(
            f"{ref} is a {type(target).__name__}; expected a workflow(...) or a function "
            "returning one")
    return target
