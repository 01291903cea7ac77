"""Delivery guarantees every service relies on: idempotent consumption, an outbox, dead letters.

How inbound messages are handled (:meth:`ReliableConsumer.consume_batch`):

1. Too large, not JSON, not an object, or not the expected model: it goes to ``<topic>.dlq`` with
   the error, the original topic, partition, offset and key in headers. Nothing else happens
   (except a rejection on the status stream where the sender can be identified).
2. Otherwise, in ONE database transaction of the service's own database: skip it if its
   idempotency key is already recorded; else apply it to the view, queue the events it causes in
   the outbox, and record the key. A batch of messages shares one transaction (falling back to one
   message per transaction if the batch fails), because database round trips are what limit
   throughput. A crash anywhere before the commit leaves no trace, and the
   broker redelivers (offsets are committed only after the handler returns).
3. After the commit, the events of that message still in the outbox are published and marked,
   after any event of the same keys an earlier transaction left unpublished: a request's events
   leave in the order they were committed. A crash between the commit and the publish loses
   nothing: the redelivered message finds its key recorded and publishes what is still pending,
   and :meth:`ReliableConsumer.sweep_outbox` publishes leftovers on a timer as well (one replica at
   a time, holding a lease, and only entries older than a grace period, so that it does not race
   the replica that is publishing them). Consumers downstream drop repeats by event id, so the
   at-least-once publishing is harmless.
4. A handler that keeps failing is retried a bounded number of times with exponential backoff,
   then dead-lettered, and the consumer moves on to the next message. When the failure is the
   database being unreachable, the message is not at fault: it is not dead-lettered but left
   uncommitted, so it comes back once the database does.

The ledger (processed keys + outbox) is a protocol so unit tests can run the same machinery on a
hand-written in-memory fake; production uses :class:`shared.mongo.MongoLedger`. What happened to
each message (processed, repeated, dead-lettered, retried) is reported to a
:class:`DeliveryObserver`; production's is :class:`shared.metrics.ServiceMetrics`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence, Set
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

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
    committed_at: datetime | None = field(default=None, compare=False)
    """When its transaction committed, as read back from the outbox (None: not read back)."""

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


@dataclass(frozen=True)
class Inbound:
    """One message as it came off the broker: its bytes and where they came from."""

    value: bytes
    origin: MessageOrigin


@dataclass(frozen=True)
class _Accepted(Generic[ModelT]):
    message: ModelT
    key: str
    inbound: Inbound
    log_ids: tuple[str | None, str | None]


class PermanentFailure(Exception):
    """A message that can never succeed, however often retried: straight to the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LedgerTransaction(Protocol):
    """One atomic unit of work in the service's database, covering one message or a batch."""

    @property
    def session(self) -> Any:
        """The database session stores must use so their writes join the transaction."""

    async def processed_among(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` an earlier, committed transaction already recorded."""

    def begin(self, key: str) -> None:
        """Start applying the message with idempotency key ``key``: what it emits is its own."""

    def mark_processed(self, key: str) -> None:
        """Record ``key`` as processed when the transaction commits."""

    def emit(self, message: OutgoingMessage) -> None:
        """Queue ``message`` in the outbox, on behalf of the message begun last."""

    def before_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` inside the transaction, after every message, just before the commit.

        For writes collected over a whole batch and made in one statement (see
        :class:`shared.mongo.BatchedInserts`).
        """

    @property
    def emitted(self) -> Sequence[OutgoingMessage]:
        """Everything queued, in order; published once the transaction has committed."""


class Ledger(Protocol):
    """The record of processed messages and the outbox, kept in the service's own database."""

    def transaction(self) -> AbstractAsyncContextManager[LedgerTransaction]: ...

    async def unpublished(
        self,
        *,
        source_keys: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
        older_than: timedelta | None = None,
        limit: int | None = 500,
    ) -> list[OutgoingMessage]:
        """Outbox entries not published yet, in the order they were committed.

        Only those queued by the messages ``source_keys``, or with one of the record ``keys``, or
        committed longer than ``older_than`` ago, as asked; at most ``limit`` (None: all).
        """

    async def mark_published(self, message_ids: Sequence[str]) -> None: ...

    async def set_aside(self, message_id: str, *, reason: str) -> None:
        """Take an entry the broker will never accept out of the outbox, keeping it and why."""

    def is_unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` means the database cannot be reached (not that the message is bad)."""


class Lease(Protocol):
    """A job that one replica of a service runs at a time (the outbox sweeper)."""

    async def hold(self) -> bool:
        """Take the lease or renew it; whether this replica holds it now."""


class DatabaseUnavailable(Exception):
    """The service's database did not answer through every retry: the message is not at fault.

    It reaches the subscriber, so the offset is not committed and the message comes back later,
    instead of being dead-lettered for an outage.
    """


class Publisher(Protocol):
    """The one broker operation the delivery machinery needs.

    It hands the record to the producer and returns what to await for the broker's
    acknowledgement, so that many records can be in flight at once and still leave in order.
    """

    async def __call__(
        self, value: bytes, *, topic: str, key: str | None, headers: dict[str, str]
    ) -> Awaitable[object]: ...


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try before a message is dead-lettered."""

    max_attempts: int = 4
    retry_backoff_seconds: float = 0.2
    max_message_bytes: int = 512 * 1024
    outbox_grace: timedelta = timedelta(seconds=5)


SWEEP_CHUNK = 500
"""Outbox entries the sweeper reads and publishes at a time."""

PROCESSED = "processed"
"""Outcome of a message applied and committed."""
REPEATED = "repeated"
"""Outcome of a message whose idempotency key was already recorded: nothing applied again."""
DEAD_LETTERED = "dead_lettered"
"""Outcome of a message sent to ``<topic>.dlq``."""
FAILED = "failed"
"""Outcome of a message left uncommitted because the database did not answer: it comes back."""


class DeliveryObserver(Protocol):
    """What the delivery machinery reports as it goes (metrics), kept free of any metrics library."""

    def message_handled(self, topic: str, outcome: str) -> None:
        """A message of ``topic`` ended with ``outcome`` (:data:`PROCESSED`, :data:`REPEATED`, ...)."""

    def message_retried(self, topic: str) -> None:
        """An attempt at a message of ``topic`` failed and will be tried again."""

    def dead_lettered(self, topic: str, reason: str) -> None:
        """A message of ``topic`` was published to its dead-letter topic for ``reason``."""

    def batch_handled(self, topics: Iterable[str], seconds: float) -> None:
        """A consumed batch with records of ``topics`` took ``seconds``, parse to publish."""

    def event_published(self, message: OutgoingMessage) -> None:
        """``message`` was acknowledged by the broker."""


class NoObserver:
    """The observer that notes nothing: the default, and what unit tests get unless they ask."""

    def message_handled(self, topic: str, outcome: str) -> None:
        pass

    def message_retried(self, topic: str) -> None:
        pass

    def dead_lettered(self, topic: str, reason: str) -> None:
        pass

    def batch_handled(self, topics: Iterable[str], seconds: float) -> None:
        pass

    def event_published(self, message: OutgoingMessage) -> None:
        pass


Apply = Callable[[ModelT, LedgerTransaction, MessageOrigin], Awaitable[None]]
InvalidHook = Callable[[dict[str, Any], ValidationError, MessageOrigin], Sequence[OutgoingMessage]]


@dataclass
class ReliableConsumer:
    """The idempotent, dead-lettering, outbox-publishing consumer of one service."""

    service: str
    ledger: Ledger
    publish: Publisher
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    observer: DeliveryObserver = field(default_factory=NoObserver)
    refused_for_good: Callable[[BaseException], bool] = lambda _: False
    """Whether a publish error means the broker will never take that record (too large)."""
    already_published: Callable[[Sequence[OutgoingMessage]], Awaitable[set[str]]] | None = None
    """Which of these outbox entries are on their topics already (left by a publisher that died
    between the broker's acknowledgement and the mark); None: no way to tell, send them again."""
    # Outbox entries a path of this process is publishing (from its commit, or from reading them
    # back, to the mark), and those whose publish failed here (they go before the next event of
    # their key, however young).
    _claimed: set[str] = field(default_factory=set, init=False, repr=False)
    _failed_here: set[str] = field(default_factory=set, init=False, repr=False)

    async def consume_batch(
        self,
        batch: Sequence[Inbound],
        *,
        model: type[ModelT],
        idempotency_key: Callable[[ModelT, MessageOrigin], str],
        apply: Apply[ModelT],
        log_ids: Callable[[ModelT], tuple[str | None, str | None]] = lambda _: (None, None),
        on_invalid: InvalidHook | None = None,
        decode: Callable[[bytes], dict[str, Any]] | None = None,
    ) -> None:
        """Handle a batch of inbound messages, in order, in as few transactions as possible.

        ``decode`` replaces JSON parsing for a consumer that takes any bytes (audit keeps even
        what is not JSON); what it returns must still validate as ``model``.

        The whole batch is applied in one transaction (the database round trips are what limit
        throughput). If that transaction fails, the batch is handled again one message at a time,
        each with its own retries and dead letter, so one bad message never holds up the others.
        """
        started = time.perf_counter()
        try:
            await self._consume_batch(
                batch,
                model=model,
                idempotency_key=idempotency_key,
                apply=apply,
                log_ids=log_ids,
                on_invalid=on_invalid,
                decode=decode,
            )
        finally:
            self.observer.batch_handled(
                (inbound.origin.topic for inbound in batch), time.perf_counter() - started
            )

    async def _consume_batch(
        self,
        batch: Sequence[Inbound],
        *,
        model: type[ModelT],
        idempotency_key: Callable[[ModelT, MessageOrigin], str],
        apply: Apply[ModelT],
        log_ids: Callable[[ModelT], tuple[str | None, str | None]],
        on_invalid: InvalidHook | None,
        decode: Callable[[bytes], dict[str, Any]] | None,
    ) -> None:
        accepted: list[_Accepted[ModelT]] = []
        for inbound in batch:
            parsed = await self._parse(inbound.value, inbound.origin, model, on_invalid, decode)
            if parsed is not None:
                accepted.append(
                    _Accepted(parsed, idempotency_key(parsed, inbound.origin), inbound, log_ids(parsed))
                )
        if not accepted:
            return
        committed: list[OutgoingMessage] = []
        repeated: list[str] = []
        if len(accepted) > 1:
            try:
                await self._apply(accepted, apply, committed, repeated)
            except Exception as error:  # noqa: BLE001 - the fallback below retries each one
                log.warning("batch.failed_falling_back", size=len(accepted), error=str(error))
                committed.clear()
                repeated.clear()
                for one in accepted:
                    await self._apply_one_with_retries(one, apply, committed, repeated)
        else:
            await self._apply_one_with_retries(accepted[0], apply, committed, repeated)
        # Publishing happens after the commit and outside the retries: if the broker is gone, the
        # error reaches the subscriber, the offset is not committed and the batch comes back,
        # finding its keys recorded and its events still in the outbox.
        await self._publish_committed(committed)
        if repeated:
            log.info("message.already_processed", keys=repeated)
            await self.flush_outbox(source_keys=repeated)

    async def _parse(
        self,
        value: bytes,
        origin: MessageOrigin,
        model: type[ModelT],
        on_invalid: InvalidHook | None,
        decode: Callable[[bytes], dict[str, Any]] | None,
    ) -> ModelT | None:
        if len(value) > self.policy.max_message_bytes:
            await self.dead_letter(
                value,
                origin,
                reason="message_too_large",
                detail=f"{len(value)} bytes, limit {self.policy.max_message_bytes}",
            )
            return None
        payload = decode(value) if decode is not None else await self._json_object(value, origin)
        if payload is None:
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

    async def _json_object(self, value: bytes, origin: MessageOrigin) -> dict[str, Any] | None:
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
        return payload

    async def _apply(
        self,
        accepted: Sequence[_Accepted[ModelT]],
        apply: Apply[ModelT],
        committed: list[OutgoingMessage],
        repeated: list[str],
    ) -> None:
        """Apply messages in one transaction; on commit, add what they emitted to ``committed``."""
        async with self.ledger.transaction() as transaction:
            done = await transaction.processed_among([one.key for one in accepted])
            already = [one.key for one in accepted if one.key in done]
            outcomes: list[tuple[str, str]] = []  # (topic, outcome), reported once committed
            for one in accepted:
                if one.key in done:  # processed before, or earlier in this batch
                    outcomes.append((one.inbound.origin.topic, REPEATED))
                    continue
                done.add(one.key)
                request_id, correlation_id = one.log_ids
                with bound_request(request_id=request_id, correlation_id=correlation_id):
                    transaction.begin(one.key)
                    await apply(one.message, transaction, one.inbound.origin)
                    transaction.mark_processed(one.key)
                outcomes.append((one.inbound.origin.topic, PROCESSED))
        committed.extend(transaction.emitted)
        repeated.extend(already)
        for topic, outcome in outcomes:
            self.observer.message_handled(topic, outcome)

    async def _apply_one_with_retries(
        self,
        one: _Accepted[ModelT],
        apply: Apply[ModelT],
        committed: list[OutgoingMessage],
        repeated: list[str],
    ) -> None:
        origin = one.inbound.origin
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                await self._apply([one], apply, committed, repeated)
                return
            except PermanentFailure as failure:
                await self.dead_letter(
                    one.inbound.value, origin, reason=failure.reason, detail=failure.detail
                )
                return
            except Exception as error:
                if attempt == self.policy.max_attempts and self.ledger.is_unavailable(error):
                    log.error("database.unavailable", key=one.key, attempts=attempt, error=str(error))
                    self.observer.message_handled(origin.topic, FAILED)
                    raise DatabaseUnavailable(str(error)) from error
                if attempt == self.policy.max_attempts:
                    log.error("message.failed", key=one.key, attempts=attempt, exc_info=error)
                    await self.dead_letter(
                        one.inbound.value,
                        origin,
                        reason="handler_failed",
                        detail=f"{type(error).__name__}: {error}",
                    )
                    return
                delay = self.policy.retry_backoff_seconds * 2 ** (attempt - 1)
                self.observer.message_retried(origin.topic)
                log.warning("message.retrying", key=one.key, attempt=attempt, delay=delay, error=str(error))
                await asyncio.sleep(delay)

    async def run_in_transaction(
        self, work: Callable[[LedgerTransaction], Awaitable[None]], *, source_key: str
    ) -> None:
        """Work that no inbound message started (a timer, a re-check) with the same guarantee.

        Its view writes and the events it emits commit together; the events are published after
        the commit. If publishing fails, the outbox sweeper publishes them later. Errors reach
        the caller: a periodic job simply tries again next time.
        """
        async with self.ledger.transaction() as transaction:
            transaction.begin(source_key)
            await work(transaction)
        await self._publish_committed(transaction.emitted)

    async def _publish_committed(self, messages: Sequence[OutgoingMessage], *, fresh: bool = True) -> None:
        """Publish what a transaction committed, behind what the outbox left behind for its keys.

        A request's events must leave in the order they were committed (the contract: statuses
        in the order they happened). An event of the same key that an earlier transaction left
        unpublished (a crash or a failed publish between its commit and its publish) goes first;
        waiting for the sweeper would let this newer one overtake it. One indexed read per
        publishing batch. Not sent again: what someone has published and marked meanwhile, what
        this process is publishing already, and what another replica committed within the grace
        period (it is publishing it now; past the grace period it counts as left behind).

        ``fresh``: ``messages`` were committed by this process just now and never handed to the
        producer; otherwise (entries read back for a redelivered message) they may have gone out
        before a crash, and are checked first (see :meth:`_publish_in_order`).
        """
        if not messages:
            return
        ours = {message.message_id for message in messages}
        owned = {message_id for message_id in ours if message_id not in self._claimed} if fresh else set()
        self._claimed.update(owned)  # from the commit on: no other path of this process sends them
        try:
            keys = sorted({message.key for message in messages})
            pending = await self.ledger.unpublished(keys=keys, limit=None)
            await self._publish_in_order(
                [entry for entry in pending if self._ours_to_send(entry, ours)], fresh=owned, owned=owned
            )
        finally:
            self._claimed.difference_update(owned)

    def _ours_to_send(self, entry: OutgoingMessage, ours: set[str]) -> bool:
        if entry.message_id in ours or entry.message_id in self._failed_here or entry.committed_at is None:
            return True
        return datetime.now(UTC) - entry.committed_at >= self.policy.outbox_grace

    async def _publish_in_order(
        self,
        messages: Sequence[OutgoingMessage],
        *,
        fresh: Set[str] = frozenset(),
        owned: Set[str] = frozenset(),
    ) -> int:
        """Publish in order and mark what the broker acknowledged; how many entries were dealt with.

        Skipped: what another path of this process is publishing (``owned`` are this call's own
        claims). An entry that is not ``fresh`` may have been sent before its publisher died
        between the broker's acknowledgement and the mark: when the consumer can check the
        topics (:attr:`already_published`), what is found there is only marked, not sent again.
        An entry the broker refuses for good (too large) would otherwise block every later event
        of its key, since those go out behind it: it is set aside in the ledger, with the error,
        and logged. Any other failure reaches the caller once what was acknowledged is marked;
        what failed is remembered, so that it goes out before the next event of its key.
        """
        messages = [m for m in messages if m.message_id in owned or m.message_id not in self._claimed]
        claimed = {message.message_id for message in messages} - set(owned)
        self._claimed.update(claimed)
        try:
            messages = await self._not_yet_on_the_broker(messages, fresh)
            handed: list[tuple[OutgoingMessage, Awaitable[object]]] = []
            failure = await self._hand_over(messages, handed)
            await self._settle(messages, handed, failure)
        finally:
            self._claimed.difference_update(claimed)
        return len(claimed) + len(owned)

    async def _not_yet_on_the_broker(
        self, messages: Sequence[OutgoingMessage], fresh: Set[str]
    ) -> list[OutgoingMessage]:
        uncertain = [message for message in messages if message.message_id not in fresh]
        if not uncertain or self.already_published is None:
            return list(messages)
        try:
            found = await self.already_published(uncertain)
        except Exception as error:  # noqa: BLE001 - cannot tell: send them, at least once
            log.warning(
                "outbox.check_failed", entries=len(uncertain), error=f"{type(error).__name__}: {error}"
            )
            return list(messages)
        if found:
            log.info("outbox.found_published", entries=len(found), checked=len(uncertain))
            await self.ledger.mark_published(sorted(found))
            self._failed_here.difference_update(found)
        return [message for message in messages if message.message_id not in found]

    async def _hand_over(
        self, messages: Sequence[OutgoingMessage], handed: list[tuple[OutgoingMessage, Awaitable[object]]]
    ) -> BaseException | None:
        """Hand ``messages`` to the producer one by one, so they leave in order; the first failure."""
        for message in messages:
            try:
                handed.append((message, await self._send(message)))
            except Exception as send_error:  # noqa: BLE001 - told apart in _settle, re-raised there
                if not self.refused_for_good(send_error):
                    return send_error
                await self._set_aside(message, send_error)
        return None

    async def _settle(
        self,
        messages: Sequence[OutgoingMessage],
        handed: Sequence[tuple[OutgoingMessage, Awaitable[object]]],
        failure: BaseException | None,
    ) -> None:
        results = await asyncio.gather(*(ack for _, ack in handed), return_exceptions=True)
        published: list[OutgoingMessage] = []
        for (message, _), result in zip(handed, results, strict=True):
            if not isinstance(result, BaseException):
                published.append(message)
            elif self.refused_for_good(result):
                await self._set_aside(message, result)
            elif failure is None:
                failure = result
        for message in published:
            self.observer.event_published(message)
        if published:
            await self.ledger.mark_published([message.message_id for message in published])
            self._failed_here.difference_update(message.message_id for message in published)
        if failure is not None:
            done = {message.message_id for message in published}
            self._failed_here.update(
                message.message_id for message in messages if message.message_id not in done
            )
            raise failure

    async def _set_aside(self, message: OutgoingMessage, error: BaseException) -> None:
        log.error(
            "outbox.refused_by_broker", message_id=message.message_id, topic=message.topic, error=str(error)
        )
        await self.ledger.set_aside(message.message_id, reason=f"{type(error).__name__}: {error}")

    async def flush_outbox(
        self, *, source_keys: Sequence[str] | None = None, older_than: timedelta | None = None
    ) -> int:
        """Publish what is still in the outbox (for some messages, or everything old enough).

        Each event goes out behind any earlier unpublished event of its key. Returns how many
        entries were found to publish.
        """
        pending = await self.ledger.unpublished(source_keys=source_keys, older_than=older_than)
        if source_keys is not None:
            await self._publish_committed(pending, fresh=False)
        else:  # every entry old enough, in commit order: the earlier ones of each key are among them
            await self._publish_in_order(pending)
        return len(pending)

    async def sweep_once(self, lease: Lease | None = None) -> int:
        """Publish the entries older than the grace period, if this replica holds the sweeper lease.

        The grace period leaves an entry to the replica that committed it and is publishing it
        right now; the lease keeps several replicas from sending the same leftovers at once.
        Both make a repeat rare; neither can rule it out (a replica that dies between the
        broker's acknowledgement and the mark leaves an entry that goes out again), which the
        event ids downstream absorb. Returns how many entries were published.
        """
        published = 0
        while lease is None or await lease.hold():  # renewed for every chunk of a long backlog
            chunk = await self.ledger.unpublished(older_than=self.policy.outbox_grace, limit=SWEEP_CHUNK)
            dealt_with = await self._publish_in_order(chunk)
            published += dealt_with
            if len(chunk) < SWEEP_CHUNK or dealt_with == 0:  # the rest is being published here already
                break
        return published

    async def sweep_outbox(
        self,
        interval_seconds: float,
        *,
        lease: Lease | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Forever: publish outbox entries a crash left behind. Run as a background task.

        The first pass runs at once: it is the start-up flush of what a previous run of the
        service committed but did not get out, with the same grace period and lease as every
        later pass. A failing pass is logged (and reported to ``on_failure``) and never stops
        the service: the next pass tries again.
        """
        while True:
            try:
                published = await self.sweep_once(lease)
                if published:
                    log.info("outbox.swept", published=published)
            except Exception as error:  # noqa: BLE001 - the sweeper must outlive a bad moment
                log.warning("outbox.sweep_failed", error=str(error))
                if on_failure is not None:
                    on_failure(error)
            await asyncio.sleep(interval_seconds)

    async def _publish(self, message: OutgoingMessage) -> None:
        await (await self._send(message))
        self.observer.event_published(message)

    async def _send(self, message: OutgoingMessage) -> Awaitable[object]:
        return await self.publish(
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
        acknowledgement = await self.publish(
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
        await acknowledgement
        self.observer.dead_lettered(origin.topic, reason)
        self.observer.message_handled(origin.topic, DEAD_LETTERED)


def describe_validation_error(error: ValidationError) -> str:
    """A short, readable list of what is wrong with a message, field by field."""
    parts = []
    for issue in error.errors(include_url=False, include_input=False)[:10]:
        where = ".".join(str(step) for step in issue["loc"]) or "message"
        parts.append(f"{where}: {issue['msg']}")
    return "; ".join(parts)
