"""Loading ``MODULE:ATTR`` workflow references for ``graflow-dist submit``.

What the user's code does wrong (a syntax error, a failed import, an attribute that is
a task or needs arguments) becomes one `GraflowError` line, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import cloudpickle

from graflow_dist.core.context import ExecutionContext
from graflow_dist.core.task import Executable
from graflow_dist.core.workflow import WorkflowContext
from graflow_dist.errors import GraflowError

# A reference that exists in every installation, for hints.
EXAMPLE_REF = "graflow_dist.demo:wf"
WORKFLOW_TYPES = (WorkflowContext, ExecutionContext)
_WORKFLOW_TYPE_NAME = re.compile(r"\b(WorkflowContext|ExecutionContext)\b")


def load_module(ref: str, by_value: bool = False) -> ModuleType:
    """Import a dotted module, or load a ``.py`` file.

    Tasks of a file, of a module found only through the current directory, and (with
    ``by_value``) of any dotted module are pickled by value, so workers need not have
    the module installed; otherwise workers import it.
    """
    if ref.endswith(".py") or "/" in ref:
        return _load_file(ref)
    cwd = os.getcwd()
    # As `python -m` does: `flows:wf` finds ./flows.py.
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(ref)
    except ModuleNotFoundError as exc:
        if exc.name and (ref == exc.name or ref.startswith(exc.name + ".")):
            raise GraflowError(
                f"no module named {ref!r} (looked in the current directory and the "
                f"installed packages); give a file instead, e.g. path/to/{ref.split('.')[-1]}"
                ".py:ATTR") from None
        raise _user_code_error(ref, _origin(ref), exc) from None
    except Exception as exc:  # noqa: BLE001 - user code at import: any error, one line
        raise _user_code_error(ref, _origin(ref), exc) from None
    module_file = getattr(module, "__file__", None)
    if by_value or (module_file and _under(Path(module_file), Path(cwd))
                    and not _installed(module_file)):
        # Workers run elsewhere: a module that is not installed must travel with the run.
        cloudpickle.register_pickle_by_value(module)
    return module


def _load_file(ref: str) -> ModuleType:
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
    except Exception as exc:  # noqa: BLE001 - user code at import: any error, one line
        sys.modules.pop(name, None)
        raise _user_code_error(ref, str(path), exc) from None
    finally:
        sys.path.remove(str(path.parent))
    cloudpickle.register_pickle_by_value(module)
    return module


def _user_code_error(ref: str, path: str | None, exc: BaseException) -> GraflowError:
    """``flows.py line 3: SyntaxError: ...``: where in the user's code, and what."""
    if isinstance(exc, SyntaxError):
        where = f"{_shown(exc.filename) if exc.filename else ref} line {exc.lineno}"
        return GraflowError(f"{where}: SyntaxError: {exc.msg}")
    frames = traceback.extract_tb(exc.__traceback__)
    target = Path(path).resolve() if path else None
    user = [f for f in frames if target is not None and Path(f.filename).resolve() == target]
    where = f"{_shown(user[-1].filename)} line {user[-1].lineno}" if user else ref
    kind = "cannot import" if isinstance(exc, ImportError) else "failed at import"
    return GraflowError(f"{where}: {kind}: {type(exc).__name__}: {exc}")


def _shown(filename: str) -> str:
    """A path as the user would type it: relative to the current directory if inside."""
    relative = os.path.relpath(filename)
    return filename if relative.startswith("..") else relative


def _origin(ref: str) -> str | None:
    try:
        spec = importlib.util.find_spec(ref)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


def _under(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def _installed(module_file: str) -> bool:
    return "site-packages" in Path(module_file).parts or "dist-packages" in Path(
        module_file).parts


def load_workflow(ref: str, by_value: bool = False) -> WorkflowContext | ExecutionContext:
    """``MODULE:ATTR`` where ATTR is a workflow, a context, or a function that takes no
    arguments and returns one (annotated ``-> WorkflowContext``, or not annotated)."""
    module_ref, sep, attr = ref.rpartition(":")
    if not sep or not module_ref or not attr:
        raise GraflowError(f"expected MODULE:ATTR (e.g. {EXAMPLE_REF} or flows.py:wf), "
                           f"got {ref!r}")
    module = load_module(module_ref, by_value)
    try:
        target: Any = getattr(module, attr)
    except AttributeError:
        found = sorted(k for k, v in vars(module).items() if isinstance(v, WORKFLOW_TYPES))
        hint = f"; workflows in it: {', '.join(found)}" if found else ""
        raise GraflowError(f"{module_ref} has no attribute {attr!r}{hint}") from None
    if isinstance(target, WORKFLOW_TYPES):
        return target
    if isinstance(target, FunctionType):
        target = _call_factory(ref, target)
    elif isinstance(target, Executable):
        raise GraflowError(f"{ref} is a task, not a workflow: submit the workflow(...) "
                           "it belongs to (or a function returning it)")
    if not isinstance(target, WORKFLOW_TYPES):
        raise GraflowError(
            f"{ref} is a {type(target).__name__}; expected a workflow(...) or a function "
            "returning one")
    return target


def _call_factory(ref: str, factory: FunctionType) -> Any:
    signature = inspect.signature(factory)
    required = [p.name for p in signature.parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise GraflowError(f"{ref} needs arguments ({', '.join(required)}); give a "
                           "workflow, or a function that builds one without arguments")
    returns = signature.return_annotation
    if returns is not signature.empty:
        shown = returns if isinstance(returns, str) else getattr(returns, "__name__",
                                                                  repr(returns))
        if not _WORKFLOW_TYPE_NAME.search(str(shown)):
            # e.g. a script's `main() -> None`: calling it would run the script.
            raise GraflowError(f"{ref} returns {shown}, not a workflow; give a workflow, "
                               "or a function annotated `-> WorkflowContext`")
    try:
        return factory()
    except Exception as exc:  # noqa: BLE001 - user code: any error, one line
        raise GraflowError(f"{ref}() raised {type(exc).__name__}: {exc}") from None
