"""The reads the console's pages and the JSON API share: queue rows, a request's record, the
approvals inbox and the dashboard's figures, each checked against the person's permissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends

from services.workspace import dashboard, views
from services.workspace.permissions import Action, Person, Refusal, check
from services.workspace.routes.context import WebContext

APPROVER_ROLES = frozenset({"team_lead", "finance_manager"})


def read_filter(
    *,
    queue: str | None = None,
    status: str | None = None,
    priority: str | None = None,
    assigned: str | None = None,
    flagged: bool = False,
    sort: str = "sla",
) -> views.QueueFilter:
    """A queue filter from query parameters (empty means any; an unknown sort means by SLA).

    The pages take it as a dependency (:data:`QueueFilterQuery`), so its parameters are theirs."""
    return views.QueueFilter(
        queue=queue or None,
        status=status or None,
        priority=priority or None,
        assigned=assigned or None,
        flagged=flagged,
        sort=sort if sort in ("sla", "age", "priority") else "sla",
    )


async def rows_for(web: WebContext, person: Person, wanted: views.QueueFilter) -> list[dict[str, Any]]:
    """The open requests of the person's queues, as rows of a listing."""
    summaries = await web.workspace.store.summaries(
        queues=person.visible_queues(web.all_queues), open_only=True
    )
    return views.queue_rows(summaries, calendar=web.calendar, now=web.clock(), me=person.id, wanted=wanted)


async def record_for(web: WebContext, person: Person, request_id: str) -> dict[str, Any]:
    """A request's whole record (404 if the workspace does not know it; 403 if not the person's)."""
    document = await web.workspace.store.request(request_id)
    if document is None or not document.get("summary"):
        raise Refusal("unknown_request", f"The workspace knows no request {request_id}.", status_code=404)
    check(person, Action.VIEW, document["summary"])
    message_keys = [str(reply.get("message_key")) for reply in document.get("replies", [])]
    emails = await web.workspace.store.emails(message_keys) if message_keys else {}
    refused = await web.workspace.store.refusals_of(request_id)
    return views.record_of(document, emails, refused, calendar=web.calendar, now=web.clock())


async def inbox(web: WebContext, person: Person) -> list[dict[str, Any]]:
    """What waits for an approval the person may give, most urgent first."""
    if {role.value for role in person.roles} & APPROVER_ROLES:
        check(person, Action.APPROVE)
    summaries = await web.workspace.store.summaries(
        queues=person.visible_queues(web.all_queues), status="awaiting_approval"
    )
    items = []
    for summary in summaries:
        eligibility = await web.workspace.eligibility(person, summary)
        approval = summary.get("approval") or {}
        mine = set(approval.get("still_needed") or ()) & {role.value for role in person.roles}
        if not mine and not eligibility.allowed:
            continue
        items.append(
            {
                **views.public_row(views.row_of(summary, calendar=web.calendar, now=web.clock())),
                "approval": approval,
                "eligible": eligibility.allowed,
                "eligible_roles": list(eligibility.roles),
                "explanation": eligibility.explanation,
            }
        )
    items.sort(key=lambda item: (item["sla_left_hours"] is None, item["sla_left_hours"] or 0))
    return items


async def dashboard_figures(
    web: WebContext, person: Person, start: str | None, end: str | None
) -> dashboard.Figures:
    """The dashboard over a period of whole days (default: the last 30 days up to now)."""
    check(person, Action.DASHBOARD)
    now = web.clock()
    end_at = day(end) + timedelta(days=1) if end else now
    start_at = day(start) if start else end_at - timedelta(days=30)
    if start_at >= end_at:
        raise Refusal("bad_period", "The period must start before it ends.", status_code=422)
    summaries = await web.workspace.store.summaries(queues=person.visible_queues(web.all_queues))
    return dashboard.compute(summaries, calendar=web.calendar, start=start_at, end=end_at, now=now)


def day(text: str) -> datetime:
    """The start of a day given as YYYY-MM-DD (UTC), or a full ISO time (422 otherwise)."""
    try:
        return (
            datetime.fromisoformat(text).replace(tzinfo=UTC)
            if "T" not in text
            else datetime.fromisoformat(text)
        )
    except ValueError:
        raise Refusal("bad_period", f"{text!r} is not a day (YYYY-MM-DD).", status_code=422) from None


QueueFilterQuery = Annotated[views.QueueFilter, Depends(read_filter)]
