"""Human feedback through the console's HTTP API (Graflow's paths and shapes) on a real
cluster: list, detail, respond (the waiting task continues), cancel, the form pages."""

from __future__ import annotations

from typing import Any

from console_helpers import ConsoleHttp, poll

from graflow_dist import Client, TaskExecutionContext, task, workflow

RUN_TIMEOUT_S = 60


def asking_workflow(kind: str, **options: Any):  # noqa: ANN201
    with workflow(f"ask-{kind}") as wf:

        @task(inject_context=True)
        def ask(ctx: TaskExecutionContext) -> Any:
            try:
                answer = ctx.request_feedback(kind, f"a {kind} question", timeout=600,
                                              **options)
            except Exception as exc:  # a cancelled request reaches the task as an error
                return f"{type(exc).__name__}: {exc}"
            return answer.value()

    return wf


def waiting_request(client: Client, run: Any) -> str:
    return poll(lambda: client.pending_feedback(run.session_id), "the request")[0].feedback_id


def test_list_detail_and_respond_like_graflow_s_api(client: Client, http: ConsoleHttp) -> None:
    run = client.submit(asking_workflow("selection", options=["blue", "green"]))
    feedback_id = waiting_request(client, run)

    listed = http.get("/api/feedback", params={"session_id": run.session_id}).json()
    assert listed["count"] == 1
    request = listed["requests"][0]
    assert (request["feedback_id"], request["feedback_type"], request["status"]) == (
        feedback_id, "selection", "pending")
    assert request["options"] == ["blue", "green"] and request["task_id"] == "ask"
    assert feedback_id in {r["feedback_id"] for r in http.get("/api/feedback").json()
                           ["requests"]}
    detail = http.get(f"/api/feedback/{feedback_id}").json()
    assert detail["request"]["prompt"] == "a selection question" and detail["response"] is None

    wrong = http.post(f"/api/feedback/{feedback_id}/respond", {"selected": "red"})
    assert wrong.status_code == 400 and "blue" in wrong.json()["detail"]
    unknown_field = http.post(f"/api/feedback/{feedback_id}/respond", {"colour": "blue"})
    assert unknown_field.status_code == 400
    answered = http.post(f"/api/feedback/{feedback_id}/respond",
                         {"selected": "green", "responded_by": "ann@example.com"})
    assert answered.status_code == 200, answered.text
    assert answered.json()["selected"] == "green"
    assert answered.json()["responded_by"] == "ann@example.com"
    assert run.wait(timeout=RUN_TIMEOUT_S) == "green"

    after = http.get(f"/api/feedback/{feedback_id}").json()
    assert after["request"]["status"] == "completed"
    assert after["response"]["selected"] == "green"
    again = http.post(f"/api/feedback/{feedback_id}/respond", {"selected": "blue"})
    assert again.status_code == 409
    assert http.get("/api/feedback/no-such-id").status_code == 404


def test_cancel_reaches_the_waiting_task(client: Client, http: ConsoleHttp) -> None:
    run = client.submit(asking_workflow("approval"))
    feedback_id = waiting_request(client, run)
    refused = http.http.delete(f"/api/feedback/{feedback_id}")  # no CSRF header
    assert refused.status_code == 403
    cancelled = http.http.delete(f"/api/feedback/{feedback_id}",
                                 headers={"x-csrf-token": http.csrf})
    assert cancelled.status_code == 200
    assert cancelled.json() == {"message": "Feedback request cancelled",
                                "feedback_id": feedback_id}
    result = run.wait(timeout=RUN_TIMEOUT_S)
    assert result.startswith("FeedbackCancelledError")
    assert http.get(f"/api/feedback/{feedback_id}").json()["request"]["status"] == "cancelled"


def test_the_form_pages(client: Client, http: ConsoleHttp) -> None:
    run = client.submit(asking_workflow("text"))
    feedback_id = waiting_request(client, run)
    page = http.get("/feedback")
    assert page.status_code == 200 and feedback_id in page.text
    assert "a text question" in page.text and 'name="text"' in page.text
    form = http.get(f"/ui/feedback/{feedback_id}")
    assert form.status_code == 200 and "a text question" in form.text
    assert http.get("/ui/feedback/", follow_redirects=False).status_code == 307
    assert http.post(f"/api/feedback/{feedback_id}/respond",
                     {"text": "done"}).status_code == 200
    assert run.wait(timeout=RUN_TIMEOUT_S) == "done"
    answered = http.get(f"/ui/feedback/{feedback_id}")
    assert '"text": "done"' in answered.text
