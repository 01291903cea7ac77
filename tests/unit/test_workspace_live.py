"""Live updates: a page learns of every change, however many come while it is busy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

from services.workspace.live import ChangeListener, LiveUpdates

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


async def _no_changes() -> AsyncIterator[str]:  # never followed: the tests publish by hand
    nothing: tuple[str, ...] = ()
    for change in nothing:
        yield change
