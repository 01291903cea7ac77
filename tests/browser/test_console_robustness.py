"""The console where timing and roles vary: a change made while a page connects its live updates
still shows, so does a change that follows another within a moment, and a team lead's request
page (with the assign form) is labelled and well formed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.browser.support import listening
from tests.support import Servers, mongo, publish, unique, wait_until
from tests.workspace.events import routed_request
from tests.workspace.support import PASSWORD, RunningWorkspace

pytestmark = pytest.mark.integration

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id)"""
DUPLICATE_IDS = """() => {
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  return ids.filter((id, i) => ids.indexOf(id) !== i);
}"""


async def sign_in(browser: Any, workspace: RunningWorkspace, user: str) -> Any:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    await page.goto(f"{workspace.url}/login")
    await page.get_by_label("User name or email").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{workspace.url}/")
    return page


async def routed_and_shown(servers: Servers, workspace: RunningWorkspace, token: str) -> str:
    request_id = unique("REQ")
    await publish(servers, *routed_request(request_id, subject="Connect race"))
    async with workspace.client(token) as client:

        async def shown() -> bool:
            return (await client.get(f"/api/requests/{request_id}")).status_code == 200

        await wait_until(shown, timeout=120, interval=0.5)
    return request_id


async def test_a_change_applied_while_the_page_connects_its_live_updates_still_shows(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    token = await workspace.token("ada.agent")
    request_id = await routed_and_shown(servers, workspace, token)
    page = await sign_in(browser, workspace, "ada.agent")
    # The page's event stream is held back until the change below is applied: the page shows
    # the request as it was rendered, and its stream connects only afterwards.
    connect = asyncio.Event()

    async def hold(route: Any) -> None:
        await connect.wait()
        await route.continue_()

    await page.route("**/events?*", hold)
    await page.goto(f"{workspace.url}/requests/{request_id}")
    await page.locator("#assignee", has_text="nobody").wait_for()
    async with workspace.client(token) as client:
        assert (await client.post(f"/api/requests/{request_id}/pick-up")).status_code == 202

        async def picked_up() -> bool:
            record = (await client.get(f"/api/requests/{request_id}")).json()
            return bool(record.get("summary", record).get("assignee") == "ada.agent")

        await wait_until(picked_up, timeout=120, interval=0.5)
    connect.set()
    await listening(page)
    await page.locator("#assignee", has_text="ada.agent").wait_for(timeout=30_000)
    await page.screenshot(path=str(screenshots / "request-after-late-connect.png"), full_page=True)


async def test_a_change_right_after_another_still_shows(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    """Two changes of one request 50 ms apart (a resolution's status right after the action that
    asked for it, when the workspace's consumer catches up): the page shows the second too.

    The two writes go to the workspace's own view directly, to space them exactly; everything
    after (change stream, event stream, the page's htmx) is the real path. htmx's ``throttle``
    dropped the second change for good (it has no trailing call).
    """
    token = await workspace.token("ada.agent")
    request_id = await routed_and_shown(servers, workspace, token)
    page = await sign_in(browser, workspace, "ada.agent")
    await page.goto(f"{workspace.url}/requests/{request_id}")
    await listening(page)
    await page.locator(".status-routed").first.wait_for()
    view = mongo(servers)[workspace.settings.database]["requests"]
    await view.update_one({"_id": request_id}, {"$set": {"live_probe": 1}})
    await asyncio.sleep(0.05)
    await view.update_one({"_id": request_id}, {"$set": {"summary.status": "closed"}})
    await page.locator(".status-closed").first.wait_for(timeout=20_000)
    await page.screenshot(path=str(screenshots / "request-second-change-shown.png"), full_page=True)


async def test_a_team_leads_request_page_has_labelled_fields_and_unique_ids(
    servers: Servers, workspace: RunningWorkspace, browser: Any, screenshots: Path
) -> None:
    request_id = await routed_and_shown(servers, workspace, await workspace.token("lena.lead"))
    page = await sign_in(browser, workspace, "lena.lead")
    await page.goto(f"{workspace.url}/requests/{request_id}")
    await page.get_by_label("Assign to (user id)").wait_for(state="attached")
    assert await page.evaluate(UNLABELLED) == []
    assert await page.evaluate(DUPLICATE_IDS) == []
    await page.screenshot(path=str(screenshots / "request-team-lead.png"), full_page=True)
