"""Selection: a person picks a rollout strategy and the regions to deploy to.

``plan >> choose_strategy >> choose_regions``. ``choose_strategy`` asks for one of
several options (``ctx.request_selection``); ``choose_regions`` asks for any number
of options (``request_feedback("multi_selection", ...)``) and then fans out: it builds
a parallel group with one ``deploy_region`` task per chosen region, followed by a
``summary`` join, and hands it to ``ctx.next_task(group >> summary)``. The join runs
once, after every region.

An answer must be one of the offered options: the example also shows the error a
wrong answer gets (``FeedbackValidationError``), before the reviewer answers properly.

Run: ``python examples/hitl/03_selection.py [--interactive] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from reviewer import FeedbackDesk, Reviewer

from graflow_dist.client import run_context
from graflow_dist.core.context import ExecutionContext, TaskExecutionContext
from graflow_dist.core.decorators import task
from graflow_dist.core.task import parallel
from graflow_dist.core.workflow import WorkflowContext, workflow
from graflow_dist.errors import FeedbackValidationError
from graflow_dist.hitl.manager import FEEDBACK_DIR_ENV
from graflow_dist.hitl.types import FeedbackRequest, FeedbackType

STRATEGIES = ["blue-green", "canary", "rolling"]
REGIONS = ["eu-west", "us-east", "ap-south", "sa-east"]


@task(inject_context=True)
def deploy_region(ctx: TaskExecutionContext, region: str) -> str:
    strategy = ctx.get_channel().get("strategy")
    ctx.get_channel().append("deployed", region)
    print(f"  deploy_region: {region} ({strategy})")
    return f"{region}:ok"


@task(inject_context=True)
def summary(ctx: TaskExecutionContext, regions: list[str]) -> str:
    results = [ctx.get_result(f"deploy_{r}") for r in regions]
    print(f"  summary: {results}")
    return f"{len(results)} regions live"


def build_workflow() -> WorkflowContext:
    with workflow("selection") as wf:

        @task
        def plan() -> str:
            print("  plan: release 3.0 is ready")
            return "3.0"

        @task(inject_context=True)
        def choose_strategy(ctx: TaskExecutionContext, plan: str) -> str:
            strategy = ctx.request_selection(f"Rollout strategy for {plan}?", STRATEGIES,
                                             timeout=60, channel_key="strategy",
                                             write_to_channel=True)
            print(f"  choose_strategy: {strategy}")
            return strategy

        @task(inject_context=True)
        def choose_regions(ctx: TaskExecutionContext) -> list[str]:
            response = ctx.request_feedback("multi_selection", "Deploy to which regions?",
                                            options=REGIONS, timeout=60)
            regions = response.selected_multiple or []
            print(f"  choose_regions: {regions}")
            group = parallel(*[deploy_region(task_id=f"deploy_{r}", region=r)
                               for r in regions])
            ctx.next_task(group >> summary(task_id="summary", regions=regions))
            return regions

        plan >> choose_strategy >> choose_regions
    return wf


def answers(request: FeedbackRequest) -> dict[str, Any]:
    if request.feedback_type is FeedbackType.SELECTION:
        return {"selected": "canary"}
    try:  # a person mistyping a region gets told what is wrong
        FeedbackDesk().respond(request, selected_multiple=["eu-west", "mars-north"])
    except FeedbackValidationError as exc:
        print(f"  reviewer: refused: {exc}")
    return {"selected_multiple": ["eu-west", "us-east", "ap-south"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactive", action="store_true", help="choose yourself")
    parser.add_argument("--dir", help="feedback directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graflow-hitl-") as tmp:
        directory = Path(args.dir or tmp)
        os.environ[FEEDBACK_DIR_ENV] = str(directory / "feedback")
        os.chdir(directory)
        ctx = ExecutionContext.create(build_workflow().graph)
        with Reviewer(answers, interactive=args.interactive):
            run_context(ctx)
        print(f"strategy in the channel: {ctx.channel.get('strategy')!r}")
        print(f"deployed: {sorted(ctx.channel.get('deployed'))}")
        print(f"result: {ctx.get_result('summary')!r}")
        assert ctx.get_result("summary") == "3 regions live"
        print("OK: the chosen regions were deployed, then summarised once")


if __name__ == "__main__":
    main()
