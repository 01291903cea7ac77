"""Who is asking: signed session cookies for people, bearer tokens for tools, OIDC single sign-on.

- **Sessions**: a signed cookie (Starlette's ``SessionMiddleware``, itsdangerous) holding the
  user's directory id and a CSRF token; HttpOnly, SameSite=Lax, Secure unless the workspace
  listens on loopback. The user is looked up in the directory on every request, so a user
  disabled or removed there loses access at once.
- **CSRF**: every form carries the session's token (``csrf_token``; htmx sends it as the
  ``X-CSRF-Token`` header); an unsafe request authenticated by the cookie without it is refused.
  Requests with a bearer token carry no cookie and need none.
- **Bearer tokens** for tools (``crs approve``): signed with the secret key, naming the user and
  a random id, valid ``token_max_age_days``. Issued to a signed-in person (``POST /api/tokens``, the
  console's "API token" page) or for a user name and password (``POST /api/token``, OAuth2's
  password form). Changing the secret key revokes them all.
- **OIDC**: with an issuer and a client configured, "Sign in with …" runs the authorization code
  flow (authlib); the ID token's ``oidc_username_claim`` (email by default) must name a user of the
  directory, whose roles and teams then apply.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from datetime import timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import Request

from services.workspace.permissions import Person
from services.workspace.settings import WorkspaceSettings
from shared.directory import DirectoryUser, UserDirectory, hash_password, verify_password

SESSION_COOKIE = "crs_workspace_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_TOKEN_SALT = "crs-workspace-api-token"  # noqa: S105 - a salt that separates uses, not a secret
# Verified against when a user name is unknown, so that an unknown name takes as long as a wrong password.
_DUMMY = DirectoryUser(id="nobody", display_name="nobody", password_hash=hash_password(secrets.token_hex(8)))


class NotSignedIn(Exception):
    """No valid session or token: pages redirect to the sign-in page, the API answers 401."""


class Authenticator:
    def __init__(self, settings: WorkspaceSettings, directory: UserDirectory) -> None:
        self.settings = settings
        self.directory = directory
        self._tokens = URLSafeTimedSerializer(settings.secret, salt=_TOKEN_SALT)
        self._token_max_age = timedelta(days=settings.token_max_age_days)

    async def sign_in(self, username: str, password: str) -> DirectoryUser | None:
        """The user whose password this is, or None (unknown, disabled, no password, wrong).

        argon2 takes most of a second of CPU by design: it runs on a worker thread, so that a
        sign-in does not stall every other page, live update and API call of this process.
        """
        user = await self.directory.find(username) if username.strip() else None
        if user is None:
            await asyncio.to_thread(verify_password, _DUMMY, password)
            return None
        return user if await asyncio.to_thread(verify_password, user, password) else None

    def issue_token(self, user: DirectoryUser) -> str:
        return self._tokens.dumps({"sub": user.id, "jti": secrets.token_urlsafe(12)})

    async def user_of_token(self, token: str) -> DirectoryUser | None:
        try:
            claims: Any = self._tokens.loads(token, max_age=int(self._token_max_age.total_seconds()))
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str):
            return None
        return await self._active(claims["sub"])

    async def _active(self, user_id: str) -> DirectoryUser | None:
        user = await self.directory.find(user_id)
        return user if user is not None and not user.disabled else None

    async def person(self, request: Request) -> Person:
        """The person behind a request: bearer token first, then the session cookie."""
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token:
            user = await self.user_of_token(token.strip())
            if user is None:
                raise NotSignedIn("the bearer token is not valid (expired, revoked or not ours)")
            request.state.by_token = True
            return Person(user)
        user_id = request.session.get("user")
        user = await self._active(user_id) if isinstance(user_id, str) else None
        if user is None:
            raise NotSignedIn("not signed in")
        request.state.by_token = False
        return Person(user)

    @staticmethod
    def start_session(request: Request, user: DirectoryUser) -> None:
        """A new session for ``user``: a fresh CSRF token, nothing kept from before (fixation)."""
        request.session.clear()
        request.session.update({"user": user.id, "csrf": secrets.token_urlsafe(24)})

    @staticmethod
    def end_session(request: Request) -> None:
        request.session.clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made for anonymous sessions too: the sign-in form has one)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


async def csrf_ok(request: Request) -> bool:
    """Whether an unsafe request carries the session's CSRF token (header or form field)."""
    if getattr(request.state, "by_token", False):
        return True
    expected = request.session.get("csrf")
    if not isinstance(expected, str):
        return False
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given is not None and hmac.compare_digest(given, expected)
