"""Rendering and lookups for the deployment tests.

Nothing here talks to a cluster, a Docker engine or the network. A missing tool fails
the test with what to install; nothing is skipped.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# "+checkpoints-in-redis": the production overlay with its commented-out component
# enabled, as its comment and deploy/README.md tell operators without RWX storage to do.
PRODUCTION_WITH_REDIS_CHECKPOINTS = "overlays/production+checkpoints-in-redis"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/production",
                  PRODUCTION_WITH_REDIS_CHECKPOINTS]
OVERLAYS = ["overlays/dev", "overlays/production", PRODUCTION_WITH_REDIS_CHECKPOINTS]
COMMENTED_COMPONENT = "# components:\n#   - ../../components/checkpoints-in-redis\n"
ENABLED_COMPONENT = "components:\n  - ../../components/checkpoints-in-redis\n"
KUBERNETES_VERSION = "1.30.0"

# The Secret every manifest reads (created by hand or by secret tooling in production).
SECRET_NAME = "graflow-secrets"
SECRET_KEYS = {"redis-password", "hmac-secret"}


def require_module(name: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"{package} is needed to validate the deployment files ({exc}); "
                    f"install the test extra: pip install -e '.[test]'", pytrace=False)


def require_executable(name: str, how: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not on PATH; {how}", pytrace=False)
    return path


@cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize deploy/<kustomization>``, parsed."""
    if kustomization == PRODUCTION_WITH_REDIS_CHECKPOINTS:
        with tempfile.TemporaryDirectory(prefix="graflow-deploy-") as tmp:
            copy = Path(tmp) / "deploy"
            shutil.copytree(DEPLOY, copy)
            overlay = copy / "overlays" / "production" / "kustomization.yaml"
            text = overlay.read_text()
            assert COMMENTED_COMPONENT in text, "the production overlay no longer offers " \
                "the checkpoints-in-redis component as a commented-out line"
            overlay.write_text(text.replace(COMMENTED_COMPONENT, ENABLED_COMPONENT))
            return _kustomize(overlay.parent, kustomization)
    return _kustomize(DEPLOY / kustomization, kustomization)


def _kustomize(directory: Path, name: str) -> tuple[dict[str, Any], ...]:
    kubectl = require_executable(
        "kubectl", "it renders the Kustomize overlays offline (kubectl >= 1.27)")
    proc = subprocess.run([kubectl, "kustomize", str(directory)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize deploy/{name} failed:\n{proc.stderr}",
                    pytrace=False)
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


@cache
def product_env_names() -> frozenset[str]:
    """Every ``GRAFLOW_DIST_*`` variable the package reads (found in its source)."""
    names: set[str] = set()
    for path in (REPO / "graflow_dist").rglob("*.py"):
        names.update(re.findall(r"GRAFLOW_DIST_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    return frozenset(names)


def duration_s(value: str | int | float) -> float:
    """``45s``, ``1m30s``, ``45`` -> seconds."""
    if isinstance(value, int | float):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)?", value.strip())
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "": 1}
    return sum(float(num) * units[unit] for num, unit in parts)


class Rendered:
    """Lookups over one rendered kustomization."""

    def __init__(self, docs: tuple[dict[str, Any], ...]) -> None:
        self.docs = docs

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert found, f"no {kind} named {name!r} in the rendered manifests"
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(d["metadata"]["name"] == name for d in self.of_kind(kind))

    def workloads(self) -> list[dict[str, Any]]:
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")

    def settings(self) -> dict[str, str]:
        """The data of the generated ``graflow-settings-<hash>`` ConfigMap."""
        found = [d for d in self.of_kind("ConfigMap")
                 if d["metadata"]["name"].startswith("graflow-settings")]
        assert len(found) == 1, "expected one graflow-settings ConfigMap"
        return found[0]["data"]

    def container(self, kind: str, name: str) -> dict[str, Any]:
        containers = self.get(kind, name)["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, f"{kind}/{name}: expected one container"
        return containers[0]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
