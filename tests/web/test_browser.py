"""The console in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright, on a real cluster. Screenshots go to docs/img/ (README and
docs/console.md show them).

Skipped with the reason when Playwright or Chromium is absent, unless
``GRAFLOW_DIST_REQUIRE_BROWSER=1`` (``.ci/run`` sets it): then their absence fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_helpers import TASKS, gated_workflow, open_gates, poll, wait_one_executor_each

from graflow_dist import Client, TaskExecutionContext, task, workflow
from graflow_dist.embedded.cluster import LocalCluster

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REQUIRE_ENV = "GRAFLOW_DIST_REQUIRE_BROWSER"
CHROMIUM_ENV = "GRAFLOW_DIST_CHROMIUM"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
UI_TIMEOUT_MS = 20_000
RUN_TIMEOUT_S = 60


def _chromium() -> str | None:
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which(
        "chromium-browser")


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if _chromium() is None:
        return "Chromium is not installed (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = browser.new_page()
    tab.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield tab
    finally:
        tab.close()


def node_state(page: Any, task_id: str) -> str:
    classes = page.locator(f'#graph g.gf-node[data-node-id="{task_id}"]').get_attribute("class")
    return next((c.removeprefix("gf-state-") for c in (classes or "").split()
                 if c.startswith("gf-state-")), "")


def wait_state(page: Any, task_id: str, state: str) -> None:
    page.wait_for_selector(f'#graph g.gf-node.gf-state-{state}[data-node-id="{task_id}"]')


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_the_graph_shows_every_task_and_recolours_as_the_run_progresses(
        page: Any, client: Client, console_cluster: LocalCluster, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    run = client.submit(gated_workflow("browser-demo", gates))
    page.goto(console_cluster.ui_url + f"runs/{run.session_id}")
    texts = page.locator("#graph svg text").all_text_contents()
    for task_id in TASKS:
        assert task_id in texts
    wait_state(page, "start", "running")
    assert node_state(page, "finish") == "pending"

    open_gates(gates, "start", "left")
    wait_state(page, "start", "done")
    wait_state(page, "left", "done")
    wait_state(page, "right", "running")
    page.wait_for_selector('#tasks-table tr[data-task="right"] .state-running')
    shoot(page, "console-run.png")

    open_gates(gates, "right", "finish")
    wait_state(page, "finish", "done")
    page.wait_for_selector("#run-status.status-completed")
    assert {node_state(page, t) for t in TASKS} == {"done"}
    page.wait_for_selector("#checkpoints-table button.resume")
    preview = page.locator('#tasks-table tr[data-task="finish"] code').inner_text()
    assert preview == "'started+left|started+right'"


def test_runs_page_lists_runs_and_bulk_cancels(page: Any, client: Client,
                                               console_cluster: LocalCluster,
                                               tmp_path: Path) -> None:
    runs = [client.submit(gated_workflow("browser-bulk", tmp_path / f"g{i}"))
            for i in range(2)]
    page.goto(console_cluster.ui_url + "?workflow=browser-bulk")
    for run in runs:
        page.wait_for_selector(f'#runs-table tr[data-session="{run.session_id}"]')
        page.locator(f'#runs-table input.pick[value="{run.session_id}"]').check()
    shoot(page, "console-runs.png")
    page.locator("#bulk-cancel").click()
    page.wait_for_selector("#flash.ok")
    assert "cancellation requested for 2 run(s)" in page.locator("#flash").inner_text()
    for run in runs:
        page.wait_for_selector(
            f'#runs-table tr[data-session="{run.session_id}"] .status-cancelled')
    for i in range(2):
        open_gates(tmp_path / f"g{i}", *TASKS)


def test_cancel_retry_and_resume_from_the_run_page(page: Any, client: Client,
                                                   console_cluster: LocalCluster,
                                                   tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    run = client.submit(gated_workflow("browser-actions", gates, fail_until_flag=True))
    page.goto(console_cluster.ui_url + f"runs/{run.session_id}")
    wait_state(page, "start", "running")
    open_gates(gates, "start", "left", "right", "finish")
    wait_state(page, "finish", "failed")
    page.locator('#tasks-table tr[data-task="finish"] summary').click()
    assert "RuntimeError: finish is not fixed yet" in page.locator(
        '#tasks-table tr[data-task="finish"] pre').inner_text()
    shoot(page, "console-failed-task.png")

    open_gates(gates, "fixed")
    page.locator('#tasks-table button.retry[data-task="finish"]').click()
    wait_state(page, "finish", "done")
    page.wait_for_selector("#run-status.status-completed")
    assert run.wait(timeout=RUN_TIMEOUT_S) == "started+left|started+right"

    # The checkpoint was taken after start: the resumed run waits in left, long enough
    # to see it and cancel it.
    (gates / "left").unlink()
    page.locator("#checkpoints-table button.resume").first.click()
    page.wait_for_selector("#flash.ok")
    wait_state(page, "left", "running")
    assert node_state(page, "start") == "done"
    page.wait_for_selector("#run-status.status-running")
    page.locator("#cancel-run").click()
    page.wait_for_selector("#run-status.status-cancelled")
    poll(lambda: run.status() == "cancelled", "the resumed run to be cancelled")
    open_gates(gates, "left")


def test_workers_page_shows_workers_queues_and_the_leader(
        page: Any, console_cluster: LocalCluster) -> None:
    wait_one_executor_each(console_cluster)
    page.goto(console_cluster.ui_url + "workers")
    rows = page.locator("#workers-table tbody tr[data-worker]")
    rows.first.wait_for()
    assert rows.count() == 2
    assert "leader" in page.locator("#coordinators-table").inner_text()
    assert "graflow" in page.locator("#queues-table").inner_text()
    shoot(page, "console-workers.png")


def test_approve_a_waiting_task_from_the_feedback_page(
        page: Any, client: Client, console_cluster: LocalCluster) -> None:
    with workflow("browser-approval") as wf:

        @task(inject_context=True)
        def approve(ctx: TaskExecutionContext) -> str:
            answer = ctx.request_approval("Ship release 1.2 to production?", timeout=600)
            return "shipped" if answer else "held"

    run = client.submit(wf)
    poll(lambda: run.status() == "waiting", "the run to wait for its approval")
    page.goto(console_cluster.ui_url + f"runs/{run.session_id}")
    wait_state(page, "approve", "waiting")
    page.goto(console_cluster.ui_url + "feedback")
    card = page.locator(f'section.feedback[data-type="approval"]:has-text("{run.session_id}")')
    card.wait_for()
    assert "Ship release 1.2 to production?" in card.inner_text()
    card.locator('input[name="reason"]').fill("release notes checked")
    shoot(page, "console-feedback.png")
    card.locator('button[value="true"]').click()
    page.wait_for_selector("#flash.ok")
    assert run.wait(timeout=RUN_TIMEOUT_S) == "shipped"
    answer = client.feedback.get_response(client.feedback.list_requests(run.session_id)[0]
                                          .feedback_id)
    assert answer.approved is True and answer.reason == "release notes checked"
