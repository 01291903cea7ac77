"""Live updates: which requests changed, fanned out to every open page over server-sent events.

One task per replica follows the ``requests`` collection's change stream, so a page learns of a
change whichever replica's consumer wrote it (each replica consumes only its partitions). Each
open page gathers the ids changed since it last looked (:class:`ChangeListener`): a slow page
never blocks the others and never misses a change, it only learns of several at once.

The change streams are open only while a page listens (and for a while after the last one
leaves): on the local database server following a change stream costs a fifth of the workspace's
database CPU (measured with ``crs bench``), which nobody needs while no console is open. A page
is told it is live (``ready``) once the streams are open, and a stream opened again after a
failure tells every page that anything may have changed while it was closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

_MAX_GATHERED = 1_000
"""Ids a page gathers before it is simply told that everything may have changed."""


@dataclass(frozen=True)
class Changes:
    """What changed since a page last looked: these ids, or (``everything``) too many to list."""

    ids: frozenset[str]
    everything: bool = False

    def concern(self, request_id: str) -> bool:
        return self.everything or request_id in self.ids


class ChangeListener:
    """One open page's changes: every id written since it last asked, gathered, none ever lost."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._everything = False
        self._changed = asyncio.Event()
        self.page_told_live = False
        """Set once the page was told it is live: from then on a gap in following concerns it."""

    def add(self, request_id: str) -> None:
        if len(self._ids) < _MAX_GATHERED:
            self._ids.add(request_id)
        else:
            self._everything = True
        self._changed.set()

    def add_everything(self) -> None:
        """Anything may have changed (the changes were not followed for a while)."""
        self._everything = True
        self._changed.set()

    async def next(self) -> Changes:
        """What changed since the last call, once something has."""
        await self._changed.wait()
        self._changed.clear()
        changes = Changes(frozenset(self._ids), self._everything)
        self._ids, self._everything = set(), False
        return changes


class LiveUpdates:
    def __init__(
        self,
        changes: Callable[[], AsyncIterator[str | None]],
        *more_changes: Callable[[], AsyncIterator[str | None]],
        retry_seconds: float = 1.0,
        idle_seconds: float = 60.0,
    ) -> None:
        """``changes`` (the request documents) and ``more_changes`` (other collections about a
        request, such as refused actions) each yield None once their stream is open, then the id of
        every request they changed. The streams close ``idle_seconds`` after the last page left."""
        self._sources = (changes, *more_changes)
        self._retry_seconds = retry_seconds
        self._idle_seconds = idle_seconds
        self._listeners: set[ChangeListener] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle_stop: asyncio.Task[None] | None = None
        self._allowed = False
        self.following = asyncio.Event()
        """Set while the request documents' change stream is open."""

    def start(self) -> None:
        """Allow following the changes: the streams open when a page first listens."""
        self._allowed = True
        if self._listeners:
            self._follow_all()

    async def stop(self) -> None:
        self._allowed = False
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None
        await self._close_streams()

    def _follow_all(self) -> None:
        if self._tasks or not self._allowed:
            return
        requests, *others = self._sources
        self._tasks = [
            asyncio.create_task(self._follow(requests, self.following)),
            *(asyncio.create_task(self._follow(source, asyncio.Event())) for source in others),
        ]

    async def _close_streams(self) -> None:
        tasks, self._tasks = self._tasks, []
        self.following.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _close_when_idle(self) -> None:
        await asyncio.sleep(self._idle_seconds)
        self._idle_stop = None
        if not self._listeners:
            await self._close_streams()

    async def _follow(
        self, changes: Callable[[], AsyncIterator[str | None]], following: asyncio.Event
    ) -> None:
        while True:  # until cancelled (_close_streams)
            try:
                async for request_id in changes():
                    if request_id is not None:
                        self.publish(request_id)
                        continue
                    # Opened (again): what changed while no stream was open is not known.
                    for listener in list(self._listeners):
                        if listener.page_told_live:
                            listener.add_everything()
                    following.set()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the database may be away; try again
                log.warning("live.change_stream_failed", error=str(error))
            following.clear()
            await asyncio.sleep(self._retry_seconds)

    async def opened(self, timeout: float) -> bool:
        """Whether the request documents' change stream is open, waiting up to ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.following.wait(), timeout)
        return self.following.is_set()

    def publish(self, request_id: str) -> None:
        for listener in list(self._listeners):
            listener.add(request_id)

    @contextlib.contextmanager
    def listen(self) -> Iterator[ChangeListener]:
        """A page's changes, from now until it leaves; the change streams open if they were not."""
        listener = ChangeListener()
        self._listeners.add(listener)
        if self._idle_stop is not None:
            self._idle_stop.cancel()
            self._idle_stop = None
        self._follow_all()
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
            if not self._listeners and self._tasks and self._idle_stop is None:
                self._idle_stop = asyncio.create_task(self._close_when_idle())
