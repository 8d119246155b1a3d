"""A wheel (what the worker image installs) carries every file the package reads, not
only its modules: the editable install of the tests would not notice a missing one."""

from __future__ import annotations

import fnmatch
import tomllib

from deploy.rendering import REPO


def test_every_data_file_of_the_package_is_declared() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = config["tool"]["setuptools"].get("package-data", {})
    package_root = REPO / "graflow_dist"
    missing = []
    for path in package_root.rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(REPO)
        owners = [p for p in declared if relative.is_relative_to(p.replace(".", "/"))]
        if not any(fnmatch.fnmatch(str(relative.relative_to(owner.replace(".", "/"))), pattern)
                   for owner in owners for pattern in declared[owner]):
            missing.append(str(relative))
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
