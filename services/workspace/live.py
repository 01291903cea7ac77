"""Live updates: which requests changed, fanned out to every open page over server-sent events.

One task per replica follows the ``requests`` collection's change stream, so a page learns of a
change whichever replica's consumer wrote it (each replica consumes only its partitions). Each
open page has a bounded queue; a page too slow to keep up loses the oldest ids, never blocks the
others (it reloads what it shows on any change anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import structlog

log = structlog.get_logger(__name__)

_QUEUE_SIZE = 256


class LiveUpdates:
    def __init__(self, changes: Callable[[], AsyncIterator[str]], *, retry_seconds: float = 1.0) -> None:
        self._changes = changes
        self._retry_seconds = retry_seconds
        self._listeners: set[asyncio.Queue[str]] = set()
        self._task: asyncio.Task[None] | None = None
        self.following = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            try:
                stream = self._changes()
                self.following.set()
                async for request_id in stream:
                    self.publish(request_id)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the database may be away; try again
                log.warning("live.change_stream_failed", error=str(error))
            self.following.clear()
            await asyncio.sleep(self._retry_seconds)

    def publish(self, request_id: str) -> None:
        for queue in list(self._listeners):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(request_id)

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(_QUEUE_SIZE)
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)
