"""Single sign-on: the authorization code flow against a tiny local OIDC provider stand-in.

The stand-in (a few Starlette routes under uvicorn on a loopback port) serves the discovery
document, an authorization endpoint that signs the user in at once, a token endpoint that returns an
RS256 ID token, and its JWKS. The workspace (authlib) discovers it, redirects, exchanges the code,
checks the ID token's signature, issuer, audience and nonce, and finds the user in its directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from crs.stack import find_free_port
from tests.support import Servers
from tests.workspace.support import running_workspace

pytestmark = pytest.mark.integration

CLIENT_ID = "crs-workspace"


@contextlib.asynccontextmanager
async def oidc_provider(email: str) -> AsyncIterator[str]:
    """An OIDC provider that signs ``email`` in to whoever asks."""
    port = find_free_port()
    issuer = f"http://127.0.0.1:{port}"
    key = RSAKey.generate_key(
        2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"}, private=True
    )
    codes: dict[str, str] = {}

    async def discovery(_: Request) -> Response:
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def authorize(request: Request) -> Response:
        query = request.query_params
        assert query["client_id"] == CLIENT_ID
        assert query.get("code_challenge_method") == "S256"
        code = secrets.token_urlsafe(8)
        codes[code] = query["nonce"]
        return RedirectResponse(
            f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        )

    async def token(request: Request) -> Response:
        form = await request.form()
        nonce = codes.pop(str(form["code"]))
        assert form.get("code_verifier")
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": CLIENT_ID,
            "sub": "u-1",
            "email": email,
            "nonce": nonce,
            "iat": now,
            "exp": now + 300,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)
        return JSONResponse(
            {"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        )

    async def jwks(_: Request) -> Response:
        return JSONResponse({"keys": [key.as_dict(private=False)]})

    app = Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/jwks", jwks),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.05)
    try:
        yield issuer
    finally:
        server.should_exit = True
        await task


async def sign_in_with_sso(client: httpx.AsyncClient) -> httpx.Response:
    login = await client.get("/login")
    assert "Sign in with company single sign-on" in login.text
    return await client.get("/auth/oidc/login")


async def test_a_directory_user_signs_in_with_single_sign_on(servers: Servers, users_file: Path) -> None:
    async with oidc_provider("Lena.Lead@crs.example") as issuer:
        settings: dict[str, Any] = {
            "oidc_issuer": issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": "s3cret",
        }
        async with (
            running_workspace(servers, users_file, **settings) as workspace,
            httpx.AsyncClient(base_url=workspace.url, timeout=30, follow_redirects=True) as client,
        ):
            answer = await sign_in_with_sso(client)
            assert answer.status_code == 200
            assert str(answer.url) == f"{workspace.url}/"
            assert "Lena Lead" in answer.text
            me = await client.post("/api/tokens", headers={"x-csrf-token": _csrf(answer.text)})
            assert me.json()["user"] == "lena.lead"


async def test_single_sign_on_of_someone_the_directory_does_not_know_is_refused(
    servers: Servers, users_file: Path
) -> None:
    async with oidc_provider("mallory@elsewhere.example") as issuer:
        settings: dict[str, Any] = {
            "oidc_issuer": issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": "s3cret",
        }
        async with (
            running_workspace(servers, users_file, **settings) as workspace,
            httpx.AsyncClient(base_url=workspace.url, timeout=30, follow_redirects=True) as client,
        ):
            answer = await sign_in_with_sso(client)
            assert answer.status_code == 403
            assert "mallory@elsewhere.example is not a user of the workspace" in answer.text
            assert (await client.get("/api/queues")).status_code == 401


def _csrf(page: str) -> str:
    return page.split('name="csrf_token" value="')[1].split('"', maxsplit=1)[0]
