"""Who may use the console: loopback only without a token, the token everywhere once
set, and actions only from the console's own pages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from console_helpers import ConsoleHttp
from starlette.testclient import TestClient

from graflow_dist.embedded.cluster import LocalCluster
from graflow_dist.errors import ConsoleAccessError
from graflow_dist.web import ConsoleSettings, create_app

TOKEN = "s3cret-console-token"


def test_actions_need_the_csrf_header_and_a_same_origin(http: ConsoleHttp) -> None:
    body = {"sessions": ["no-such-run"]}
    missing = http.http.post("/api/runs/cancel", json=body)
    assert missing.status_code == 403 and "x-csrf-token" in missing.json()["error"]
    wrong = http.post("/api/runs/cancel", body, headers={"x-csrf-token": "forged"})
    assert wrong.status_code == 403
    foreign = http.post("/api/runs/cancel", body, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
    cross = http.post("/api/runs/cancel", body, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    own = http.post("/api/runs/cancel", body,
                    headers={"origin": str(http.http.base_url).rstrip("/")})
    assert own.status_code == 200 and own.json()["cancelled"] == []


def test_a_foreign_host_name_is_refused_without_a_token(http: ConsoleHttp) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1
    refused = http.get("/api/runs", headers={"host": "evil.example:8080"})
    assert refused.status_code == 403 and "evil.example" in refused.json()["error"]
    assert http.get("/api/runs", headers={"host": "localhost:1"}).status_code == 200
    assert http.get("/livez").text == "ok"


def test_with_a_token_every_request_needs_it(console_cluster: LocalCluster) -> None:
    settings = ConsoleSettings(redis_url=console_cluster.url, token=TOKEN, host="0.0.0.0")
    with TestClient(create_app(settings), base_url="http://console.example") as web:
        assert web.get("/api/runs").status_code == 401
        assert web.get("/api/runs", headers={"authorization": "Bearer wrong"}
                       ).status_code == 401
        ok = web.get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and "runs" in ok.json()
        # a bearer header is no cookie a browser sends by itself: no CSRF proof needed
        bulk = web.post("/api/runs/cancel", json={"sessions": ["no-such-run"]},
                        headers={"authorization": f"Bearer {TOKEN}"})
        assert bulk.status_code == 200

        page = web.get("/workers", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/workers"
        form = web.get("/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        csrf = web.cookies["gf_csrf"]
        bad = web.post("/login", data={"token": "wrong", "csrf_token": csrf, "next": "/"})
        assert bad.status_code == 401 and "wrong token" in bad.text
        forged = web.post("/login", data={"token": TOKEN, "csrf_token": "x", "next": "/"})
        assert forged.status_code == 403
        good = web.post("/login", data={"token": TOKEN, "csrf_token": csrf,
                                        "next": "/workers"}, follow_redirects=False)
        assert good.status_code == 303 and good.headers["location"] == "/workers"
        assert TOKEN not in good.headers["set-cookie"]
        assert web.get("/workers").status_code == 200
        assert web.get("/api/workers").status_code == 200
        outside = web.post("/login", data={"token": TOKEN, "csrf_token": csrf,
                                           "next": "https://evil.example/"},
                           follow_redirects=False)
        assert outside.headers["location"] == "/"


def test_serving_beyond_loopback_needs_a_token(console_cluster: LocalCluster) -> None:
    with pytest.raises(ConsoleAccessError, match="GRAFLOW_DIST_UI_TOKEN"):
        ConsoleSettings(host="0.0.0.0").check_bind()
    ConsoleSettings(host="::1").check_bind()
    ConsoleSettings(host="0.0.0.0", token=TOKEN).check_bind()
    refused = subprocess.run(
        [sys.executable, "-m", "graflow_dist.cli.main", "--redis-url", console_cluster.url,
         "ui", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "GRAFLOW_DIST_UI_TOKEN": ""})
    assert refused.returncode == 1
    assert "without a token: set GRAFLOW_DIST_UI_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr
