"""The JSON API under ``/api``: tokens, queues, a request's record, the actions, approvals, the dashboard.

Every action answers 202 with where it was published; the workspace's view shows it once it has read
it back from the topic. Refusals answer ``{"refused": reason, "detail": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from fastapi.security import OAuth2PasswordRequestForm

from services.workspace import dashboard, views
from services.workspace.routes import reads
from services.workspace.routes.context import ApiPerson, Web
from services.workspace.routes.models import (
    ActionAccepted,
    ActionIdBody,
    ApprovalBody,
    AskCustomerBody,
    AssignBody,
    CloseBody,
    NoteBody,
    ReclassifyBody,
    Refused,
    RerouteBody,
    ResolutionBody,
    RetryBody,
    TokenAnswer,
    accepted,
)

router = APIRouter(
    prefix="/api", responses={401: {"model": Refused}, 403: {"model": Refused}, 409: {"model": Refused}}
)


# -- sign-in -----------------------------------------------------------------------------------------


@router.post("/token", response_model=TokenAnswer, tags=["sign-in"])
async def token_for_password(form: Annotated[OAuth2PasswordRequestForm, Depends()], web: Web) -> TokenAnswer:
    """A bearer token for a user name and password (OAuth2's password form), for tools (`crs approve`)."""
    user = await web.auth.sign_in(form.username, form.password)
    if user is None:
        raise HTTPException(401, "unknown user or wrong password", headers={"WWW-Authenticate": "Bearer"})
    return TokenAnswer(
        access_token=web.auth.issue_token(user), user=user.id, expires_in_days=web.settings.token_max_age_days
    )


@router.post("/tokens", response_model=TokenAnswer, tags=["sign-in"])
async def token_for_me(person: ApiPerson, web: Web) -> TokenAnswer:
    """A new bearer token for the signed-in person (single sign-on users get theirs here)."""
    return TokenAnswer(
        access_token=web.auth.issue_token(person.user),
        user=person.id,
        expires_in_days=web.settings.token_max_age_days,
    )


@router.get("/me", tags=["sign-in"])
async def me(person: ApiPerson) -> dict[str, Any]:
    """Who the token or session belongs to, with roles and teams."""
    return {
        "id": person.id,
        "display_name": person.user.display_name,
        "roles": sorted(role.value for role in person.roles),
        "teams": sorted(person.teams),
    }


# -- reading -----------------------------------------------------------------------------------------


@router.get("/queues", tags=["queues"])
async def api_queues(
    person: ApiPerson,
    web: Web,
    *,
    queue: str | None = None,
    status: str | None = None,
    priority: str | None = None,
    assigned: Annotated[str | None, Query(description="me, nobody, or a user id")] = None,
    flagged: bool = False,
    sort: Literal["sla", "age", "priority"] = "sla",
) -> list[dict[str, Any]]:
    """The open requests of my teams' queues, most at risk of breaching their SLA first."""
    wanted = reads.read_filter(
        queue=queue, status=status, priority=priority, assigned=assigned, flagged=flagged, sort=sort
    )
    return [views.public_row(row) for row in await reads.rows_for(web, person, wanted)]


@router.get("/requests/{request_id}", tags=["requests"])
async def api_request(request_id: str, person: ApiPerson, web: Web) -> dict[str, Any]:
    """A request's whole record: customer, documents, checks, route, SLA, approvals, postings, notes."""
    return await reads.record_for(web, person, request_id)


# -- actions -----------------------------------------------------------------------------------------


def action_route(path: str, summary: str) -> Callable[..., Any]:
    """``POST /api/requests/{request_id}/<path>``, answering 202 with where the action was published."""
    return router.post(
        f"/requests/{{request_id}}/{path}",
        response_model=ActionAccepted,
        status_code=202,
        tags=["actions"],
        summary=summary,
    )


@action_route("pick-up", "Pick the request up (assign it to myself)")
async def api_pick_up(
    request_id: str, person: ApiPerson, web: Web, body: ActionIdBody | None = None
) -> ActionAccepted:
    action_id = body.action_id if body else None
    return accepted(await web.workspace.pick_up(person, request_id, action_id=action_id))


@action_route("assign", "Assign the request to someone of its team (team leads)")
async def api_assign(request_id: str, body: AssignBody, person: ApiPerson, web: Web) -> ActionAccepted:
    return accepted(await web.workspace.assign(person, request_id, body.assignee, action_id=body.action_id))


@action_route("release", "Release the request back to its queue")
async def api_release(
    request_id: str, person: ApiPerson, web: Web, body: ActionIdBody | None = None
) -> ActionAccepted:
    action_id = body.action_id if body else None
    return accepted(await web.workspace.release(person, request_id, action_id=action_id))


@action_route("notes", "Add a note")
async def api_note(request_id: str, body: NoteBody, person: ApiPerson, web: Web) -> ActionAccepted:
    return accepted(await web.workspace.add_note(person, request_id, body.text, action_id=body.action_id))


@action_route("reclassify", "Reclassify (routing routes it again by the rules for the new type)")
async def api_reclassify(
    request_id: str, body: ReclassifyBody, person: ApiPerson, web: Web
) -> ActionAccepted:
    kind = body.request_type.value
    return accepted(
        await web.workspace.reclassify(person, request_id, kind, body.reason, action_id=body.action_id)
    )


@action_route("reroute", "Re-route to another queue (routing carries it out: new queue, priority and SLA)")
async def api_reroute(request_id: str, body: RerouteBody, person: ApiPerson, web: Web) -> ActionAccepted:
    priority = body.priority.value if body.priority else None
    return accepted(
        await web.workspace.reroute(
            person, request_id, body.queue.value, body.reason, priority, action_id=body.action_id
        )
    )


@action_route("ask-customer", "Ask the customer (validation carries it out: later release)")
async def api_ask(request_id: str, body: AskCustomerBody, person: ApiPerson, web: Web) -> ActionAccepted:
    return accepted(
        await web.workspace.ask_customer(person, request_id, body.question, action_id=body.action_id)
    )


@action_route(
    "resolution",
    "Decide a resolution (resolution posts it through the approval policy; refused: dead letter)",
)
async def api_resolution(
    request_id: str, body: ResolutionBody, person: ApiPerson, web: Web
) -> ActionAccepted:
    fields = body.model_dump(exclude={"action_id"})
    return accepted(
        await web.workspace.decide_resolution(person, request_id, fields, action_id=body.action_id)
    )


@action_route(
    "retry-posting", "Retry a failed ERP posting (resolution sends it again under a new resolution id)"
)
async def api_retry(request_id: str, body: RetryBody, person: ApiPerson, web: Web) -> ActionAccepted:
    return accepted(
        await web.workspace.retry_posting(
            person, request_id, body.reason, body.resolution_id, action_id=body.action_id
        )
    )


@action_route("close", "Close with a reason (resolution publishes closed)")
async def api_close(request_id: str, body: CloseBody, person: ApiPerson, web: Web) -> ActionAccepted:
    return accepted(
        await web.workspace.close(
            person, request_id, body.reason_code, body.comment, action_id=body.action_id
        )
    )


@action_route("approval", "Approve or reject, as the signed-in person (published on requests.approvals.v1)")
async def api_approval(request_id: str, body: ApprovalBody, person: ApiPerson, web: Web) -> ActionAccepted:
    published = await web.workspace.decide_approval(
        person, request_id, body.decision, role=body.role, comment=body.comment
    )
    return accepted(published)


# -- approvals and the dashboard ---------------------------------------------------------------------


@router.get("/approvals", tags=["approvals"])
async def api_inbox(person: ApiPerson, web: Web) -> list[dict[str, Any]]:
    """What waits for a role I hold in my teams: amount, the policy's words, whether I may decide."""
    return await reads.inbox(web, person)


@router.get("/dashboard", tags=["dashboard"])
async def api_dashboard(
    person: ApiPerson,
    web: Web,
    start: Annotated[str | None, Query(description="First day, YYYY-MM-DD (default: 30 days ago)")] = None,
    end: Annotated[str | None, Query(description="Last day, YYYY-MM-DD (default: today)")] = None,
) -> dict[str, Any]:
    """Every table of the team lead's dashboard over the period."""
    figures = await reads.dashboard_figures(web, person, start, end)
    return {
        "start": figures.start.isoformat(),
        "end": figures.end.isoformat(),
        "tables": {
            name: {"title": t.title, "columns": list(t.columns), "rows": [list(r) for r in t.rows]}
            for name, t in figures.tables.items()
        },
    }


@router.get("/dashboard/{table}.csv", tags=["dashboard"], response_class=Response)
async def api_dashboard_csv(
    table: str, person: ApiPerson, web: Web, start: str | None = None, end: str | None = None
) -> Response:
    """One table of the dashboard as CSV."""
    if table not in dashboard.TABLES:
        raise HTTPException(404, f"no table {table}; tables: {', '.join(dashboard.TABLES)}")
    figures = await reads.dashboard_figures(web, person, start, end)
    return Response(
        figures.tables[table].csv(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{table}.csv"'},
    )
