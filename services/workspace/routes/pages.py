"""The console's pages: queues, a request (with its form actions), the approvals inbox, the
dashboard and the token page. Server-rendered (Jinja2); htmx swaps the fragments."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.workspace.permissions import Action, Person, Refusal, check
from services.workspace.routes import reads
from services.workspace.routes.console_actions import perform
from services.workspace.routes.context import PagePerson, Web, WebContext, person_context
from services.workspace.routes.models import accepted
from shared.actions import CLOSURE_REASONS
from shared.contract import Priority, RequestType, ResolutionKind

router = APIRouter(include_in_schema=False)


# What the page says a person just did, in their words (not the event's name).
_DONE: dict[str, str] = {
    "RequestAssigned": "Assigned",
    "RequestReleased": "Released to the queue",
    "NoteAdded": "Note added",
    "ReclassificationRequested": "Reclassification sent",
    "RerouteRequested": "Re-route sent",
    "CustomerQuestionRequested": "Question for the customer sent",
    "ResolutionDecided": "Decision sent",
    "PostingRetryRequested": "Retry of the failed posting sent",
    "ClosureRequested": "Closing sent",
}


@router.get("/", response_class=HTMLResponse)
async def queues_page(
    request: Request,
    person: PagePerson,
    web: Web,
    wanted: reads.QueueFilterQuery,
) -> HTMLResponse:
    return web.render(
        request,
        "queues.html",
        {
            **person_context(person),
            "rows": await reads.rows_for(web, person, wanted),
            "wanted": wanted,
            "queues": sorted(person.visible_queues(web.all_queues)),
            "query": request.url.query,
        },
    )


@router.get("/queues/rows", response_class=HTMLResponse)
async def queue_rows_fragment(
    request: Request,
    person: PagePerson,
    web: Web,
    wanted: reads.QueueFilterQuery,
) -> HTMLResponse:
    rows = await reads.rows_for(web, person, wanted)
    return web.render(request, "_queue_rows.html", {**person_context(person), "rows": rows})


async def request_context(web: WebContext, person: Person, request_id: str) -> dict[str, Any]:
    """What the request page shows: the record, which actions the person may take, the forms' choices."""
    record = await reads.record_for(web, person, request_id)
    summary = record["summary"]
    allowed = {}
    refused: dict[str, str] = {}  # why an action is not allowed (a card waits live for some reasons)
    for action in Action:
        try:
            check(person, action, summary)
            allowed[action.value] = True
        except Refusal as refusal:
            allowed[action.value] = False
            refused[action.value] = refusal.reason
    eligibility = await web.workspace.eligibility(person, summary)
    return {
        **person_context(person),
        "record": record,
        "s": summary,
        "allowed": allowed,
        "refused": refused,
        "eligibility": eligibility,
        "request_types": [kind.value for kind in RequestType],
        "all_queues": sorted(web.all_queues),
        "priorities": [p.value for p in Priority],
        "resolution_kinds": [kind.value for kind in ResolutionKind],
        "closure_reasons": CLOSURE_REASONS,
        "action_id": uuid.uuid4().hex,
    }


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_page(
    request: Request, request_id: str, person: PagePerson, web: Web, done: str | None = None
) -> HTMLResponse:
    try:
        context = await request_context(web, person, request_id)
    except Refusal as error:
        return web.render(
            request, "refused.html", {**person_context(person), "error": error}, error.status_code
        )
    return web.render(request, "request.html", {**context, "done": done, "error": None})


@router.get("/requests/{request_id}/panels", response_class=HTMLResponse)
async def request_panels(request: Request, request_id: str, person: PagePerson, web: Web) -> HTMLResponse:
    return web.render(request, "_request_panels.html", await request_context(web, person, request_id))


@router.get("/requests/{request_id}/who", response_class=HTMLResponse)
async def request_who_has_it(request: Request, request_id: str, person: PagePerson, web: Web) -> HTMLResponse:
    """The "who has it" card, refreshed live: a pick-up or a closing shows without a reload."""
    return web.render(request, "_who_has_it.html", await request_context(web, person, request_id))


@router.get("/requests/{request_id}/cards/{card}", response_class=HTMLResponse)
async def request_action_card(
    request: Request, request_id: str, card: Literal["note", "approve", "work"], person: PagePerson, web: Web
) -> HTMLResponse:
    """A card of actions that was not shown when the page opened (the request was not routed yet,
    or not awaiting approval): the page asks again on every change until it can be shown."""
    return web.render(request, f"_{card}_card.html", await request_context(web, person, request_id))


@router.post("/requests/{request_id}/do/{action}", response_class=HTMLResponse)
async def request_action(
    request: Request, request_id: str, action: str, person: PagePerson, web: Web
) -> Response:
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    try:
        published = await perform(web.workspace, person, request_id, action, form)
    except Refusal as error:
        context = await request_context(web, person, request_id)
        return web.render(
            request, "request.html", {**context, "done": None, "error": error}, error.status_code
        )
    except (ValueError, TypeError) as error:
        context = await request_context(web, person, request_id)
        problem = Refusal("invalid_form", f"The form is not complete: {error}", status_code=422)
        return web.render(request, "request.html", {**context, "done": None, "error": problem}, 422)
    owner = accepted(published).carried_out_by
    what = _DONE.get(published.event_type, f"{published.event_type} published")
    note = what + ("" if owner == "workspace" else f"; {owner} carries it out")
    return RedirectResponse(f"/requests/{request_id}?done={note}", status_code=303)


@router.get("/approvals", response_class=HTMLResponse)
async def approvals_page(request: Request, person: PagePerson, web: Web) -> HTMLResponse:
    items = await reads.inbox(web, person)
    return web.render(request, "approvals.html", {**person_context(person), "items": items})


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(
    request: Request, person: PagePerson, web: Web, start: str | None = None, end: str | None = None
) -> HTMLResponse:
    try:
        check(person, Action.DASHBOARD)
    except Refusal as error:
        return web.render(request, "refused.html", {**person_context(person), "error": error}, 403)
    figures = await reads.dashboard_figures(web, person, start, end)
    return web.render(
        request,
        "dashboard.html",
        {
            **person_context(person),
            "f": figures,
            "start_day": figures.start.date().isoformat(),
            # The last day the period covers: the day before a midnight end (a chosen "to" day
            # runs to the next midnight), today when the period runs up to now.
            "end_day": (figures.end - timedelta(microseconds=1)).date().isoformat(),
        },
    )


@router.get("/token", response_class=HTMLResponse)
async def token_page(request: Request, person: PagePerson, web: Web) -> HTMLResponse:
    return web.render(request, "token.html", {**person_context(person), "token": None})


@router.post("/token", response_class=HTMLResponse)
async def token_create(request: Request, person: PagePerson, web: Web) -> HTMLResponse:
    token = web.auth.issue_token(person.user)
    return web.render(request, "token.html", {**person_context(person), "token": token})
