"""The workspace's HTTP app: the console's pages (Jinja2, htmx, server-sent events) and the JSON API.

Routes are thin: they read the person (:mod:`services.workspace.auth`), call the workspace
(:mod:`services.workspace.service`) or read the view, and render. Every unsafe request made with the
session cookie carries the CSRF token; every action is authorised on the server. The routes live in
:mod:`services.workspace.routes`, one router per area; this module only composes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from services.workspace import domain
from services.workspace.auth import CSRF_FIELD, SESSION_COOKIE, Authenticator
from services.workspace.live import LiveUpdates
from services.workspace.routes import api, live_updates, pages, sign_in
from services.workspace.routes.context import (
    ApiPerson,
    CsrfRefused,
    PagePerson,
    RedirectToSignIn,
    WebContext,
    api_person,
    page_person,
)
from services.workspace.routes.errors import add_error_handlers
from services.workspace.service import Workspace
from services.workspace.settings import WorkspaceSettings
from shared.business_time import BusinessCalendar

HERE = Path(__file__).parent
Clock = Callable[[], datetime]


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
    oauth = sign_in.oidc_client(settings) if settings.oidc_enabled else None
    app.state.web = WebContext(
        settings=settings,
        workspace=workspace,
        auth=auth,
        live=live,
        calendar=calendar,
        clock=clock,
        templates=_templates(),
        oauth=oauth,
    )
    add_error_handlers(app)
    app.include_router(sign_in.router)
    if oauth is not None:
        app.include_router(sign_in.oidc_router)
    app.include_router(pages.router)
    app.include_router(live_updates.router)
    app.include_router(api.router)
    return app


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(
        money=domain.money_text,
        role_name=lambda role: str(role).replace("_", " "),
        CSRF_FIELD=CSRF_FIELD,
    )
    return templates


__all__ = [
    "ApiPerson",
    "CsrfRefused",
    "PagePerson",
    "RedirectToSignIn",
    "api_person",
    "build_web",
    "page_person",
]
