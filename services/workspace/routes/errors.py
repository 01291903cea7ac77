"""How the app answers a refusal, a missing session and a missing CSRF token."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.workspace.permissions import Refusal
from services.workspace.routes.context import CsrfRefused, RedirectToSignIn


async def to_sign_in(request: Request, error: RedirectToSignIn) -> Response:
    """htmx gets a 401 with ``HX-Redirect``; a browser is sent to the sign-in page."""
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse(f"/login?next={error.next_path}", status_code=303)


async def csrf_refused(_request: Request, _: CsrfRefused) -> Response:
    return JSONResponse(
        {"refused": "csrf", "detail": "The form's CSRF token is missing or wrong: reload the page."}, 403
    )


async def refused(_request: Request, error: Refusal) -> Response:
    return JSONResponse({"refused": error.reason, "detail": error.explanation}, error.status_code)


def add_error_handlers(app: FastAPI) -> None:
    """Register the answers above on ``app``."""
    app.add_exception_handler(RedirectToSignIn, to_sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, csrf_refused)  # type: ignore[arg-type]
    app.add_exception_handler(Refusal, refused)  # type: ignore[arg-type]
