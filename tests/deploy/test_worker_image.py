"""workers/Dockerfile, read without a Docker engine: base image, non-root user, signal
handling, and a build context that contains what the image installs."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import PurePosixPath

import pytest

from deploy.rendering import REPO, Rendered, product_env_names, render

DOCKERFILE = REPO / "workers" / "Dockerfile"
DOCKERIGNORE = REPO / "workers" / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined."""
    result, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def of(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def env_defaults() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in of("ENV"):
        for pair in args.split():
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def test_every_stage_starts_from_python_3_11_slim() -> None:
    stages = of("FROM")
    assert stages and all(s.split()[0] == "python:3.11-slim" for s in stages)


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    user = of("USER")[-1]
    uid, _, gid = user.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it.
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    for workload in Rendered(render("base")).of_kind("Deployment"):
        security = workload["spec"]["template"]["spec"]["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))


def test_signals_reach_graflow_dist_and_the_default_command_is_a_worker() -> None:
    entrypoint = json.loads(of("ENTRYPOINT")[-1])  # exec form: no shell in between
    assert PurePosixPath(entrypoint[0]).name == "tini" and entrypoint[-1] == "--"
    assert json.loads(of("CMD")[-1]) == ["graflow-dist", "worker"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "graflow-dist" in scripts


def test_defaults_match_the_deployments() -> None:
    env = env_defaults()
    assert {n for n in env if n.startswith("GRAFLOW_DIST_")} <= product_env_names()
    assert env["GRAFLOW_DIST_LOG_FORMAT"] == "json"
    port = int(env["GRAFLOW_DIST_METRICS_PORT"])
    assert of("EXPOSE") == [str(port)]
    settings = Rendered(render("base")).settings()
    assert int(settings["GRAFLOW_DIST_METRICS_PORT"]) == port
    assert settings["GRAFLOW_DIST_CHECKPOINT_DIR"] == env["GRAFLOW_DIST_CHECKPOINT_DIR"]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = PurePosixPath(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.replace("**/", ""))
               for p in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("source", [
    "pyproject.toml", "README.md", "graflow_dist", "graflow_dist/__init__.py",
    "graflow_dist/cli/main.py",
])
def test_the_build_context_keeps_what_the_image_installs(source: str) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert (REPO / source).exists()
    assert not _ignored(source, patterns)
    assert _ignored(".venv/bin/python", patterns) and _ignored(".git/HEAD", patterns)
    assert _ignored("graflow_dist/__pycache__/x.pyc", patterns)


def test_copied_sources_exist_in_the_repository() -> None:
    for args in of("COPY"):
        if args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the build context"
