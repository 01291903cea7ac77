"""A real headless Chromium (Debian's, /usr/bin/chromium) driven by Playwright, and a workspace."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from tests.browser.support import ProbedBrowser, live_updates_flow, write_cheap_users
from tests.support import Servers, isolated_settings, running_service
from tests.workspace.support import Owners, RunningWorkspace, running_owners, running_workspace

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"

if shutil.which(CHROMIUM) is None:  # `make setup` installs it (apt-get install chromium)
    pytest.skip(f"{CHROMIUM} is not installed: run `make setup`", allow_module_level=True)


@pytest.fixture(scope="module")
async def workspace(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningWorkspace]:
    """The workspace, once its live updates are known to flow (tests then never race its start)."""
    users = write_cheap_users(tmp_path_factory.mktemp("browser-users"))
    async with running_workspace(servers, users) as running:
        await live_updates_flow(servers, running)
        yield running


@pytest.fixture
async def resolution(servers: Servers) -> AsyncIterator[Owners]:
    """Resolution beside the workspace, for the tests whose actions it carries out (only those: it
    acts on every routed request it reads)."""
    async with running_owners(servers, routing=False, resolution=True) as running:
        yield running


@pytest.fixture
async def audit(servers: Servers) -> AsyncIterator[AuditSettings]:
    """Audit beside the workspace, for a test that checks what the console did is in the record."""
    settings = isolated_settings(AuditSettings)
    async with running_service(build_audit, settings, servers):
        yield settings


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """One Chromium for the session; its pages report when their live updates listen."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield ProbedBrowser(chromium)
        await chromium.close()


@pytest.fixture(autouse=True)
async def pages_closed_after_each_test(browser: Any) -> AsyncIterator[None]:
    yield
    await browser.close_pages()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
