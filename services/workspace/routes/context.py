"""What every route shares: the workspace's parts, who is asking, and how a page is rendered.

The parts live in one :class:`WebContext` on ``app.state.web``; routes name what they need through
the ``Annotated`` aliases :data:`Web`, :data:`ApiPerson` and :data:`PagePerson` (FastAPI
dependencies), never through module globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.workspace.auth import Authenticator, NotSignedIn, csrf_ok, csrf_token
from services.workspace.live import LiveUpdates
from services.workspace.permissions import Person
from services.workspace.service import Workspace
from services.workspace.settings import WorkspaceSettings
from shared.business_time import BusinessCalendar
from shared.directory import Team

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALL_QUEUES = frozenset(team.value for team in Team)
Clock = Callable[[], datetime]


class RedirectToSignIn(Exception):
    """A page asked for without a session: the sign-in page, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class CsrfRefused(Exception):
    """An unsafe request made with the session cookie but without the form's CSRF token."""


@dataclass(frozen=True)
class WebContext:
    """The workspace's parts the routes use, built once by ``build_web``."""

    settings: WorkspaceSettings
    workspace: Workspace
    auth: Authenticator
    live: LiveUpdates
    calendar: BusinessCalendar
    clock: Clock
    templates: Jinja2Templates
    oauth: Any  # authlib's OAuth registry; None without single sign-on (its routes are not included then)
    all_queues: frozenset[str] = field(default=ALL_QUEUES)

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> HTMLResponse:
        """A page or fragment, with the CSRF token and the single sign-on's name every page uses."""
        return self.templates.TemplateResponse(
            request,
            name,
            {
                "csrf": csrf_token(request),
                "oidc": self.settings.oidc_display_name if self.oauth else None,
                **context,
            },
            status_code=status_code,
        )


def web_context(request: Request) -> WebContext:
    """The app's :class:`WebContext` (a dependency)."""
    return cast(WebContext, request.app.state.web)


async def api_person(request: Request) -> Person:
    """The person behind an API call (401 without a valid token or session; CSRF checked for cookies)."""
    try:
        person = await web_context(request).auth.person(request)
    except NotSignedIn as error:
        raise HTTPException(401, str(error), headers={"WWW-Authenticate": "Bearer"}) from None
    if request.method not in SAFE_METHODS and not await csrf_ok(request):
        raise CsrfRefused
    return person


async def page_person(request: Request) -> Person:
    """The person behind a page (to the sign-in page without a session; CSRF checked on forms)."""
    try:
        person = await web_context(request).auth.person(request)
    except NotSignedIn:
        raise RedirectToSignIn(request.url.path) from None
    if request.method not in SAFE_METHODS and not await csrf_ok(request):
        raise CsrfRefused
    return person


Web = Annotated[WebContext, Depends(web_context)]
ApiPerson = Annotated[Person, Depends(api_person)]
PagePerson = Annotated[Person, Depends(page_person)]


def person_context(person: Person) -> dict[str, Any]:
    """What every signed-in page shows of the person: who, roles, and which menu entries they get."""
    roles = {role.value for role in person.roles}
    return {
        "me": person,
        "roles": sorted(roles),
        "can_dashboard": bool(roles & {"team_lead", "finance_manager", "auditor", "admin"}),
        "can_approve": bool(roles & {"team_lead", "finance_manager"}),
    }
