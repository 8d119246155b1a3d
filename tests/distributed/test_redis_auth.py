"""A cluster on a password-protected Redis: password URLs work everywhere, wrong or
missing passwords fail clearly, and the password shows up in no command line or log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clusters import WORKER_OPTIONS

from graflow_dist import Client, parallel, task, workflow
from graflow_dist.embedded import RedisServer
from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import ConnectionConfigError

PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("auth-cluster")
    with RedisServer(password=PASSWORD, dir=root / "redis") as server, LocalCluster(
        2, redis_url=server.url, data_dir=str(root / "services"),
        worker_options=WORKER_OPTIONS,
    ) as running:
        yield running


def test_a_cluster_on_a_password_protected_redis_runs_workflows(
    auth_cluster: LocalCluster,
) -> None:
    assert PASSWORD in auth_cluster.url
    with workflow("with-password") as wf:

        @task
        def a() -> int:
            return 20

        @task
        def b() -> int:
            return 22

        @task
        def total(a: int, b: int) -> int:
            return a + b

        parallel(a, b) >> total

    with Client(auth_cluster.url) as client:
        assert client.submit(wf).wait(timeout=60) == 42


def test_the_password_is_in_no_command_line_or_log(auth_cluster: LocalCluster) -> None:
    services = [auth_cluster.coordinator, *auth_cluster.workers]
    for service in services:
        assert service is not None and service.alive()
        cmdline = Path(f"/proc/{service.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert PASSWORD.encode() not in cmdline, f"{service.kind} argv shows the password"
        if service.log_path is not None:
            assert PASSWORD not in Path(service.log_path).read_text(errors="replace")


@pytest.mark.parametrize("userinfo", [":wrong-password@", ""], ids=["wrong", "missing"])
def test_a_client_with_a_wrong_password_gets_a_clear_error(
    auth_cluster: LocalCluster, userinfo: str
) -> None:
    port = auth_cluster.url.rsplit(":", 1)[1].split("/")[0]
    url = f"redis://{userinfo}127.0.0.1:{port}/0"
    with pytest.raises(ConnectionConfigError, match="credentials|password") as raised:
        Client(url)
    assert "wrong-password" not in str(raised.value)
    assert f"127.0.0.1:{port}" in str(raised.value)
