"""Live updates for open pages: server-sent events naming the requests that changed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.workspace.routes.context import PagePerson, Web

router = APIRouter(include_in_schema=False)


@router.get("/events", response_class=EventSourceResponse)
async def events(
    person: PagePerson, web: Web, request_id: str | None = None
) -> AsyncIterator[ServerSentEvent]:
    """``request-changed`` for one request's page, else ``queue-changed`` for a request the person sees."""
    visible = person.visible_queues(web.all_queues)
    with web.live.listen() as changes:
        yield ServerSentEvent(event="ready", data="listening")
        while True:
            changed = await changes.get()
            if request_id is not None:
                if changed == request_id:
                    yield ServerSentEvent(event="request-changed", data=changed)
                continue
            summary = await web.workspace.store.summary(changed)
            if summary is not None and (summary.get("queue") in visible or person.sees_all):
                yield ServerSentEvent(event="queue-changed", data=changed)
