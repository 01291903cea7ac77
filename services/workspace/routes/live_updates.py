"""Live updates for open pages: server-sent events naming the requests that changed.

The pace is set here, not in the page: after telling a page of a change, the stream waits
:data:`LIVE_INTERVAL_SECONDS` and then tells it of everything that changed meanwhile. htmx's own
``throttle`` modifier drops an event that comes inside its window (no trailing call), so a status
arriving within 300 ms of an earlier change never showed until a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.workspace.routes.context import PagePerson, Web

router = APIRouter(include_in_schema=False)

STREAM_OPEN_SECONDS = 10.0
"""How long a page waits for the change stream to open before it is told it is live anyway."""
LIVE_INTERVAL_SECONDS = 0.3
"""At most one event per page this often: a busy queue does not reload its rows non-stop."""


@router.get("/events", response_class=EventSourceResponse)
async def events(
    person: PagePerson, web: Web, request_id: str | None = None
) -> AsyncIterator[ServerSentEvent]:
    """``request-changed`` for one request's page, else ``queue-changed`` with the ids of the changed
    requests the person sees (an empty list: too many changed to say which)."""
    visible = person.visible_queues(web.all_queues)
    with web.live.listen() as listener:
        # ``ready`` makes the page fetch its part afresh: once the change stream is open, nothing
        # written after that fetch goes untold. (If it will not open, the page is live anyway once
        # it does: a stream that opens late tells every page that anything may have changed.)
        await web.live.opened(timeout=STREAM_OPEN_SECONDS)
        listener.page_told_live = True
        yield ServerSentEvent(event="ready", data="listening")
        while True:
            changes = await listener.next()
            if request_id is not None:
                if not changes.concern(request_id):
                    continue
                yield ServerSentEvent(event="request-changed", data=request_id)
            else:
                seen = await _visible(web, changes.ids, visible, sees_all=person.sees_all)
                if not (seen or changes.everything):
                    continue
                yield ServerSentEvent(event="queue-changed", data=seen)
            await asyncio.sleep(LIVE_INTERVAL_SECONDS)


async def _visible(web: Web, ids: Collection[str], visible: Collection[str], *, sees_all: bool) -> list[str]:
    """Those of the changed requests that are in a queue the person sees (the event's data)."""
    if not ids:
        return []
    queues = await web.workspace.store.queues_of(ids)
    return sorted(one for one, queue in queues.items() if sees_all or queue in visible)
