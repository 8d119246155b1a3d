"""No answer in time: the engine checkpoints and returns; a late answer, then resume."""

from graflow.core.checkpoint import CheckpointManager
from graflow.core.context import ExecutionContext, TaskExecutionContext
from graflow.core.decorators import task
from graflow.core.engine import WorkflowEngine
from graflow.core.workflow import workflow
from graflow.hitl.manager import FeedbackManager
from graflow.hitl.types import FeedbackResponse, FeedbackType

with workflow("late_approval") as wf:

    @task(inject_context=True)
    def process(context: TaskExecutionContext):
        context.get_channel().set("built", "2.4.1")
        print("process ran")
        return "2.4.1"

    @task(inject_context=True)
    def request_approval(context: TaskExecutionContext):
        print("asking for approval")
        return context.request_approval("Deploy?", timeout=1)

    @task(inject_context=True)
    def deploy(context: TaskExecutionContext):
        approved = context.get_result("request_approval")
        print("deploy sees approved =", approved)
        return f"deployed {context.get_channel().get('built')}" if approved else "skipped"

    process >> request_approval >> deploy

    context = ExecutionContext.create(wf.graph, "process", max_steps=20)
    result = WorkflowEngine().execute(context)
    print("first result:", result)
    print("completed after timeout:", context.completed_tasks)
    print("checkpoint written:", context.last_checkpoint_path is not None)

desk = FeedbackManager(backend="filesystem")
(request,) = desk.list_requests()
print("request status:", request.status, "task:", request.task_id)
print("checkpoint noted on the request:", "checkpoint_path" in request.metadata)
accepted = desk.provide_feedback(request.feedback_id, FeedbackResponse(
    feedback_id=request.feedback_id, response_type=FeedbackType.APPROVAL, approved=True))
print("late answer accepted:", accepted)

restored, metadata = CheckpointManager.resume_from_checkpoint(context.last_checkpoint_path)
print("checkpoint reason:", metadata.user_metadata["reason"],
      "task:", metadata.user_metadata["task_id"],
      "same feedback id:", metadata.user_metadata["feedback_id"] == request.feedback_id)
print("resumed result:", WorkflowEngine().execute(restored))
print("completed after resume:", restored.completed_tasks)
print("requests:", [(r.task_id, r.status) for r in desk.list_requests()])
