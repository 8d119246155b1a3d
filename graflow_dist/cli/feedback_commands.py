"""``graflow-dist feedback``: list the questions tasks are waiting on, and answer them."""

from __future__ import annotations

import json
from typing import Any

import click

from graflow_dist.cli.app import cli
from graflow_dist.cli.run_commands import client_from
from graflow_dist.errors import UnknownFeedbackError
from graflow_dist.hitl.types import FeedbackRequest, FeedbackType


@cli.group()
def feedback() -> None:
    """Human feedback: requests tasks wait on, and answers to them."""


def _describe(request: FeedbackRequest) -> str:
    options = f"  options: {', '.join(request.options)}" if request.options else ""
    return (f"{request.feedback_id}  {request.feedback_type.value:<15} {request.status:<9} "
            f"session {request.session_id}  task {request.task_id}  asked {request.created_at}"
            f"\n    {request.prompt}{options}")


@feedback.command("list")
@click.argument("session", required=False)
@click.option("--all", "show_all", is_flag=True, help="Answered and timed-out ones too.")
@click.option("--json", "as_json", is_flag=True, help="Print the requests as JSON.")
@click.pass_context
def list_feedback(ctx: click.Context, session: str | None, show_all: bool,
                  as_json: bool) -> None:
    """Requests waiting for an answer (of SESSION if given), newest first."""
    manager = client_from(ctx).feedback
    requests = (manager.list_requests(session) if show_all
                else manager.list_pending_requests(session))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in requests], indent=2))
        return
    if not requests:
        click.echo("no feedback requests waiting" if not show_all else "no feedback requests",
                   err=True)
    for request in requests:
        click.echo(_describe(request))


@feedback.command("respond")
@click.argument("feedback_id", metavar="ID")
@click.option("--approve", "approved", flag_value=True, default=None,
              help="Approve (an approval request).")
@click.option("--reject", "approved", flag_value=False, help="Reject (an approval request).")
@click.option("--reason", default=None, help="Why (with --approve/--reject).")
@click.option("--text", default=None, help="The answer to a text request.")
@click.option("--select", "selected", multiple=True, metavar="OPT",
              help="The chosen option (repeat for a multi-selection request).")
@click.option("--data", default=None, metavar="JSON", help="The answer to a custom request.")
@click.option("--by", "responded_by", default=None, help="Who answers (recorded).")
@click.pass_context
def respond(ctx: click.Context, feedback_id: str, approved: bool | None, reason: str | None,
            text: str | None, selected: tuple[str, ...], data: str | None,
            responded_by: str | None) -> None:
    """Answer request ID; the task waiting on it runs again with the answer."""
    client = client_from(ctx)
    request = client.feedback.get_request(feedback_id)
    if request is None:
        raise UnknownFeedbackError(feedback_id)
    fields: dict[str, Any] = {"responded_by": responded_by}
    kind = request.feedback_type
    if kind is FeedbackType.APPROVAL:
        if approved is None:
            raise click.UsageError(f"{feedback_id} asks for approval: pass --approve or "
                                   "--reject")
        fields.update(approved=approved, reason=reason)
    elif kind is FeedbackType.TEXT:
        if text is None:
            raise click.UsageError(f"{feedback_id} asks for text: pass --text")
        fields["text"] = text
    elif kind is FeedbackType.SELECTION:
        if len(selected) != 1:
            raise click.UsageError(f"{feedback_id} asks for one of "
                                   f"{', '.join(request.options or [])}: pass --select OPT once")
        fields["selected"] = selected[0]
    elif kind is FeedbackType.MULTI_SELECTION:
        fields["selected_multiple"] = list(selected)
    else:
        try:
            fields["custom_data"] = json.loads(data or "")
        except json.JSONDecodeError as exc:
            raise click.UsageError(f"{feedback_id} asks for custom data: pass --data with a "
                                   f"JSON object ({exc})") from None
    client.respond(feedback_id, **fields)
    click.echo(f"answered {feedback_id} ({kind.value}); task {request.task_id} of session "
               f"{request.session_id} continues")
