"""Live updates: a page learns of every change, however many come while it is busy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.workspace.live import ChangeListener, LiveUpdates
from tests.support import wait_until

TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "workspace" / "templates"


async def test_changes_made_while_a_page_is_busy_are_all_told_next_time() -> None:
    live = LiveUpdates(changes=_no_changes)
    with live.listen() as listener:
        live.publish("REQ-1")
        first = await listener.next()
        # The page is refreshing: two changes come meanwhile, the second of them twice.
        live.publish("REQ-2")
        live.publish("REQ-3")
        live.publish("REQ-3")
        second = await listener.next()
    assert first.ids == {"REQ-1"}
    assert second.ids == {"REQ-2", "REQ-3"}
    assert second.concern("REQ-3")
    assert not second.concern("REQ-1")


async def test_a_page_waits_for_the_next_change() -> None:
    listener = ChangeListener()
    waiting = asyncio.create_task(listener.next())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    listener.add("REQ-9")
    assert (await asyncio.wait_for(waiting, 1)).ids == {"REQ-9"}


async def test_too_many_changes_to_list_concern_every_request() -> None:
    listener = ChangeListener()
    for n in range(5_000):
        listener.add(f"REQ-{n}")
    changes = await listener.next()
    assert changes.everything
    assert changes.concern("REQ-UNLISTED")
    assert len(changes.ids) <= 1_000
    listener.add("REQ-A")
    assert not (await listener.next()).everything


def test_no_live_part_of_a_page_throttles_in_the_browser() -> None:
    """htmx's ``throttle`` drops an event inside its window with no call after it: the change that
    came second never showed. The event stream sets the pace instead."""
    triggers = [
        (template.name, trigger)
        for template in TEMPLATES.glob("*.html")
        for trigger in re.findall(r'hx-trigger="([^"]*sse:[^"]*)"', template.read_text())
    ]
    assert triggers, "the live parts of the pages are triggered by sse events"
    assert [(name, trigger) for name, trigger in triggers if "throttle" in trigger] == []


class _Stream:
    """A change stream by hand: counts how often it was opened, and what is open now."""

    def __init__(self) -> None:
        self.opened = 0
        self.open_now = 0
        self.changes: asyncio.Queue[str] = asyncio.Queue()
        self.fail = False

    async def closed(self) -> bool:
        return self.open_now == 0

    async def opened_twice(self) -> bool:
        return self.opened == 2

    async def follow(self) -> AsyncIterator[str | None]:
        self.opened += 1
        self.open_now += 1
        try:
            yield None  # open
            while True:
                change = await self.changes.get()
                if self.fail:
                    raise ConnectionError("the database went away")
                yield change
        finally:
            self.open_now -= 1


async def test_changes_are_followed_only_while_a_page_listens() -> None:
    """Following a change stream costs the database even when nobody looks: not without a page."""
    stream = _Stream()
    live = LiveUpdates(stream.follow, retry_seconds=0.01, idle_seconds=0.2)
    live.start()
    await asyncio.sleep(0.1)
    assert stream.opened == 0, "no page listens: no stream"
    with live.listen() as listener:
        assert await live.opened(timeout=5)
        stream.changes.put_nowait("REQ-1")
        assert (await asyncio.wait_for(listener.next(), 5)).ids == {"REQ-1"}
    with live.listen():  # another page comes soon after: the same stream
        assert await live.opened(timeout=5)
    assert stream.opened == 1
    # Closed once nobody listened for idle_seconds.
    await wait_until(stream.closed, timeout=5, interval=0.01)
    assert not live.following.is_set()
    with live.listen():
        assert await live.opened(timeout=5)
    assert stream.opened == 2
    await live.stop()
    assert stream.open_now == 0


async def test_a_stream_opened_again_tells_live_pages_anything_may_have_changed() -> None:
    stream = _Stream()
    live = LiveUpdates(stream.follow, retry_seconds=0.01)
    live.start()
    with live.listen() as live_page, live.listen() as waiting_page:
        assert await live.opened(timeout=5)
        live_page.page_told_live = True  # told "ready"; the other page is still being told
        stream.fail = True
        stream.changes.put_nowait("REQ-LOST")  # the stream fails: this change is never told
        await wait_until(stream.opened_twice, timeout=5, interval=0.01)
        stream.fail = False
        assert await live.opened(timeout=5)
        changes = await asyncio.wait_for(live_page.next(), 5)
        assert changes.everything
        with pytest.raises(TimeoutError):  # a page not yet told it is live fetches afresh anyway
            await asyncio.wait_for(waiting_page.next(), 0.2)
    await live.stop()


async def _no_changes() -> AsyncIterator[str]:  # never followed: the tests publish by hand
    nothing: tuple[str, ...] = ()
    for change in nothing:
        yield change
