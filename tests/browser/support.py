"""What the browser tests wait for, instead of sleeping: a page whose live updates listen, and a
workspace whose live updates are known to flow. And test users whose passwords are cheap to check.

On a loaded machine fixed sleeps are too short and argon2 at its production cost takes seconds per
sign-in; waiting for conditions (with generous deadlines) keeps the tests exact without racing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from tests.support import Servers, publish, unique
from tests.workspace.events import routed_request
from tests.workspace.support import PASSWORD, USERS, RunningWorkspace

LIVE_PROBE = """(() => {
  const Original = window.EventSource;
  if (!Original || Original.crsProbe) return;
  window.crsListening = 0;
  // The workspace sends `ready` once a page's stream is registered for changes (web.py /events).
  function Probed(url, options) {
    const source = new Original(url, options);
    source.addEventListener('ready', () => { window.crsListening += 1; });
    return source;
  }
  Probed.prototype = Original.prototype;
  Probed.CONNECTING = Original.CONNECTING;
  Probed.OPEN = Original.OPEN;
  Probed.CLOSED = Original.CLOSED;
  Probed.crsProbe = true;
  window.EventSource = Probed;
})();"""
"""Counts, in ``window.crsListening``, the live-update streams of the page the server listens for."""

LISTENING_TIMEOUT_MS = 120_000


async def listening(page: Any, *, more_than: int = 0) -> int:
    """Wait until the page's live updates listen (more than ``more_than`` streams); their count."""
    await page.wait_for_function(
        f"() => (window.crsListening || 0) > {more_than}", timeout=LISTENING_TIMEOUT_MS
    )
    return int(await page.evaluate("() => window.crsListening"))


class ProbedBrowser:
    """The session's Chromium: every new page carries :data:`LIVE_PROBE`, and is closed after its
    test (:meth:`close_pages`) even when the test fails before closing it: an open page keeps its
    event stream, which the workspace would wait for when it stops."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self._pages: list[Any] = []

    async def new_page(self, **options: Any) -> Any:
        page = await self._browser.new_page(**options)
        self._pages.append(page)
        await page.add_init_script(LIVE_PROBE)
        return page

    async def close_pages(self) -> None:
        pages, self._pages = self._pages, []
        for page in pages:
            if not page.is_closed():
                await page.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""argon2id at the lowest cost: the same verification code, without its production cost per sign-in."""


def write_cheap_users(directory: Path) -> Path:
    """The test users (tests/workspace/support.py) with cheaply checked hashes of their password."""
    path = directory / "users.toml"
    path.write_text(USERS.replace("{hash}", CHEAP_HASHER.hash(PASSWORD)), encoding="utf-8")
    return path


async def live_updates_flow(servers: Servers, workspace: RunningWorkspace, *, timeout: float = 180) -> None:
    """Until a request published now reaches a listening stream: the workspace's consumer has its
    partitions and its change stream is open. (A page that listens before then would miss it.)

    A new warm-up request every few seconds, until one arrives: one published before the change
    stream opened is never announced, and is not a failure of the console.
    """
    token = await workspace.token("adam.admin")
    published: set[str] = set()

    async def keep_publishing() -> None:
        while True:
            request_id = unique("REQ")
            published.add(request_id)
            await publish(
                servers, *routed_request(request_id, request_type="refund", subject="Warm-up of live updates")
            )
            await asyncio.sleep(5)

    async with (
        asyncio.timeout(timeout),
        workspace.client(token) as client,
        client.stream("GET", "/events", timeout=None) as stream,
    ):
        lines = stream.aiter_lines()
        async for line in lines:
            if line.strip() == "event: ready":
                break
        publisher = asyncio.create_task(keep_publishing())
        try:
            async for line in lines:
                if line.startswith("data: ") and published & set(json.loads(line.removeprefix("data: "))):
                    return
        finally:
            publisher.cancel()
    raise AssertionError("the workspace's event stream ended before a warm-up request arrived")
