"""podman for the container tests: images built as deploy/local-image.sh builds them,
and compose.yaml's stack run with plain `podman run` (podman-compose 1.0 cannot run it
without a bridge network), everything named after one project and removed by name."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "deploy" / "podman" / "containers.conf"
WORKER_IMAGE = "localhost/graflow-dist-worker:dev"
BASE_IMAGE = "localhost/debian-min:bookworm"
REDIS_IMAGE = "localhost/graflow-test-redis:dev"
HEALTH_TIMEOUT_S = 90.0


class PodmanError(AssertionError):
    """A podman command failed; the message has its output."""


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF",
                                                              str(CONTAINERS_CONF))}


def podman(*args: str, check: bool = True, timeout_s: float = 120,
           input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("podman")
    if executable is None:
        pytest.fail("podman is not installed: .ci/run installs it (apt-get install podman "
                    "buildah runc fuse-overlayfs slirp4netns uidmap debootstrap)",
                    pytrace=False)
    proc = subprocess.run([executable, *args], capture_output=True, text=True,
                          timeout=timeout_s, env=podman_env(), input=input_text)
    if check and proc.returncode != 0:
        raise PodmanError(f"podman {' '.join(args)} exited {proc.returncode}:\n"
                          f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def build_images() -> None:
    """The worker image through deploy/local-image.sh (its debootstrap base is cached),
    and a Redis image on the same base."""
    proc = subprocess.run([str(REPO / "deploy" / "local-image.sh")], capture_output=True,
                          text=True, timeout=1200, env=podman_env())
    if proc.returncode != 0:
        raise PodmanError(f"deploy/local-image.sh exited {proc.returncode}:\n"
                          f"{proc.stderr[-4000:]}")
    podman("build", "--format", "docker", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
           "--file", str(Path(__file__).with_name("redis.Containerfile")),
           "--tag", REDIS_IMAGE, str(Path(__file__).parent), timeout_s=600)


# --- compose ---------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable syntax: ``$$``, ``${X}``, ``${X:-default}``, ``${X:?error}``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        escaped, name, op, arg, bare = match.groups()
        if escaped:
            return "$"
        name = name or bare
        current = env.get(name)
        if op in (":-", "-"):
            return current if current else arg
        if op in (":?", "?") and not current:
            raise PodmanError(f"compose: {name} is required: {arg}")
        return current or ""

    return _VARIABLE.sub(replace, value)


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of files: mappings merge, everything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in override.items()}}
    return override


def seconds(value: str | int | float) -> int:
    if isinstance(value, int | float):
        return int(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}[unit]
    return max(1, int(total))


class ComposeStack:
    """compose.yaml (plus override files) run with podman.

    Parameters
    ----------
    files:
        compose.yaml first, then overrides.
    env:
        The variables compose would read from ``.env`` and the shell.
    project:
        Prefix of every container and volume name.
    scale:
        Replicas per service, like ``docker compose up --scale worker=3``.
    """

    def __init__(self, files: list[Path], env: dict[str, str], project: str,
                 scale: dict[str, int] | None = None) -> None:
        config: dict[str, Any] = {}
        for path in files:
            config = merge(config, yaml.safe_load(path.read_text()))
        self.config = interpolate(config, env)
        self.project = project
        self.scale = scale or {}
        self.containers: dict[str, list[str]] = {}  # service -> container names
        self.volumes: list[str] = []

    def replicas(self, service: str) -> int:
        spec = self.config["services"][service]
        return self.scale.get(service, spec.get("deploy", {}).get("replicas", 1))

    def up(self) -> ComposeStack:
        for name in self.config.get("volumes", {}):
            volume = f"{self.project}_{name}"
            podman("volume", "create", volume)
            self.volumes.append(volume)
        started: set[str] = set()
        for service in self._start_order():
            for dependency, rule in self.config["services"][service].get(
                    "depends_on", {}).items():
                assert dependency in started
                if rule.get("condition") == "service_healthy":
                    for container in self.containers[dependency]:
                        self.wait_healthy(container)
            self.containers[service] = [self._run(service, i + 1)
                                        for i in range(self.replicas(service))]
            started.add(service)
        return self

    def _start_order(self) -> list[str]:
        order: list[str] = []
        services = self.config["services"]

        def visit(name: str) -> None:
            if name not in order:
                for dependency in services[name].get("depends_on", {}):
                    visit(dependency)
                order.append(name)

        for name in services:
            visit(name)
        return order

    def _run(self, service: str, number: int) -> str:
        spec = self.config["services"][service]
        name = f"{self.project}_{service}_{number}"
        args = ["run", "--detach", "--name", name, "--label", f"graflow-test={self.project}"]
        if "user" in spec:
            args += ["--user", str(spec["user"])]
        for key, value in spec.get("environment", {}).items():
            args += ["--env", f"{key}={value}"]
        for volume in spec.get("volumes", []):
            source, _, target = volume.partition(":")
            if source in self.config.get("volumes", {}):
                source = f"{self.project}_{source}"
            args += ["--volume", f"{source}:{target}"]
        for port in spec.get("ports", []):
            args += ["--publish", str(port)]
        if spec.get("read_only"):
            args.append("--read-only")
        for path in spec.get("tmpfs", []):
            args += ["--tmpfs", path]
        for capability in spec.get("cap_drop", []):
            args += ["--cap-drop", capability]
        for option in spec.get("security_opt", []):
            args += ["--security-opt", option]
        if "network_mode" in spec:
            args += ["--network", spec["network_mode"]]
        if "stop_grace_period" in spec:
            args += ["--stop-timeout", str(seconds(spec["stop_grace_period"]))]
        if "restart" in spec:
            args += ["--restart", spec["restart"]]
        check = spec.get("healthcheck")
        if check:
            test = check["test"]
            command = (json.dumps(test[1:]) if test[0] == "CMD" else test[1])
            args += ["--health-cmd", command,
                     "--health-timeout", check.get("timeout", "30s"),
                     "--health-retries", str(check.get("retries", 3)),
                     # podman runs checks on systemd timers, which this machine lacks:
                     # the tests run them (wait_healthy).
                     "--health-interval", "disable"]
        args.append(spec["image"])
        command = spec.get("command")
        if command:
            args += command if isinstance(command, list) else ["sh", "-c", command]
        podman(*args)
        return name

    def healthy(self, container: str) -> bool:
        return podman("healthcheck", "run", container, check=False).returncode == 0

    def wait_healthy(self, container: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy(container):
            if time.monotonic() > deadline:
                raise PodmanError(f"{container} not healthy after {timeout_s} s; its log:\n"
                                  f"{self.logs(container)}")
            time.sleep(1)

    def logs(self, container: str, tail: int = 40) -> str:
        proc = podman("logs", "--tail", str(tail), container, check=False)
        return proc.stdout + proc.stderr

    def all_logs(self) -> str:
        return "\n".join(f"--- {c}\n{self.logs(c)}" for names in self.containers.values()
                         for c in names)

    def running(self, container: str) -> bool:
        proc = podman("inspect", "--format", "{{.State.Running}}", container, check=False)
        return proc.stdout.strip() == "true"

    def container_of_host(self, hostname: str) -> str:
        """The container whose hostname (its short id) is ``hostname``."""
        for names in self.containers.values():
            for name in names:
                if podman("inspect", "--format", "{{.Config.Hostname}}",
                          name).stdout.strip() == hostname:
                    return name
        raise AssertionError(f"no container of the stack has hostname {hostname!r}")

    def down(self) -> None:
        for names in reversed(list(self.containers.values())):
            for name in names:
                podman("rm", "--force", "--time", "0", name, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "--force", volume, check=False)
