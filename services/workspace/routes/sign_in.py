"""Signing in and out: the sign-in page, sign-out, and single sign-on through the company's OIDC provider."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.workspace.auth import csrf_ok
from services.workspace.routes.context import CsrfRefused, PagePerson, Web
from services.workspace.settings import WorkspaceSettings

router = APIRouter(include_in_schema=False)
oidc_router = APIRouter(prefix="/auth/oidc", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, web: Web, next: str = "/") -> HTMLResponse:
    return web.render(request, "login.html", {"next": local_path(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    web: Web,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    if not await csrf_ok(request):
        raise CsrfRefused
    user = await web.auth.sign_in(username, password)
    if user is None:
        return web.render(
            request, "login.html", {"next": local_path(next), "error": "Unknown user or wrong password."}, 401
        )
    web.auth.start_session(request, user)
    return RedirectResponse(local_path(next), status_code=303)


@router.post("/logout")
async def logout(request: Request, web: Web, _: PagePerson) -> Response:
    web.auth.end_session(request)
    return RedirectResponse("/login", status_code=303)


@oidc_router.get("/login")
async def oidc_login(request: Request, web: Web) -> Response:
    redirect_uri = external_url(request, web.settings, "/auth/oidc/callback")
    response: Response = await web.oauth.company.authorize_redirect(request, redirect_uri)
    return response


@oidc_router.get("/callback")
async def oidc_callback(request: Request, web: Web) -> Response:
    from authlib.integrations.starlette_client import OAuthError

    try:
        token = await web.oauth.company.authorize_access_token(request)
    except OAuthError as error:
        return web.render(
            request, "login.html", {"next": "/", "error": f"Single sign-on failed: {error.error}"}, 401
        )
    claims = token.get("userinfo") or {}
    name = claims.get(web.settings.oidc_username_claim)
    user = await web.workspace.directory.find(str(name)) if name else None
    if user is None or user.disabled:
        return web.render(
            request,
            "login.html",
            {"next": "/", "error": f"{name or 'This account'} is not a user of the workspace's directory."},
            403,
        )
    web.auth.start_session(request, user)
    return RedirectResponse("/", status_code=303)


def local_path(path: str) -> str:
    """Only a path on this site (no open redirect to another one)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


def external_url(request: Request, settings: WorkspaceSettings, path: str) -> str:
    """``path`` on the workspace's public address (the configured one, else the request's own)."""
    base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url).rstrip("/")
    return base + path


def oidc_client(settings: WorkspaceSettings) -> Any:
    """authlib's client of the company's OIDC provider (discovery, PKCE with S256)."""
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
