"""Delivery guarantees every service relies on: idempotent consumption, an outbox, dead letters.

How one inbound message is handled (:meth:`ReliableConsumer.consume`):

1. Too large, not JSON, not an object, or not the expected model: it goes to ``<topic>.dlq`` with
   the error, the original topic, partition, offset and key in headers. Nothing else happens
   (except a rejection on the status stream where the sender can be identified).
2. Otherwise, in ONE database transaction of the service's own database: skip it if its
   idempotency key is already recorded; else apply it to the view, queue the events it causes in
   the outbox, and record the key. A crash anywhere before the commit leaves no trace, and the
   broker redelivers (offsets are committed only after the handler returns).
3. After the commit, the events of that message still in the outbox are published and marked.
   A crash between the commit and the publish loses nothing: the redelivered message finds its
   key recorded and publishes what is still pending, and :meth:`ReliableConsumer.sweep_outbox`
   publishes leftovers on a timer as well. Consumers downstream drop repeats by event id, so the
   at-least-once publishing is harmless.
4. A handler that keeps failing is retried a bounded number of times with exponential backoff,
   then dead-lettered, and the consumer moves on to the next message.

The ledger (processed keys + outbox) is a protocol so unit tests can run the same machinery on a
hand-written in-memory fake; production uses :class:`shared.mongo.MongoLedger`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from shared.logging import bound_request
from shared.topics import dead_letter_topic

log = structlog.get_logger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class OutgoingMessage:
    """An event waiting in the outbox: where it goes and its bytes, with a stable id."""

    message_id: str
    topic: str
    key: str
    value: bytes

    @classmethod
    def of(cls, *, topic: str, key: str, event: BaseModel, message_id: str) -> OutgoingMessage:
        """Serialise ``event`` as contract JSON (Decimal as strings, times in RFC 3339)."""
        return cls(
            message_id=message_id,
            topic=topic,
            key=key,
            value=event.model_dump_json(by_alias=True, exclude_none=False).encode(),
        )


@dataclass(frozen=True)
class MessageOrigin:
    """Where an inbound message came from: what a dead letter and the audit trail record."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int | None = None


class PermanentFailure(Exception):
    """A message that can never succeed, however often retried: straight to the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LedgerTransaction(Protocol):
    """One atomic unit of work in the service's database."""

    @property
    def session(self) -> Any:
        """The database session stores must use so their writes join the transaction."""

    async def is_processed(self, key: str) -> bool: ...

    async def mark_processed(self, key: str) -> None: ...

    def emit(self, message: OutgoingMessage) -> None: ...


class Ledger(Protocol):
    """The record of processed messages and the outbox, kept in the service's own database."""

    def transaction(self, source_key: str) -> AbstractAsyncContextManager[LedgerTransaction]: ...

    async def unpublished(
        self, *, source_key: str | None = None, older_than: timedelta | None = None, limit: int = 500
    ) -> list[OutgoingMessage]: ...

    async def mark_published(self, message_ids: Sequence[str]) -> None: ...


class Publisher(Protocol):
    """The one broker operation the delivery machinery needs."""

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> None: ...


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try before a message is dead-lettered."""

    max_attempts: int = 4
    retry_backoff_seconds: float = 0.2
    max_message_bytes: int = 512 * 1024
    outbox_grace: timedelta = timedelta(seconds=5)


Apply = Callable[[ModelT, LedgerTransaction, MessageOrigin], Awaitable[None]]
InvalidHook = Callable[[dict[str, Any], ValidationError, MessageOrigin], Sequence[OutgoingMessage]]


@dataclass
class ReliableConsumer:
    """The idempotent, dead-lettering, outbox-publishing consumer of one service."""

    service: str
    ledger: Ledger
    publish: Publisher
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)

    async def consume(
        self,
        *,
        value: bytes,
        origin: MessageOrigin,
        model: type[ModelT],
        idempotency_key: Callable[[ModelT, MessageOrigin], str],
        apply: Apply[ModelT],
        log_ids: Callable[[ModelT], tuple[str | None, str | None]] = lambda _: (None, None),
        on_invalid: InvalidHook | None = None,
    ) -> None:
        """Handle one inbound message end to end; see the module docstring for the guarantees."""
        parsed = await self._parse(value, origin, model, on_invalid)
        if parsed is None:
            return
        key = idempotency_key(parsed, origin)
        request_id, correlation_id = log_ids(parsed)
        with bound_request(request_id=request_id, correlation_id=correlation_id):
            if await self._apply_with_retries(parsed, key, value, origin, apply):
                await self.flush_outbox(source_key=key)

    async def _parse(
        self,
        value: bytes,
        origin: MessageOrigin,
        model: type[ModelT],
        on_invalid: InvalidHook | None,
    ) -> ModelT | None:
        if len(value) > self.policy.max_message_bytes:
            await self.dead_letter(
                value,
                origin,
                reason="message_too_large",
                detail=f"{len(value)} bytes, limit {self.policy.max_message_bytes}",
            )
            return None
        try:
            payload = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            await self.dead_letter(value, origin, reason="malformed_json", detail=str(error))
            return None
        if not isinstance(payload, dict):
            await self.dead_letter(
                value, origin, reason="not_an_object", detail="the value must be a JSON object"
            )
            return None
        try:
            return model.model_validate(payload)
        except ValidationError as error:
            detail = describe_validation_error(error)
            if on_invalid is not None:
                for message in on_invalid(payload, error, origin):
                    await self._publish(message)
            await self.dead_letter(value, origin, reason="invalid_message", detail=detail)
            return None

    async def _apply_with_retries(
        self,
        parsed: ModelT,
        key: str,
        value: bytes,
        origin: MessageOrigin,
        apply: Apply[ModelT],
    ) -> bool:
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                async with self.ledger.transaction(key) as transaction:
                    if await transaction.is_processed(key):
                        log.info("message.already_processed", key=key, topic=origin.topic)
                        return True
                    await apply(parsed, transaction, origin)
                    await transaction.mark_processed(key)
                return True
            except PermanentFailure as failure:
                await self.dead_letter(value, origin, reason=failure.reason, detail=failure.detail)
                return False
            except Exception as error:
                if attempt == self.policy.max_attempts:
                    log.error("message.failed", key=key, attempts=attempt, exc_info=error)
                    await self.dead_letter(
                        value, origin, reason="handler_failed", detail=f"{type(error).__name__}: {error}"
                    )
                    return False
                delay = self.policy.retry_backoff_seconds * 2 ** (attempt - 1)
                log.warning("message.retrying", key=key, attempt=attempt, delay=delay, error=str(error))
                await asyncio.sleep(delay)
        return False

    async def flush_outbox(
        self, *, source_key: str | None = None, older_than: timedelta | None = None
    ) -> int:
        """Publish what is still in the outbox (for one message, or everything old enough)."""
        pending = await self.ledger.unpublished(source_key=source_key, older_than=older_than)
        for message in pending:
            await self._publish(message)
        if pending:
            await self.ledger.mark_published([message.message_id for message in pending])
        return len(pending)

    async def sweep_outbox(self, interval_seconds: float) -> None:
        """Forever: publish outbox entries a crash left behind. Run as a background task."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                published = await self.flush_outbox(older_than=self.policy.outbox_grace)
                if published:
                    log.info("outbox.swept", published=published)
            except Exception as error:  # noqa: BLE001 - the sweeper must outlive a bad moment
                log.warning("outbox.sweep_failed", error=str(error))

    async def _publish(self, message: OutgoingMessage) -> None:
        await self.publish(
            message.value,
            topic=message.topic,
            key=message.key,
            headers={"content-type": "application/json", "x-event-id": message.message_id},
        )

    async def dead_letter(self, value: bytes, origin: MessageOrigin, *, reason: str, detail: str) -> None:
        """Send the original bytes to ``<topic>.dlq`` with the error and where they came from."""
        log.warning(
            "message.dead_lettered",
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            reason=reason,
            detail=detail[:500],
        )
        await self.publish(
            value,
            topic=dead_letter_topic(origin.topic),
            key=origin.key,
            headers={
                "x-error-reason": reason,
                "x-error": detail[:2_000],
                "x-original-topic": origin.topic,
                "x-original-partition": str(origin.partition),
                "x-original-offset": str(origin.offset),
                "x-original-key": origin.key or "",
                "x-failed-service": self.service,
                "x-failed-at": datetime.now(UTC).isoformat(),
            },
        )


def describe_validation_error(error: ValidationError) -> str:
    """A short, readable list of what is wrong with a message, field by field."""
    parts = []
    for issue in error.errors(include_url=False, include_input=False)[:10]:
        where = ".".join(str(step) for step in issue["loc"]) or "message"
        parts.append(f"{where}: {issue['msg']}")
    return "; ".join(parts)
