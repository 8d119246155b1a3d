"""The package's layers (docs/architecture.md): every import goes down or sideways, never
up; no import cycle; no command reaches Redis except through the broker.

Imports under ``if TYPE_CHECKING:`` are not imports at run time and are not counted.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "graflow_dist"

# Lowest first. A module may import its own layer or lower ones.
LAYERS: list[set[str]] = [
    {"errors", "optional", "names", "limits", "files", "scheduler", "observability",
     "drawing"},
    {"wire", "broker"},
    {"channels", "checkpoint"},
    {"core", "hitl", "coordination", "trace", "utils", "exceptions", "demo"},
    {"coordinator", "worker"},
    {"client", "submitter"},
    {"cli", "web", "embedded", ""},  # "": the package's own __init__
]
# Function-level imports of graflow_dist modules allowed (optional, heavy): module ->
# what it imports lazily, and why.
LAZY_ALLOWED = {
    ("graflow_dist", "graflow_dist.client"): "keeps redis and rq out of `import graflow_dist`",
    ("graflow_dist.checkpoint.io", "graflow_dist.checkpoint.redis_store"):
        "keeps redis out of `import graflow_dist` (only redis:// checkpoint paths need it)",
    ("graflow_dist.coordination.executor", "graflow_dist.coordination.redis_coordinator"):
        "keeps redis and rq out of `import graflow_dist` (only the redis backend needs them)",
}
# Where Redis commands may be issued and Redis key names spelled.
REDIS_FREE = ["client.py", "coordinator", "worker", "cli", "web"]
REDIS_CALL = re.compile(
    r"\.(hset|hget|hgetall|hdel|hmget|hincrby|xadd|xread|xrange|xrevrange|xtrim|zadd|"
    r"zrem|zrange|zrevrange|zscore|zcount|zcard|sadd|srem|smembers|lpush|rpush|lpop|"
    r"blpop|llen|lrange|scan_iter|execute_command|pipeline|expire|setex|mget|eval|evalsha)\(")
KEY_LITERAL = re.compile(r"""["'](rq:|[a-z]+:run:|graflow:)""")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    top = top.removesuffix(".py")
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module}: not in any layer of tests/test_layers.py")


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[str, int, bool]] = []  # (module, line, in a function)
        self._depth = 0

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self._depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for alias in node.names:
                self.found.append((f"{node.module}.{alias.name}", node.lineno, self._depth > 0))


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in modules}
    lazy: list[tuple[str, str, int]] = []
    for module, path in modules.items():
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text()))
        for name, line, in_function in visitor.found:
            if not name.startswith("graflow_dist"):
                continue
            target = resolve(name)
            if target is None or target == module:
                continue
            edges[module].add(target)
            # Importing a.b.c runs the __init__ of a.b (and a) first.
            parent = target.rpartition(".")[0]
            while parent and parent != module and parent in modules \
                    and not module.startswith(parent + "."):
                edges[module].add(parent)
                parent = parent.rpartition(".")[0]
            if in_function:
                lazy.append((module, target, line))
    return edges, lazy


def test_imports_never_go_up_a_layer() -> None:
    edges, _lazy = _graph()
    upward = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
              for a, targets in edges.items() for b in targets if _layer(b) > _layer(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle() -> None:
    edges, _lazy = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    assert not cycles, cycles


def test_function_level_imports_are_the_listed_few() -> None:
    _edges, lazy = _graph()
    unlisted = [f"{a}:{line} imports {b}" for a, b, line in lazy
                if (a, b) not in LAZY_ALLOWED]
    assert not unlisted, "\n".join(unlisted)
    assert len(LAZY_ALLOWED) <= 3


def test_import_graflow_dist_leaves_redis_and_rq_out() -> None:
    """An in-process user does not pay for the cluster's libraries (0.3 s of imports)."""
    code = ("import sys, graflow_dist; "
            "print(' '.join(m for m in ('redis', 'rq') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "", f"`import graflow_dist` imported {out}"


def test_only_the_broker_talks_to_redis() -> None:
    offenders = []
    for entry in REDIS_FREE:
        root = PACKAGE / entry
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "broker" in line:
                    continue  # a broker method
                if REDIS_CALL.search(line) or KEY_LITERAL.search(line):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
