"""Hand-written fakes of the delivery boundary: an in-memory ledger and a recording publisher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.delivery import OutgoingMessage


@dataclass(eq=False)  # identity, like a real transaction: it keys per-transaction buffers
class FakeTransaction:
    ledger: FakeLedger
    outgoing: list[tuple[str, OutgoingMessage]] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    current_key: str = ""
    session: Any = None
    actions: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    committed_actions: list[Callable[[], None]] = field(default_factory=list)

    async def processed_among(self, keys: Sequence[str]) -> set[str]:
        return {key for key in keys if key in self.ledger.processed}

    def begin(self, key: str) -> None:
        self.current_key = key

    def mark_processed(self, key: str) -> None:
        self.marks.append(key)

    def emit(self, message: OutgoingMessage) -> None:
        self.outgoing.append((self.current_key, message))

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        self.actions.append(action)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.committed_actions.append(action)

    @property
    def emitted(self) -> list[OutgoingMessage]:
        return [message for _, message in self.outgoing]


@dataclass
class FakeLedger:
    """Commits atomically like the real one: all of a transaction's effects or none."""

    processed: set[str] = field(default_factory=set)
    outbox: dict[str, tuple[str, OutgoingMessage, bool]] = field(default_factory=dict)
    fail_next_commits: int = 0
    commit_error: Callable[[], BaseException] = lambda: ConnectionError("database went away during commit")
    down: bool = False
    commits: int = 0
    refused: dict[str, tuple[OutgoingMessage, str]] = field(default_factory=dict)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        transaction = FakeTransaction(self)
        yield transaction
        for action in transaction.actions:
            await action()
        if self.fail_next_commits:
            self.fail_next_commits -= 1
            raise self.commit_error()
        self.commits += 1
        self.processed.update(transaction.marks)
        for source_key, message in transaction.outgoing:
            self.outbox.setdefault(message.message_id, (source_key, message, False))
        for committed in transaction.committed_actions:
            committed()

    async def unpublished(
        self,
        *,
        source_keys: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        older_than: timedelta | None = None,
        limit: int | None = 500,
    ) -> list[OutgoingMessage]:
        del older_than  # every entry counts as old enough in a fake
        return [
            message
            for source_key, message, published in self.outbox.values()
            if not published
            and (source_keys is None or source_key in source_keys)
            and (keys is None or message.key in keys)
        ][:limit]

    def is_unavailable(self, error: BaseException) -> bool:
        return isinstance(error, ConnectionError)

    async def answers(self) -> bool:
        return not self.down

    async def set_aside(self, message: OutgoingMessage, *, reason: str) -> None:
        self.refused[message.message_id] = (self.outbox.pop(message.message_id)[1], reason)

    async def mark_published(self, messages: Sequence[OutgoingMessage]) -> None:
        for published in messages:
            key, message, _ = self.outbox[published.message_id]
            self.outbox[published.message_id] = (key, message, True)


@dataclass
class RecordingPublisher:
    sent: list[tuple[str, str | None, bytes, dict[str, str]]] = field(default_factory=list)
    fail_next: int = 0

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unavailable")
        self.sent.append((topic, key, value, headers))
        delivered: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    def on(self, topic: str) -> list[tuple[str, str | None, bytes, dict[str, str]]]:
        return [sent for sent in self.sent if sent[0] == topic]
