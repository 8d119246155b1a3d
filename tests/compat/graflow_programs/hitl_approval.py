"""An approval answered by another thread: through the run's own FeedbackManager
(Graflow writes ``channel_key`` only when the answer goes through that manager), and
the stored requests read back through a second manager on the same directory."""

import threading
import time

from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.workflow import workflow
from graflow.hitl.manager import FeedbackManager
from graflow.hitl.types import FeedbackResponse, FeedbackType


def answer_when_asked(desk: FeedbackManager) -> None:
    for _ in range(400):
        for request in desk.list_pending_requests():
            print("pending:", request.task_id, request.feedback_type.value, request.prompt)
            desk.provide_feedback(request.feedback_id, FeedbackResponse(
                feedback_id=request.feedback_id, response_type=FeedbackType.APPROVAL,
                approved=True, reason="tests passed", responded_by="alice"))
            return
        time.sleep(0.05)


with workflow("approval") as wf:

    @task
    def process():
        return "2.4.1"

    @task(inject_context=True)
    def request_approval(context: TaskExecutionContext):
        response = context.request_feedback(
            feedback_type="approval", prompt="Deploy 2.4.1?", timeout=30,
            channel_key="deploy_approved", write_to_channel=True)
        print("approved:", response.approved, "reason:", response.reason,
              "by:", response.responded_by, "type:", response.response_type.value)
        return response.approved

    @task(inject_context=True)
    def deploy(context: TaskExecutionContext):
        approved = context.get_channel().get("deploy_approved")
        print("channel deploy_approved:", approved)
        return "deployed" if approved else "skipped"

    process >> request_approval >> deploy

    ctx = ExecutionContext.create(wf.graph, "process")
    person = threading.Thread(target=answer_when_asked, args=(ctx.feedback_manager,))
    person.start()
    result = WorkflowEngine().execute(ctx)
    person.join()
    print("result:", result)
    print("completed:", ctx.completed_tasks)
    stored = FeedbackManager(backend="filesystem",
                             backend_config={"data_dir": "feedback_data"}).list_requests()
    print("requests:", [(r.task_id, r.status) for r in stored])
