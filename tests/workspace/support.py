"""Running the workspace for tests: the real service under uvicorn on a free loopback port, with a
users file of its own (argon2 hashes of known passwords), against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from crs.stack import find_free_port
from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from services.workspace.app import build_app
from services.workspace.settings import WorkspaceSettings
from shared.directory import FileUserDirectory, hash_password
from tests.support import MovableClock, Servers, isolated_settings, mongo, running_service, wait_until

PASSWORD = "correct horse battery staple"
USERS = """
version = "test"

[[users]]
id = "ada.agent"
display_name = "Ada Agent"
email = "ada.agent@crs.example"
roles = ["agent"]
teams = ["accounts_receivable", "cash_application", "customer_service"]
password_hash = "{hash}"

[[users]]
id = "carl.cash"
display_name = "Carl Cash"
email = "carl.cash@crs.example"
roles = ["agent"]
teams = ["cash_application"]
password_hash = "{hash}"

[[users]]
id = "lena.lead"
display_name = "Lena Lead"
email = "lena.lead@crs.example"
roles = ["team_lead"]
teams = ["accounts_receivable", "collections", "credit_control"]
password_hash = "{hash}"

[[users]]
id = "fred.finance"
display_name = "Fred Finance"
email = "fred.finance@crs.example"
roles = ["finance_manager"]
teams = ["accounts_receivable", "credit_control", "collections"]
password_hash = "{hash}"

[[users]]
id = "audrey.auditor"
display_name = "Audrey Auditor"
email = "audrey.auditor@crs.example"
roles = ["auditor"]
password_hash = "{hash}"

[[users]]
id = "adam.admin"
display_name = "Adam Admin"
email = "adam.admin@crs.example"
roles = ["admin"]
password_hash = "{hash}"

[[users]]
id = "bob.smith"
display_name = "Bob Smith"
email = "bob.smith@crs.example"
aliases = ["bob"]
roles = ["team_lead", "finance_manager"]
teams = ["credit_control"]
password_hash = "{hash}"
"""


def write_users(directory: Path) -> Path:
    path = directory / "users.toml"
    path.write_text(USERS.replace("{hash}", hash_password(PASSWORD)), encoding="utf-8")
    return path


@dataclass
class RunningWorkspace:
    url: str
    settings: WorkspaceSettings
    clock: MovableClock

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def token(self, user: str, password: str = PASSWORD) -> str:
        async with self.client() as client:
            answer = await client.post("/api/token", data={"username": user, "password": password})
            answer.raise_for_status()
            return str(answer.json()["access_token"])


@contextlib.asynccontextmanager
async def running_workspace(
    servers: Servers, users_file: Path, *, clock: MovableClock | None = None, **overrides: Any
) -> AsyncIterator[RunningWorkspace]:
    """The workspace under uvicorn on 127.0.0.1:<free port>, until the block ends."""
    port = find_free_port()
    settings = isolated_settings(WorkspaceSettings, health_port=port, **overrides)
    clock = clock or MovableClock()
    app, _ = build_app(
        settings, servers.infrastructure(), directory=FileUserDirectory.load(users_file), clock=clock
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    deadline = asyncio.get_running_loop().time() + 120
    async with httpx.AsyncClient(base_url=url, timeout=5) as probe:
        while True:
            if task.done():
                task.result()
                raise AssertionError("the workspace stopped while starting")
            with contextlib.suppress(httpx.HTTPError):
                if (await probe.get("/health")).status_code == 204:
                    break
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the workspace was not healthy within 120 s")
            await asyncio.sleep(0.2)
    try:
        yield RunningWorkspace(url, settings, clock)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)


@dataclass
class Owners:
    """Routing or resolution running beside the workspace: they carry out the console's actions."""

    servers: Servers
    routing: RoutingSettings | None = None
    resolution: ResolutionSettings | None = None

    async def routing_routed(self, request_id: str) -> None:
        """Wait until routing has routed the request itself (it then carries out re-routing)."""
        assert self.routing is not None
        await self._has(self.routing.database, "sla_clocks", request_id)

    async def resolution_knows(self, request_id: str) -> None:
        """Wait until resolution has the request (it then carries out decisions and closure)."""
        assert self.resolution is not None
        await self._has(self.resolution.database, "requests", request_id)

    async def has(self, collection: str, *keys: str) -> None:
        """Wait until resolution's ``collection`` (a reference view, ``requests``) has ``keys``."""
        assert self.resolution is not None
        await self._has(self.resolution.database, collection, *keys)

    async def _has(self, database: str, collection: str, *keys: str) -> None:
        documents = mongo(self.servers)[database][collection]

        async def stored() -> bool:
            return await documents.count_documents({"_id": {"$in": list(keys)}}) == len(keys)

        # Generous: a resolution or routing of its own consumer group reads every topic from the
        # start, the records of every earlier test of the session included.
        await wait_until(stored, timeout=240)


@contextlib.asynccontextmanager
async def running_owners(servers: Servers, *, routing: bool, resolution: bool) -> AsyncIterator[Owners]:
    """Routing and/or resolution (the example user directory, the shipped rules and policy).

    Each only for the test that needs it: a resolution running beside the workspace would act on
    every routed request of the other tests (put them on hold for invoices it does not know).
    """
    owners = Owners(servers)
    async with contextlib.AsyncExitStack() as stack:
        if routing:
            owners.routing = isolated_settings(RoutingSettings)
            await stack.enter_async_context(running_service(build_routing, owners.routing, servers))
        if resolution:
            owners.resolution = isolated_settings(ResolutionSettings)
            await stack.enter_async_context(running_service(build_resolution, owners.resolution, servers))
        yield owners


def now() -> datetime:
    return datetime.now(UTC)
