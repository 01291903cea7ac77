"""Live updates: which requests changed, fanned out to every open page over server-sent events.

One task per replica follows the ``requests`` collection's change stream, so a page learns of a
change whichever replica's consumer wrote it (each replica consumes only its partitions). Each
open page gathers the ids changed since it last looked (:class:`ChangeListener`): a slow page
never blocks the others and never misses a change, it only learns of several at once.
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

    def add(self, request_id: str) -> None:
        if len(self._ids) < _MAX_GATHERED:
            self._ids.add(request_id)
        else:
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
        changes: Callable[[], AsyncIterator[str]],
        *more_changes: Callable[[], AsyncIterator[str]],
        retry_seconds: float = 1.0,
    ) -> None:
        """``changes`` (the request documents) and ``more_changes`` (other collections about a
        request, such as refused actions) each yield the ids of the requests they changed."""
        self._sources = (changes, *more_changes)
        self._retry_seconds = retry_seconds
        self._listeners: set[ChangeListener] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.following = asyncio.Event()
        """Set while the request documents' change stream is open."""

    def start(self) -> None:
        requests, *others = self._sources
        self._tasks = [
            asyncio.create_task(self._follow(requests, self.following)),
            *(asyncio.create_task(self._follow(source, asyncio.Event())) for source in others),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, changes: Callable[[], AsyncIterator[str]], following: asyncio.Event) -> None:
        while True:
            try:
                stream = changes()
                following.set()
                async for request_id in stream:
                    self.publish(request_id)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the database may be away; try again
                log.warning("live.change_stream_failed", error=str(error))
            following.clear()
            await asyncio.sleep(self._retry_seconds)

    def publish(self, request_id: str) -> None:
        for listener in list(self._listeners):
            listener.add(request_id)

    @contextlib.contextmanager
    def listen(self) -> Iterator[ChangeListener]:
        listener = ChangeListener()
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
