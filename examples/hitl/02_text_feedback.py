"""Text feedback: a person reviews a draft until it is good enough.

``write_draft >> review >> publish``. ``review`` asks for free text with
``ctx.request_text_input(...)`` (a shortcut for ``request_feedback("text", ...)``); the
answer also lands in the channel key ``review_comment``. While the reviewer asks for
changes, ``review`` revises the draft and loops with ``next_iteration``: each
iteration's request has its own feedback id (session, task, iteration and call number
fix it), so a resumed or re-run iteration gets its own answer back, never another's.

The reviewer (``reviewer.py``) asks for a shorter title, then approves with "LGTM";
``--interactive`` lets you review instead.

Run: ``python examples/hitl/02_text_feedback.py [--interactive] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from reviewer import Reviewer

from graflow_dist.client import run_context
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.hitl.manager import FEEDBACK_DIR_ENV
from graflow_dist.hitl.types import FeedbackRequest

MAX_ROUNDS = 5


def build_workflow() -> WorkflowContext:
    with workflow("text_review") as wf:

        @task(inject_context=True)
        def write_draft(ctx: TaskExecutionContext) -> str:
            draft = "Announcing graflow-dist: durable, distributed workflows for everyone"
            ctx.get_channel().set("draft", draft)
            print(f"  write_draft: {draft!r}")
            return draft

        @task(inject_context=True, max_cycles=MAX_ROUNDS)
        def review(ctx: TaskExecutionContext) -> str:
            channel = ctx.get_channel()
            draft = channel.get("draft")
            comment = ctx.request_text_input(
                f"Round {ctx.cycle_count}: review the title {draft!r} (LGTM to publish)",
                timeout=60, channel_key="review_comment", write_to_channel=True,
            )
            channel.append("comments", comment)
            print(f"  review (round {ctx.cycle_count}): {comment!r}")
            if comment.strip().upper() != "LGTM":
                channel.set("draft", draft.split(":")[0])  # take the advice: shorten it
                ctx.next_iteration()
            return channel.get("draft")

        @task(inject_context=True)
        def publish(ctx: TaskExecutionContext, review: str) -> str:
            print(f"  publish: {review!r}")
            return f"published {review!r}"

        write_draft >> review >> publish
    return wf


def comments(request: FeedbackRequest) -> dict[str, str]:
    if request.prompt.startswith("Round 1"):
        return {"text": "Too long: keep the part before the colon", "responded_by": "bob"}
    return {"text": "LGTM", "responded_by": "bob"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactive", action="store_true", help="review it yourself")
    parser.add_argument("--dir", help="feedback directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graflow-hitl-") as tmp:
        directory = Path(args.dir or tmp)
        os.environ[FEEDBACK_DIR_ENV] = str(directory / "feedback")
        os.chdir(directory)
        ctx = ExecutionContext.create(build_workflow().graph)
        with Reviewer(comments, interactive=args.interactive) as reviewer:
            run_context(ctx)
        print(f"result: {ctx.get_result('publish')!r}")
        print(f"comments: {ctx.channel.get('comments')}")
        print(f"last comment in the channel: {ctx.channel.get('review_comment')!r}")
        print(f"review rounds: {ctx.cycle_counts['review']}, "
              f"distinct feedback ids: {len(set(reviewer.answered))}")
        assert ctx.get_result("publish") == "published 'Announcing graflow-dist'"
        assert len(set(reviewer.answered)) == ctx.cycle_counts["review"] == 2
        print("OK: one feedback id per review round")


if __name__ == "__main__":
    main()
