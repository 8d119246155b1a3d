"""compose.yaml passes the Compose specification's schema and keeps the properties a
single-host deployment relies on (AOF, health checks, shutdown time, secrets)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from deploy.rendering import REPO, duration_s, load_yaml, product_env_names, require_module

COMPOSE = REPO / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of `environment`"
    return {k: str(v) for k, v in env.items()}


def default_of(value: str) -> str:
    """``${VAR:-default}`` -> ``default``; other values unchanged."""
    match = re.fullmatch(r"\$\{\w+:-([^}]*)\}", value)
    return match.group(1) if match else value


def test_compose_file_matches_the_compose_specification() -> None:
    require_module("check_jsonschema", "check-jsonschema")
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert re.fullmatch(r"redis:\d+(\.\d+)*(-[a-z0-9]+)?", redis["image"])
    script = " ".join(redis["command"])
    assert "--appendonly yes" in script
    assert "--appendfsync everysec" in script
    volumes = dict(v.split(":", 1) for v in redis["volumes"])
    assert volumes.get("redis-data") == "/data"
    assert "redis-data" in compose["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def test_redis_requires_a_password_without_putting_it_on_its_command_line(
        compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    script = " ".join(redis["command"])
    assert "requirepass $$REDIS_PASSWORD" in script and " - <<" in script
    assert "--requirepass" not in script
    assert environment(redis)["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    # Published for `graflow-dist submit` from the host, on loopback only.
    assert all(str(p).startswith("127.0.0.1:") for p in redis.get("ports", []))


@pytest.mark.parametrize("name", ["coordinator", "worker"])
def test_services_share_the_redis_url_and_secret(compose: dict[str, Any], name: str) -> None:
    env = environment(compose["services"][name])
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/\d+",
                        env["GRAFLOW_DIST_REDIS_URL"])
    # `:?` makes compose refuse to start without it instead of using an empty key.
    assert env["GRAFLOW_DIST_SECRET"].startswith("${GRAFLOW_DIST_SECRET:?")
    unknown = {n for n in env if n.startswith("GRAFLOW_DIST_")} - product_env_names()
    assert not unknown, f"graflow-dist reads no such variables: {sorted(unknown)}"
    # Services listen on 127.0.0.1 by default; containers are scraped from outside.
    assert env["GRAFLOW_DIST_METRICS_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("name", ["coordinator", "worker"])
def test_health_checks_use_livez_on_the_metrics_port(compose: dict[str, Any],
                                                    name: str) -> None:
    service = compose["services"][name]
    port = environment(service)["GRAFLOW_DIST_METRICS_PORT"]
    check = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/livez" in check
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]


def test_two_coordinators_share_the_checkpoint_volume(compose: dict[str, Any]) -> None:
    coordinator = compose["services"]["coordinator"]
    assert coordinator["deploy"]["replicas"] == 2
    directory = environment(coordinator)["GRAFLOW_DIST_CHECKPOINT_DIR"]
    volumes = dict(v.split(":", 1) for v in coordinator["volumes"])
    assert directory in volumes.values()
    assert [k for k, v in volumes.items() if v == directory][0] in compose["volumes"]


def test_workers_scale_and_stop_gracefully(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    # `docker compose up --scale worker=N` needs no fixed name and no host port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["graflow-dist", "worker"]
    grace_s = float(default_of(environment(worker)["GRAFLOW_DIST_GRACE_PERIOD_S"]))
    # Docker's default is 10 s, then SIGKILL: the task would be cut short.
    assert duration_s(worker["stop_grace_period"]) >= grace_s + 10


def test_the_image_is_built_from_the_repository(compose: dict[str, Any]) -> None:
    for name in ("coordinator", "worker"):
        build = compose["services"][name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
