"""The workspace's HTTP app: the console's pages (Jinja2, htmx, server-sent events) and the JSON API.

Routes are thin: they read the person (:mod:`services.workspace.auth`), call the workspace
(:mod:`services.workspace.service`) or read the view, and render. Every unsafe request made with the
session cookie carries the CSRF token; every action is authorised on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.middleware.sessions import SessionMiddleware

from services.workspace import dashboard, domain, views
from services.workspace.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Authenticator,
    NotSignedIn,
    csrf_ok,
    csrf_token,
)
from services.workspace.live import LiveUpdates
from services.workspace.permissions import Action, Person, Refusal, check
from services.workspace.service import Published, Workspace
from services.workspace.settings import WorkspaceSettings
from shared.actions import CLOSURE_REASONS, OWNED_BY_WORKSPACE, OWNER_OF
from shared.business_time import BusinessCalendar
from shared.contract import Priority, RequestType, ResolutionKind
from shared.directory import Team
from shared.money import Money

HERE = Path(__file__).parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Clock = Callable[[], datetime]


class RedirectToSignIn(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class CsrfRefused(Exception):
    pass


# --- Who is asking (dependencies) -------------------------------------------------------------------


async def api_person(request: Request) -> Person:
    """The person behind an API call (401 without a valid token or session; CSRF checked for cookies)."""
    auth: Authenticator = request.app.state.auth
    try:
        person = await auth.person(request)
    except NotSignedIn as error:
        raise HTTPException(401, str(error), headers={"WWW-Authenticate": "Bearer"}) from None
    if request.method not in SAFE_METHODS and not await csrf_ok(request):
        raise CsrfRefused
    return person


async def page_person(request: Request) -> Person:
    """The person behind a page (to the sign-in page without a session; CSRF checked on forms)."""
    auth: Authenticator = request.app.state.auth
    try:
        person = await auth.person(request)
    except NotSignedIn:
        raise RedirectToSignIn(request.url.path) from None
    if request.method not in SAFE_METHODS and not await csrf_ok(request):
        raise CsrfRefused
    return person


ApiPerson = Annotated[Person, Depends(api_person)]
PagePerson = Annotated[Person, Depends(page_person)]


# --- API models (what OpenAPI publishes) -----------------------------------------------------------


class ActionAccepted(BaseModel):
    """An action published: the workspace's view shows it once it has read it back from the topic."""

    topic: str
    event_id: str
    event_type: str
    request_id: str
    carried_out_by: str = Field(description="The service that carries the action out")


class Refused(BaseModel):
    refused: str = Field(description="Machine reason, e.g. other_team, read_only, not_eligible")
    detail: str


class AssignBody(BaseModel):
    assignee: str
    action_id: str | None = Field(default=None, description="Idempotency key: the same id is the same action")


class ActionIdBody(BaseModel):
    action_id: str | None = None


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    action_id: str | None = None


class ReclassifyBody(BaseModel):
    request_type: RequestType
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class RerouteBody(BaseModel):
    queue: Team
    priority: Priority | None = None
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class AskCustomerBody(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    action_id: str | None = None


class ResolutionBody(BaseModel):
    kind: ResolutionKind
    invoice_id: str | None = None
    payment_id: str | None = Field(default=None, description="The candidate payment chosen (an allocation)")
    amount: Money | None = None
    corrected_amount: Money | None = None
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class RetryBody(BaseModel):
    resolution_id: str | None = None
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class CloseBody(BaseModel):
    reason_code: Literal[
        "answered",
        "resolved_outside_system",
        "withdrawn_by_customer",
        "no_response",
        "duplicate",
        "not_a_finance_request",
    ]
    comment: str | None = Field(default=None, max_length=500)
    action_id: str | None = None


class ApprovalBody(BaseModel):
    decision: Literal["approve", "reject"]
    role: Literal["team_lead", "finance_manager"] | None = Field(
        default=None, description="The role to decide in; default: the one still needed that you hold"
    )
    comment: str | None = Field(default=None, max_length=1000)


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    user: str
    expires_in_days: float


def accepted(published: Published) -> ActionAccepted:
    owner = (
        "workspace"
        if published.event_type in OWNED_BY_WORKSPACE
        else OWNER_OF.get(published.event_type, "resolution")
    )
    return ActionAccepted(
        topic=published.topic,
        event_id=published.event_id,
        event_type=published.event_type,
        request_id=published.request_id,
        carried_out_by=owner,
    )


# --- The app ----------------------------------------------------------------------------------------


def build_web(
    *,
    settings: WorkspaceSettings,
    workspace: Workspace,
    auth: Authenticator,
    live: LiveUpdates,
    calendar: BusinessCalendar,
    lifespan: Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]],
    clock: Clock = lambda: datetime.now(UTC),
) -> FastAPI:
    """The FastAPI app of the console and the API (health and metrics are added by the caller)."""
    app = FastAPI(
        title="Customer Request System: workspace",
        version="1.0.0",
        description="The console and API for the people who work the requests. "
        "Sign in with a session (the console) or a bearer token (`POST /api/token`, `POST /api/tokens`).",
        lifespan=lifespan,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret,
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        money=domain.money_text,
        role_name=lambda role: str(role).replace("_", " "),
        CSRF_FIELD=CSRF_FIELD,
    )
    all_queues = frozenset(team.value for team in Team)
    oauth = _oidc_client(settings) if settings.oidc_enabled else None

    app.state.auth = auth

    @app.exception_handler(RedirectToSignIn)
    async def to_sign_in(request: Request, error: RedirectToSignIn) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={error.next_path}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(_request: Request, _: CsrfRefused) -> Response:
        return JSONResponse(
            {"refused": "csrf", "detail": "The form's CSRF token is missing or wrong: reload the page."}, 403
        )

    @app.exception_handler(Refusal)
    async def refused(_request: Request, error: Refusal) -> Response:
        return JSONResponse({"refused": error.reason, "detail": error.explanation}, error.status_code)

    def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        return templates.TemplateResponse(
            request,
            name,
            {"csrf": csrf_token(request), "oidc": settings.oidc_display_name if oauth else None, **context},
            status_code=status_code,
        )

    def person_context(person: Person) -> dict[str, Any]:
        roles = {role.value for role in person.roles}
        return {
            "me": person,
            "roles": sorted(roles),
            "can_dashboard": bool(roles & {"team_lead", "finance_manager", "auditor", "admin"}),
            "can_approve": bool(roles & {"team_lead", "finance_manager"}),
        }

    # -- sign-in -----------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", {"next": _local(next), "error": None})

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login(
        request: Request,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        if not await csrf_ok(request):
            raise CsrfRefused
        user = await auth.sign_in(username, password)
        if user is None:
            return render(
                request, "login.html", {"next": _local(next), "error": "Unknown user or wrong password."}, 401
            )
        auth.start_session(request, user)
        return RedirectResponse(_local(next), status_code=303)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, _: PagePerson) -> Response:
        auth.end_session(request)
        return RedirectResponse("/login", status_code=303)

    if oauth is not None:

        @app.get("/auth/oidc/login", include_in_schema=False)
        async def oidc_login(request: Request) -> Response:
            redirect_uri = _external(request, settings, "/auth/oidc/callback")
            response: Response = await oauth.company.authorize_redirect(request, redirect_uri)
            return response

        @app.get("/auth/oidc/callback", include_in_schema=False)
        async def oidc_callback(request: Request) -> Response:
            from authlib.integrations.starlette_client import OAuthError

            try:
                token = await oauth.company.authorize_access_token(request)
            except OAuthError as error:
                return render(
                    request,
                    "login.html",
                    {"next": "/", "error": f"Single sign-on failed: {error.error}"},
                    401,
                )
            claims = token.get("userinfo") or {}
            name = claims.get(settings.oidc_username_claim)
            user = await workspace.directory.find(str(name)) if name else None
            if user is None or user.disabled:
                return render(
                    request,
                    "login.html",
                    {
                        "next": "/",
                        "error": f"{name or 'This account'} is not a user of the workspace's directory.",
                    },
                    403,
                )
            auth.start_session(request, user)
            return RedirectResponse("/", status_code=303)

    # -- pages -------------------------------------------------------------------------------------

    def read_filter(
        queue: str | None,
        status: str | None,
        priority: str | None,
        assigned: str | None,
        flagged: bool,
        sort: str,
    ) -> views.QueueFilter:
        return views.QueueFilter(
            queue=queue or None,
            status=status or None,
            priority=priority or None,
            assigned=assigned or None,
            flagged=flagged,
            sort=sort if sort in ("sla", "age", "priority") else "sla",
        )

    async def rows_for(person: Person, wanted: views.QueueFilter) -> list[dict[str, Any]]:
        summaries = await workspace.store.summaries(queues=person.visible_queues(all_queues), open_only=True)
        return views.queue_rows(summaries, calendar=calendar, now=clock(), me=person.id, wanted=wanted)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def queues_page(
        request: Request,
        person: PagePerson,
        queue: str | None = None,
        status: str | None = None,
        priority: str | None = None,
        assigned: str | None = None,
        flagged: bool = False,
        sort: str = "sla",
    ) -> HTMLResponse:
        wanted = read_filter(queue, status, priority, assigned, flagged, sort)
        return render(
            request,
            "queues.html",
            {
                **person_context(person),
                "rows": await rows_for(person, wanted),
                "wanted": wanted,
                "queues": sorted(person.visible_queues(all_queues)),
                "query": request.url.query,
            },
        )

    @app.get("/queues/rows", response_class=HTMLResponse, include_in_schema=False)
    async def queue_rows_fragment(
        request: Request,
        person: PagePerson,
        queue: str | None = None,
        status: str | None = None,
        priority: str | None = None,
        assigned: str | None = None,
        flagged: bool = False,
        sort: str = "sla",
    ) -> HTMLResponse:
        wanted = read_filter(queue, status, priority, assigned, flagged, sort)
        return render(
            request, "_queue_rows.html", {**person_context(person), "rows": await rows_for(person, wanted)}
        )

    async def record_for(person: Person, request_id: str) -> dict[str, Any]:
        document = await workspace.store.request(request_id)
        if document is None or not document.get("summary"):
            raise Refusal("unknown_request", f"The workspace knows no request {request_id}.", status_code=404)
        check(person, Action.VIEW, document["summary"])
        message_keys = [str(reply.get("message_key")) for reply in document.get("replies", [])]
        emails = await workspace.store.emails(message_keys) if message_keys else {}
        return views.record_of(document, emails, calendar=calendar, now=clock())

    async def request_context(person: Person, request_id: str) -> dict[str, Any]:
        record = await record_for(person, request_id)
        summary = record["summary"]
        allowed = {}
        for action in Action:
            try:
                check(person, action, summary)
                allowed[action.value] = True
            except Refusal:
                allowed[action.value] = False
        eligibility = await workspace.eligibility(person, summary)
        return {
            **person_context(person),
            "record": record,
            "s": summary,
            "allowed": allowed,
            "eligibility": eligibility,
            "request_types": [kind.value for kind in RequestType],
            "all_queues": sorted(all_queues),
            "priorities": [p.value for p in Priority],
            "resolution_kinds": [kind.value for kind in ResolutionKind],
            "closure_reasons": CLOSURE_REASONS,
            "action_id": _new_action_id(),
        }

    @app.get("/requests/{request_id}", response_class=HTMLResponse, include_in_schema=False)
    async def request_page(
        request: Request, request_id: str, person: PagePerson, done: str | None = None
    ) -> HTMLResponse:
        try:
            context = await request_context(person, request_id)
        except Refusal as error:
            return render(
                request, "refused.html", {**person_context(person), "error": error}, error.status_code
            )
        return render(request, "request.html", {**context, "done": done, "error": None})

    @app.get("/requests/{request_id}/panels", response_class=HTMLResponse, include_in_schema=False)
    async def request_panels(request: Request, request_id: str, person: PagePerson) -> HTMLResponse:
        return render(request, "_request_panels.html", await request_context(person, request_id))

    @app.post("/requests/{request_id}/do/{action}", response_class=HTMLResponse, include_in_schema=False)
    async def request_action(request: Request, request_id: str, action: str, person: PagePerson) -> Response:
        form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
        try:
            published = await _perform(workspace, person, request_id, action, form)
        except Refusal as error:
            context = await request_context(person, request_id)
            return render(
                request, "request.html", {**context, "done": None, "error": error}, error.status_code
            )
        except (ValueError, TypeError) as error:
            context = await request_context(person, request_id)
            problem = Refusal("invalid_form", f"The form is not complete: {error}", status_code=422)
            return render(request, "request.html", {**context, "done": None, "error": problem}, 422)
        owner = accepted(published).carried_out_by
        note = f"{published.event_type} published" + (
            "" if owner == "workspace" else f"; {owner} carries it out"
        )
        return RedirectResponse(f"/requests/{request_id}?done={note}", status_code=303)

    @app.get("/approvals", response_class=HTMLResponse, include_in_schema=False)
    async def approvals_page(request: Request, person: PagePerson) -> HTMLResponse:
        return render(request, "approvals.html", {**person_context(person), "items": await inbox(person)})

    @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard_page(
        request: Request, person: PagePerson, start: str | None = None, end: str | None = None
    ) -> HTMLResponse:
        try:
            check(person, Action.DASHBOARD)
        except Refusal as error:
            return render(request, "refused.html", {**person_context(person), "error": error}, 403)
        figures = await dashboard_figures(person, start, end)
        return render(
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

    @app.get("/token", response_class=HTMLResponse, include_in_schema=False)
    async def token_page(request: Request, person: PagePerson) -> HTMLResponse:
        return render(request, "token.html", {**person_context(person), "token": None})

    @app.post("/token", response_class=HTMLResponse, include_in_schema=False)
    async def token_create(request: Request, person: PagePerson) -> HTMLResponse:
        return render(
            request, "token.html", {**person_context(person), "token": auth.issue_token(person.user)}
        )

    @app.get("/events", include_in_schema=False, response_class=EventSourceResponse)
    async def events(person: PagePerson, request_id: str | None = None) -> AsyncIterator[ServerSentEvent]:
        visible = person.visible_queues(all_queues)
        with live.listen() as changes:
            yield ServerSentEvent(event="ready", data="listening")
            while True:
                changed = await changes.get()
                if request_id is not None:
                    if changed == request_id:
                        yield ServerSentEvent(event="request-changed", data=changed)
                    continue
                summary = await workspace.store.summary(changed)
                if summary is not None and (summary.get("queue") in visible or person.sees_all):
                    yield ServerSentEvent(event="queue-changed", data=changed)

    # -- the API -----------------------------------------------------------------------------------

    api = APIRouter(
        prefix="/api", responses={401: {"model": Refused}, 403: {"model": Refused}, 409: {"model": Refused}}
    )

    @api.post("/token", response_model=TokenAnswer, tags=["sign-in"])
    async def token_for_password(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenAnswer:
        """A bearer token for a user name and password (OAuth2's password form), for tools (`crs approve`)."""
        user = await auth.sign_in(form.username, form.password)
        if user is None:
            raise HTTPException(401, "unknown user or wrong password", headers={"WWW-Authenticate": "Bearer"})
        return TokenAnswer(
            access_token=auth.issue_token(user), user=user.id, expires_in_days=settings.token_max_age_days
        )

    @api.post("/tokens", response_model=TokenAnswer, tags=["sign-in"])
    async def token_for_me(person: ApiPerson) -> TokenAnswer:
        """A new bearer token for the signed-in person (single sign-on users get theirs here)."""
        return TokenAnswer(
            access_token=auth.issue_token(person.user),
            user=person.id,
            expires_in_days=settings.token_max_age_days,
        )

    @api.get("/me", tags=["sign-in"])
    async def me(person: ApiPerson) -> dict[str, Any]:
        """Who the token or session belongs to, with roles and teams."""
        return {
            "id": person.id,
            "display_name": person.user.display_name,
            "roles": sorted(role.value for role in person.roles),
            "teams": sorted(person.teams),
        }

    @api.get("/queues", tags=["queues"])
    async def api_queues(
        person: ApiPerson,
        queue: str | None = None,
        status: str | None = None,
        priority: str | None = None,
        assigned: Annotated[str | None, Query(description="me, nobody, or a user id")] = None,
        flagged: bool = False,
        sort: Literal["sla", "age", "priority"] = "sla",
    ) -> list[dict[str, Any]]:
        """The open requests of my teams' queues, most at risk of breaching their SLA first."""
        rows = await rows_for(person, read_filter(queue, status, priority, assigned, flagged, sort))
        return [views.public_row(row) for row in rows]

    @api.get("/requests/{request_id}", tags=["requests"])
    async def api_request(request_id: str, person: ApiPerson) -> dict[str, Any]:
        """A request's whole record: customer, documents, checks, route, SLA, approvals, postings, notes."""
        return await record_for(person, request_id)

    def action_route(path: str, summary: str) -> Callable[..., Any]:
        return api.post(
            f"/requests/{{request_id}}/{path}",
            response_model=ActionAccepted,
            status_code=202,
            tags=["actions"],
            summary=summary,
        )

    @action_route("pick-up", "Pick the request up (assign it to myself)")
    async def api_pick_up(
        request_id: str, person: ApiPerson, body: ActionIdBody | None = None
    ) -> ActionAccepted:
        return accepted(
            await workspace.pick_up(person, request_id, action_id=body.action_id if body else None)
        )

    @action_route("assign", "Assign the request to someone of its team (team leads)")
    async def api_assign(request_id: str, body: AssignBody, person: ApiPerson) -> ActionAccepted:
        return accepted(await workspace.assign(person, request_id, body.assignee, action_id=body.action_id))

    @action_route("release", "Release the request back to its queue")
    async def api_release(
        request_id: str, person: ApiPerson, body: ActionIdBody | None = None
    ) -> ActionAccepted:
        return accepted(
            await workspace.release(person, request_id, action_id=body.action_id if body else None)
        )

    @action_route("notes", "Add a note")
    async def api_note(request_id: str, body: NoteBody, person: ApiPerson) -> ActionAccepted:
        return accepted(await workspace.add_note(person, request_id, body.text, action_id=body.action_id))

    @action_route("reclassify", "Reclassify (routing routes it again by the rules for the new type)")
    async def api_reclassify(request_id: str, body: ReclassifyBody, person: ApiPerson) -> ActionAccepted:
        return accepted(
            await workspace.reclassify(
                person, request_id, body.request_type.value, body.reason, action_id=body.action_id
            )
        )

    @action_route(
        "reroute", "Re-route to another queue (routing carries it out: new queue, priority and SLA)"
    )
    async def api_reroute(request_id: str, body: RerouteBody, person: ApiPerson) -> ActionAccepted:
        priority = body.priority.value if body.priority else None
        return accepted(
            await workspace.reroute(
                person, request_id, body.queue.value, body.reason, priority, action_id=body.action_id
            )
        )

    @action_route("ask-customer", "Ask the customer (validation carries it out: later release)")
    async def api_ask(request_id: str, body: AskCustomerBody, person: ApiPerson) -> ActionAccepted:
        return accepted(
            await workspace.ask_customer(person, request_id, body.question, action_id=body.action_id)
        )

    @action_route(
        "resolution",
        "Decide a resolution (resolution posts it through the approval policy; refused: dead letter)",
    )
    async def api_resolution(request_id: str, body: ResolutionBody, person: ApiPerson) -> ActionAccepted:
        fields = body.model_dump(exclude={"action_id"})
        return accepted(
            await workspace.decide_resolution(person, request_id, fields, action_id=body.action_id)
        )

    @action_route(
        "retry-posting", "Retry a failed ERP posting (resolution sends it again under a new resolution id)"
    )
    async def api_retry(request_id: str, body: RetryBody, person: ApiPerson) -> ActionAccepted:
        return accepted(
            await workspace.retry_posting(
                person, request_id, body.reason, body.resolution_id, action_id=body.action_id
            )
        )

    @action_route("close", "Close with a reason (resolution publishes closed)")
    async def api_close(request_id: str, body: CloseBody, person: ApiPerson) -> ActionAccepted:
        return accepted(
            await workspace.close(
                person, request_id, body.reason_code, body.comment, action_id=body.action_id
            )
        )

    @action_route(
        "approval", "Approve or reject, as the signed-in person (published on requests.approvals.v1)"
    )
    async def api_approval(request_id: str, body: ApprovalBody, person: ApiPerson) -> ActionAccepted:
        published = await workspace.decide_approval(
            person, request_id, body.decision, role=body.role, comment=body.comment
        )
        return accepted(published)

    async def inbox(person: Person) -> list[dict[str, Any]]:
        check(person, Action.APPROVE) if {r.value for r in person.roles} & {
            "team_lead",
            "finance_manager",
        } else None
        summaries = await workspace.store.summaries(
            queues=person.visible_queues(all_queues), status="awaiting_approval"
        )
        items = []
        for summary in summaries:
            eligibility = await workspace.eligibility(person, summary)
            approval = summary.get("approval") or {}
            mine = set(approval.get("still_needed") or ()) & {role.value for role in person.roles}
            if not mine and not eligibility.allowed:
                continue
            items.append(
                {
                    **views.public_row(views.row_of(summary, calendar=calendar, now=clock())),
                    "approval": approval,
                    "eligible": eligibility.allowed,
                    "eligible_roles": list(eligibility.roles),
                    "explanation": eligibility.explanation,
                }
            )
        items.sort(key=lambda item: (item["sla_left_hours"] is None, item["sla_left_hours"] or 0))
        return items

    @api.get("/approvals", tags=["approvals"])
    async def api_inbox(person: ApiPerson) -> list[dict[str, Any]]:
        """What waits for a role I hold in my teams: amount, the policy's words, whether I may decide."""
        return await inbox(person)

    async def dashboard_figures(person: Person, start: str | None, end: str | None) -> dashboard.Figures:
        check(person, Action.DASHBOARD)
        now = clock()
        end_at = _day(end) + timedelta(days=1) if end else now
        start_at = _day(start) if start else end_at - timedelta(days=30)
        if start_at >= end_at:
            raise Refusal("bad_period", "The period must start before it ends.", status_code=422)
        summaries = await workspace.store.summaries(queues=person.visible_queues(all_queues))
        return dashboard.compute(summaries, calendar=calendar, start=start_at, end=end_at, now=now)

    @api.get("/dashboard", tags=["dashboard"])
    async def api_dashboard(
        person: ApiPerson,
        start: Annotated[
            str | None, Query(description="First day, YYYY-MM-DD (default: 30 days ago)")
        ] = None,
        end: Annotated[str | None, Query(description="Last day, YYYY-MM-DD (default: today)")] = None,
    ) -> dict[str, Any]:
        """Every table of the team lead's dashboard over the period."""
        figures = await dashboard_figures(person, start, end)
        return {
            "start": figures.start.isoformat(),
            "end": figures.end.isoformat(),
            "tables": {
                name: {"title": t.title, "columns": list(t.columns), "rows": [list(r) for r in t.rows]}
                for name, t in figures.tables.items()
            },
        }

    @api.get("/dashboard/{table}.csv", tags=["dashboard"], response_class=Response)
    async def api_dashboard_csv(
        table: str, person: ApiPerson, start: str | None = None, end: str | None = None
    ) -> Response:
        """One table of the dashboard as CSV."""
        if table not in dashboard.TABLES:
            raise HTTPException(404, f"no table {table}; tables: {', '.join(dashboard.TABLES)}")
        figures = await dashboard_figures(person, start, end)
        return Response(
            figures.tables[table].csv(),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="{table}.csv"'},
        )

    app.include_router(api)
    return app


async def _perform(
    workspace: Workspace, person: Person, request_id: str, action: str, form: dict[str, str]
) -> Published:
    """A console form's action, as the API would take it."""
    action_id = form.get("action_id") or None
    if action == "pick-up":
        return await workspace.pick_up(person, request_id, action_id=action_id)
    if action == "release":
        return await workspace.release(person, request_id, action_id=action_id)
    if action == "assign":
        return await workspace.assign(person, request_id, _required(form, "assignee"), action_id=action_id)
    if action == "note":
        return await workspace.add_note(person, request_id, _required(form, "text"), action_id=action_id)
    if action == "reclassify":
        kind = RequestType(_required(form, "request_type")).value
        return await workspace.reclassify(
            person, request_id, kind, _required(form, "reason"), action_id=action_id
        )
    if action == "reroute":
        return await workspace.reroute(
            person,
            request_id,
            _required(form, "queue"),
            _required(form, "reason"),
            form.get("priority") or None,
            action_id=action_id,
        )
    if action == "ask-customer":
        return await workspace.ask_customer(
            person, request_id, _required(form, "question"), action_id=action_id
        )
    if action == "resolution":
        body = ResolutionBody.model_validate(
            {
                "kind": _required(form, "kind"),
                "invoice_id": form.get("invoice_id") or None,
                "payment_id": form.get("payment_id") or None,
                "amount": {"amount": form["amount"], "currency": form.get("currency") or "USD"}
                if form.get("amount")
                else None,
                "corrected_amount": None,
                "reason": _required(form, "reason"),
            }
        )
        return await workspace.decide_resolution(
            person, request_id, body.model_dump(exclude={"action_id"}), action_id=action_id
        )
    if action == "retry-posting":
        return await workspace.retry_posting(
            person,
            request_id,
            _required(form, "reason"),
            form.get("resolution_id") or None,
            action_id=action_id,
        )
    if action == "close":
        return await workspace.close(
            person,
            request_id,
            _required(form, "reason_code"),
            form.get("comment") or None,
            action_id=action_id,
        )
    if action in ("approve", "reject"):
        return await workspace.decide_approval(
            person, request_id, action, role=form.get("role") or None, comment=form.get("comment") or None
        )
    raise Refusal("unknown_action", f"There is no action {action}.", status_code=404)


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise ValueError(f"{name.replace('_', ' ')} is required")
    return value


def _new_action_id() -> str:
    import uuid

    return uuid.uuid4().hex


def _local(path: str) -> str:
    """Only a path on this site (no open redirect to another one)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


def _day(text: str) -> datetime:
    try:
        return (
            datetime.fromisoformat(text).replace(tzinfo=UTC)
            if "T" not in text
            else datetime.fromisoformat(text)
        )
    except ValueError:
        raise Refusal("bad_period", f"{text!r} is not a day (YYYY-MM-DD).", status_code=422) from None


def _external(request: Request, settings: WorkspaceSettings, path: str) -> str:
    base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url).rstrip("/")
    return base + path


def _oidc_client(settings: WorkspaceSettings) -> Any:
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    issuer = str(settings.oidc_issuer).rstrip("/")
    oauth.register(
        "company",
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
    )
    return oauth


__all__ = ["build_web"]
_ = asyncio  # the SSE generator runs on the event loop
