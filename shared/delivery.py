"""Delivery guarantees every service relies on: idempotent consumption, an outbox, dead letters.

How inbound messages are handled (:meth:`ReliableConsumer.consume_batch`):

1. Every record is first *screened*, by pure code that cannot raise: too large, not JSON (deep
   nesting and over-long numbers included), not an object, nested too deep, text that is not
   Unicode (an unpaired surrogate), not the expected model, or no idempotency key to be had: it
   goes to ``<topic>.dlq`` with the reason and the original topic, partition, offset and key in
   headers; where the sender can be identified a hook may tell them too. No poison message ever
   escapes this method: if one did, the batch subscriber would rewind *every* partition of the
   batch and stop the whole subscription, not only the poisoned partition.
2. Otherwise, in ONE database transaction of the service's own database: skip it if its
   idempotency key is already recorded; else apply it to the view, queue the events it causes in
   the outbox, and record the key. A batch of messages shares one transaction (falling back to one
   message per transaction if the batch fails), because database round trips are what limit
   throughput. A crash anywhere before the commit leaves no trace, and the
   broker redelivers (offsets are committed only after the handler returns). An event too large
   for the broker never enters the outbox: its message fails for good instead.
3. After the commit, the events of that message still in the outbox are published and taken out
   of it (the outbox holds only what has not gone out; :class:`shared.mongo.MongoLedger`),
   after any event of the same keys an earlier transaction left unpublished: a request's events
   leave in the order they were committed. A crash between the commit and the publish loses
   nothing: the redelivered message finds its key recorded and publishes what is still pending,
   and :meth:`ReliableConsumer.sweep_outbox` publishes leftovers on a timer as well (one replica at
   a time, holding a lease, and only entries older than a grace period, so that it does not race
   the replica that is publishing them). Consumers downstream drop repeats by event id, so the
   at-least-once publishing is harmless. An entry the broker refuses for good (too large, a key
   that is not text) is set aside with the reason instead of blocking the entries behind it.
4. A handler that keeps failing is retried a bounded number of times with exponential backoff,
   then dead-lettered, and the consumer moves on to the next message. When the failure is the
   database being unreachable (a network error, a time-out, a write-concern error, an unknown
   commit result, or the database not answering a ping), the message is not at fault: it is not
   dead-lettered but left uncommitted, so it comes back once the database does. A message
   dead-lettered before such an outage is remembered, so the batch coming back does not
   dead-letter it again.

The ledger (processed keys + outbox) is a protocol so unit tests can run the same machinery on a
hand-written in-memory fake; production uses :class:`shared.mongo.MongoLedger`. What happened to
each message (processed, repeated, dead-lettered, retried) is reported to a
:class:`DeliveryObserver`; production's is :class:`shared.metrics.ServiceMetrics`.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence, Set
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import structlog
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import BaseModel, ValidationError

from shared.logging import bound_request
from shared.topics import dead_letter_topic

log = structlog.get_logger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

# Room for the headers FastStream adds to every record (content type, correlation id) on top of
# ours, when a record's size is checked against the producer's limit.
_FRAMEWORK_HEADER_ALLOWANCE = 512
# A dead letter's value is cut to this much below the record limit when the original is too large
# to be sent whole (headers and key need their room).
_DEAD_LETTER_ROOM = 16 * 1024
_DETAIL_LIMIT = 2_000


@dataclass(frozen=True)
class OutboxBatch:
    """The outbox document of one transaction's events, as its holder last saw it.

    ``events`` is how many of its events it still held then: events only ever leave a batch, so
    whoever has published that many of them has published them all, and deletes it.
    """

    batch_id: Any
    events: int


@dataclass(frozen=True)
class OutgoingMessage:
    """An event waiting in the outbox: where it goes and its bytes, with a stable id."""

    message_id: str
    topic: str
    key: str
    value: bytes
    committed_at: datetime | None = field(default=None, compare=False)
    """When its transaction committed, as read back from the outbox (None: not read back)."""
    batch: OutboxBatch | None = field(default=None, compare=False)
    """The outbox document that holds it, once committed (None: not in an outbox, or a fake's)."""

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


@dataclass(frozen=True)
class _Refused:
    """A record screening turned away: why, and what could be read of it (for the sender's hook)."""

    inbound: Inbound
    reason: str
    detail: str
    payload: dict[str, Any] | None = None


class PermanentFailure(Exception):
    """A message that can never succeed, however often retried: straight to the DLQ.

    ``tell_sender``: the message broke one of our limits, so the sender (where the service's
    invalid-message hook can identify one) is told, as for a message that does not validate.
    """

    def __init__(self, reason: str, detail: str, *, tell_sender: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.tell_sender = tell_sender


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

        For writes collected over a whole batch and made in one statement.
        """

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction has committed; never if it did not.

        For what a store keeps in memory about its own writes (audit's chain heads): it must not
        run ahead of what the database holds.
        """

    def after_rollback(self, action: Callable[[], None]) -> None:
        """Run ``action`` if the transaction is not known to have committed: it failed before or
        at its commit, or its commit's result is unknown (it may have committed or not).

        For what a store keeps in memory about the database: it must be read afresh then.
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

    async def mark_published(self, messages: Sequence[OutgoingMessage]) -> None:
        """Take ``messages`` (from :meth:`unpublished` or a commit) out of the outbox: they went out."""

    async def set_aside(self, message: OutgoingMessage, *, reason: str) -> None:
        """Take an entry the broker will never accept out of the outbox, keeping it and why."""

    def is_unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` means the database cannot be reached (not that the message is bad)."""

    async def answers(self) -> bool:
        """Whether the database answers a ping now (asked when a message failed for good)."""


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
    """How hard to try before a message is dead-lettered, and the limits of what is taken in and sent.

    ``max_record_bytes`` must not exceed the producer's ``max_request_size`` (aiokafka's default,
    1 MiB, which is also Apache Kafka's default ``message.max.bytes``): no record larger than it
    is ever handed to the producer.
    """

    max_attempts: int = 4
    retry_backoff_seconds: float = 0.2
    max_message_bytes: int = 512 * 1024
    max_record_bytes: int = 1024 * 1024
    max_nesting_depth: int = 64
    outbox_grace: timedelta = timedelta(seconds=5)
    remembered_dead_letters: int = 100_000


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

SCREENING_REASONS = frozenset(
    {
        "message_too_large",
        "malformed_json",
        "not_an_object",
        "too_deeply_nested",
        "invalid_encoding",
        "invalid_message",
    }
)
"""Dead-letter reasons of a record that could not be read as the topic's model at all."""


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

ApplyT = TypeVar("ApplyT", bound=Callable[..., Awaitable[None]])
_IDEMPOTENT_BY_ITSELF = "idempotent_by_itself"


def idempotent_by_itself(apply: ApplyT) -> ApplyT:
    """Mark an apply whose effect holds a message's identity already, so that applying the message
    again changes nothing: no processed-key record is read or written for its messages.

    Only for applies that truly are (each entry kept under the message's own key, a view that
    keeps the newest by time, audit's entries under the record's identity): a repeat is then
    applied again, to no effect, and counted as processed; what it emits goes out again under
    the same event ids, which consumers drop. Saves a read and a write of one document per
    message on every batch.
    """
    setattr(apply, _IDEMPOTENT_BY_ITSELF, True)
    return apply


def _records_keys(apply: Callable[..., Any]) -> bool:
    return not getattr(apply, _IDEMPOTENT_BY_ITSELF, False)


InvalidHook = Callable[[dict[str, Any], str, MessageOrigin], Awaitable[Sequence[OutgoingMessage]]]
"""Called with what could be read of a refused message and why (a sentence naming the problem or
the limit); returns what to tell its sender (a rejection status), or nothing. It may read the
service's database: a message may only reject what it would have created."""
Prepare = Callable[[ModelT], Awaitable[None]]
"""Work on an accepted message before its transaction opens (CPU-heavy parsing, off the loop)."""
Prefetch = Callable[[Sequence[ModelT], "LedgerTransaction"], Awaitable[None]]
"""Called once per transaction, inside it and before any message is applied, with the messages it
is about to apply: a store reads what they all need at once (one ``$in`` per collection instead
of reads per message) and may stage its writes until the commit
(:class:`shared.mongo.BatchDocuments`). Only a hint: an apply must read correctly without it."""


@dataclass(frozen=True)
class _Handing:
    """Events handed to the producer in order: their acknowledgements still to await."""

    messages: list[OutgoingMessage]
    handed: list[tuple[OutgoingMessage, Awaitable[object]]]
    failure: BaseException | None  # the first that could not be handed over (the rest were not)
    claimed: set[str]  # claims taken for them (besides the caller's own)


@dataclass
class ReliableConsumer:
    """The idempotent, dead-lettering, outbox-publishing consumer of one service."""

    service: str
    ledger: Ledger
    publish: Publisher
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    observer: DeliveryObserver = field(default_factory=NoObserver)
    refused_for_good: Callable[[BaseException], bool] = field(
        default_factory=lambda: refused_for_good_by_broker  # defined below, with its peers
    )
    """Whether a publish error means the broker will never take that record (too large, a key that
    is not text)."""
    already_published: Callable[[Sequence[OutgoingMessage]], Awaitable[set[str]]] | None = None
    """Which of these outbox entries are on their topics already (left by a publisher that died
    between the broker's acknowledgement and the mark); None: no way to tell, send them again."""
    # Records dead-lettered lately (topic, partition, offset, timestamp, checksum): a batch that
    # comes back after an outage must not dead-letter them again.
    _dead_lettered: OrderedDict[tuple[str, int, int, int | None, int], None] = field(
        default_factory=OrderedDict, init=False, repr=False
    )
    # Outbox entries a path of this process is publishing (from its commit, or from reading them
    # back, to the mark), and those whose publish failed here (they go before the next event of
    # their key, however young).
    _claimed: set[str] = field(default_factory=set, init=False, repr=False)
    _failed_here: set[str] = field(default_factory=set, init=False, repr=False)
    # A batch's events handed to the producer whose acknowledgements (and mark) are still awaited
    # while the consumer goes on with its next batch; each task gives back what did not get out,
    # which waits (unsettled) to be sent again before anything newer.
    _settling: set[asyncio.Task[list[OutgoingMessage]]] = field(default_factory=set, init=False, repr=False)
    _unsettled: dict[str, OutgoingMessage] = field(default_factory=dict, init=False, repr=False)

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
        prepare: Prepare[ModelT] | None = None,
        prefetch: Prefetch[ModelT] | None = None,
    ) -> None:
        """Handle a batch of inbound messages, in order, in as few transactions as possible.

        ``decode`` replaces JSON parsing for a consumer that takes any bytes (audit keeps even
        what is not JSON); what it returns must still validate as ``model``. ``prepare`` runs on
        each accepted message before any transaction opens (see :data:`Prepare`).

        The whole batch is applied in one transaction (the database round trips are what limit
        throughput). If that transaction fails, the batch is handled again one message at a time,
        each with its own retries and dead letter, so one bad message never holds up the others.
        Only an outage (:class:`DatabaseUnavailable`, or the broker refusing to take records)
        leaves this method with an error: then the whole batch comes back.
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
                prepare=prepare,
                prefetch=prefetch,
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
        prepare: Prepare[ModelT] | None,
        prefetch: Prefetch[ModelT] | None = None,
    ) -> None:
        pending: list[_Accepted[ModelT]] = []
        for inbound in batch:
            if self._was_dead_lettered(inbound):
                continue
            screened = self._screen(inbound, model, idempotency_key, log_ids, decode)
            if isinstance(screened, _Accepted):
                pending.append(screened)
                continue
            if pending and on_invalid is not None and screened.payload is not None:
                # The hook asks whether a request exists for this sender: what the messages before
                # this one created must be committed (and told) first.
                await self._apply_accepted(pending, apply, on_invalid, prepare, prefetch)
                pending = []
            await self._refuse(screened, on_invalid)
        if pending:
            await self._apply_accepted(pending, apply, on_invalid, prepare, prefetch)

    def _screen(
        self,
        inbound: Inbound,
        model: type[ModelT],
        idempotency_key: Callable[[ModelT, MessageOrigin], str],
        log_ids: Callable[[ModelT], tuple[str | None, str | None]],
        decode: Callable[[bytes], dict[str, Any]] | None,
    ) -> _Accepted[ModelT] | _Refused:
        """Read one record as ``model`` with its key, or say why not. Never raises."""
        value, limit = inbound.value, self.policy.max_message_bytes
        if len(value) > limit:
            return _Refused(
                inbound,
                "message_too_large",
                f"the message is {len(value)} bytes, above the limit of {limit} bytes (max_message_bytes)",
                payload=self._peek(value, decode),
            )
        payload: Any
        try:
            payload = decode(value) if decode is not None else json.loads(value)
        except RecursionError:
            return _Refused(inbound, "too_deeply_nested", "the JSON is nested too deeply to be read")
        except UnicodeError as error:
            return _Refused(inbound, "malformed_json", f"not UTF-8 text: {error}")
        except Exception as error:  # noqa: BLE001 - whatever the reader raises, the record is at fault
            return _Refused(inbound, "malformed_json", _describe(error))
        if not isinstance(payload, dict):
            return _Refused(inbound, "not_an_object", "the value must be a JSON object")
        problem = structure_problem(payload, max_depth=self.policy.max_nesting_depth)
        if problem is not None:
            reason, detail = problem
            return _Refused(inbound, reason, detail, payload=payload)
        try:
            message = model.model_validate(payload)
        except ValidationError as error:
            return _Refused(inbound, "invalid_message", describe_validation_error(error), payload=payload)
        except Exception as error:  # noqa: BLE001 - a validator that breaks is the record's fault too
            return _Refused(inbound, "invalid_message", _describe(error), payload=payload)
        try:
            key = idempotency_key(message, inbound.origin)
            key.encode()
            ids = log_ids(message)
        except Exception as error:  # noqa: BLE001 - no key, no idempotence: refuse the record
            return _Refused(
                inbound, "invalid_message", f"no idempotency key: {_describe(error)}", payload=payload
            )
        return _Accepted(message, key, inbound, ids)

    def _peek(self, value: bytes, decode: Callable[[bytes], dict[str, Any]] | None) -> dict[str, Any] | None:
        """What an oversized record says, if it is an object of readable size (to tell its sender)."""
        if decode is not None or len(value) > 4 * self.policy.max_message_bytes:
            return None
        try:
            payload = json.loads(value)
        except Exception:  # noqa: BLE001 - unreadable: nobody to tell, the dead letter remains
            return None
        if not isinstance(payload, dict) or structure_problem(
            payload, max_depth=self.policy.max_nesting_depth
        ):
            return None
        return payload

    async def _refuse(self, refused: _Refused, on_invalid: InvalidHook | None) -> None:
        if on_invalid is not None and refused.payload is not None:
            await self._tell_sender(refused.payload, refused.detail, refused.inbound.origin, on_invalid)
        await self.dead_letter(
            refused.inbound.value, refused.inbound.origin, reason=refused.reason, detail=refused.detail
        )

    async def _tell_sender(
        self, payload: dict[str, Any], problems: str, origin: MessageOrigin, on_invalid: InvalidHook
    ) -> None:
        try:
            messages = await on_invalid(payload, problems, origin)
        except Exception as error:
            if self.ledger.is_unavailable(error) or not await self.ledger.answers():
                raise DatabaseUnavailable(str(error)) from error
            log.warning(
                "invalid_hook.failed", topic=origin.topic, offset=origin.offset, error=_describe(error)
            )
            return
        for message in messages:
            problem = self.unpublishable(message)
            if problem is not None:
                log.warning("invalid_hook.unpublishable", message_id=message.message_id, problem=problem[1])
                continue
            await self._publish(message)

    async def _apply_accepted(
        self,
        accepted: Sequence[_Accepted[ModelT]],
        apply: Apply[ModelT],
        on_invalid: InvalidHook | None,
        prepare: Prepare[ModelT] | None,
        prefetch: Prefetch[ModelT] | None = None,
    ) -> None:
        if prepare is not None:
            for one in accepted:
                try:
                    await prepare(one.message)
                except Exception as error:  # noqa: BLE001 - apply does the work again and fails properly
                    log.warning("message.prepare_failed", key=one.key, error=_describe(error))
        committed: list[OutgoingMessage] = []
        repeated: list[str] = []
        if len(accepted) > 1:
            try:
                await self._apply(accepted, apply, committed, repeated, prefetch)
            except Exception as error:  # noqa: BLE001 - the fallback below retries each one
                log.warning("batch.failed_falling_back", size=len(accepted), error=_describe(error))
                committed.clear()
                repeated.clear()
                for one in accepted:
                    await self._apply_one_with_retries(one, apply, committed, repeated, on_invalid, prefetch)
        else:
            await self._apply_one_with_retries(accepted[0], apply, committed, repeated, on_invalid, prefetch)
        # Publishing happens after the commit and outside the retries: if the broker is gone, the
        # error reaches the subscriber, the offset is not committed and the batch comes back,
        # finding its keys recorded and its events still in the outbox. The wait for the broker's
        # acknowledgements goes on beside the next batch: one that fails makes the next batch send
        # those events again first, and reaches its subscriber if that fails too.
        await self._publish_committed(committed, settle_later=True)
        if repeated:
            log.info("message.already_processed", keys=repeated)
            await self.flush_outbox(source_keys=repeated)

    async def _apply(
        self,
        accepted: Sequence[_Accepted[ModelT]],
        apply: Apply[ModelT],
        committed: list[OutgoingMessage],
        repeated: list[str],
        prefetch: Prefetch[ModelT] | None = None,
    ) -> None:
        """Apply messages in one transaction; on commit, add what they emitted to ``committed``."""
        records_keys = _records_keys(apply)
        async with self.ledger.transaction() as transaction:
            done = await transaction.processed_among([one.key for one in accepted]) if records_keys else set()
            if prefetch is not None:
                await prefetch([one.message for one in accepted if one.key not in done], transaction)
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
                    before = len(transaction.emitted)
                    await apply(one.message, transaction, one.inbound.origin)
                    self._refuse_unpublishable(transaction.emitted[before:])
                    if records_keys:
                        transaction.mark_processed(one.key)
                outcomes.append((one.inbound.origin.topic, PROCESSED))
        committed.extend(transaction.emitted)
        repeated.extend(already)
        for topic, outcome in outcomes:
            self.observer.message_handled(topic, outcome)

    def _refuse_unpublishable(self, emitted: Sequence[OutgoingMessage]) -> None:
        """An event the broker would refuse must never reach the outbox: its message fails for good."""
        for message in emitted:
            problem = self.unpublishable(message)
            if problem is not None:
                reason, detail = problem
                raise PermanentFailure(reason, detail, tell_sender=True)

    async def _apply_one_with_retries(  # noqa: PLR0917 - private, called from two places
        self,
        one: _Accepted[ModelT],
        apply: Apply[ModelT],
        committed: list[OutgoingMessage],
        repeated: list[str],
        on_invalid: InvalidHook | None = None,
        prefetch: Prefetch[ModelT] | None = None,
    ) -> None:
        origin = one.inbound.origin
        for attempt in range(1, self.policy.max_attempts + 1):
            try:
                await self._apply([one], apply, committed, repeated, prefetch)
                return
            except PermanentFailure as failure:
                if failure.tell_sender and on_invalid is not None:
                    payload = self._peek(one.inbound.value, None)
                    if payload is not None:
                        await self._tell_sender(payload, failure.detail, origin, on_invalid)
                await self.dead_letter(
                    one.inbound.value, origin, reason=failure.reason, detail=failure.detail
                )
                return
            except Exception as error:
                if attempt == self.policy.max_attempts:
                    if self.ledger.is_unavailable(error) or not await self.ledger.answers():
                        log.error(
                            "database.unavailable", key=one.key, attempts=attempt, error=_describe(error)
                        )
                        self.observer.message_handled(origin.topic, FAILED)
                        raise DatabaseUnavailable(str(error)) from error
                    log.error("message.failed", key=one.key, attempts=attempt, exc_info=error)
                    await self.dead_letter(
                        one.inbound.value, origin, reason="handler_failed", detail=_describe(error)
                    )
                    return
                delay = self.policy.retry_backoff_seconds * 2 ** (attempt - 1)
                self.observer.message_retried(origin.topic)
                log.warning(
                    "message.retrying", key=one.key, attempt=attempt, delay=delay, error=_describe(error)
                )
                await asyncio.sleep(delay)

    async def run_in_transaction(
        self, work: Callable[[LedgerTransaction], Awaitable[None]], *, source_key: str
    ) -> None:
        """Work that no inbound message started (a timer, a re-check) with the same guarantee.

        Its view writes and the events it emits commit together; the events are published after
        the commit. If publishing fails, the outbox sweeper publishes them later. Errors reach
        the caller: a periodic job simply tries again next time. An event too large for the
        broker raises :class:`PermanentFailure` before anything is committed.
        """
        async with self.ledger.transaction() as transaction:
            transaction.begin(source_key)
            await work(transaction)
            self._refuse_unpublishable(transaction.emitted)
        await self._publish_committed(transaction.emitted)

    def unpublishable(self, message: OutgoingMessage) -> tuple[str, str] | None:
        """Why the producer or the broker would refuse ``message`` for good, or ``None``."""
        try:
            key = message.key.encode()
        except UnicodeError as error:
            return "unpublishable_key", f"the key of event {message.message_id} is not text: {error}"
        size = record_size(message.value, key, _event_headers(message))
        if size > self.policy.max_record_bytes:
            return (
                "event_too_large",
                f"the {message.topic} event it causes would be {size} bytes, above the limit of "
                f"{self.policy.max_record_bytes} bytes (max_record_bytes)",
            )
        return None

    async def _publish_committed(
        self, messages: Sequence[OutgoingMessage], *, fresh: bool = True, settle_later: bool = False
    ) -> None:
        """Publish what a transaction committed, behind what the outbox left behind for its keys.

        A request's events must leave in the order they were committed (the contract: statuses
        in the order they happened). An event of the same key that an earlier transaction left
        unpublished (a crash or a failed publish between its commit and its publish) goes first;
        waiting for the sweeper would let this newer one overtake it. One indexed read per
        publishing batch. Not sent again: what someone has published meanwhile (it left the outbox), what
        this process is publishing already, and what another replica committed within the grace
        period (it is publishing it now; past the grace period it counts as left behind).

        ``fresh``: ``messages`` were committed by this process just now and never handed to the
        producer; otherwise (entries read back for a redelivered message) they may have gone out
        before a crash, and are checked first (see :meth:`_publish_in_order`).

        ``settle_later`` (a consumed batch's events): once the producer has them, in order, the
        wait for the broker's acknowledgements and the mark go on while the consumer takes its next
        batch. Whatever comes next is published only after they are settled (see
        :meth:`settle_published`), so events still leave in commit order, and what failed goes out
        first.
        """
        await self.settle_published()
        if not messages:
            return
        ours = {message.message_id for message in messages}
        owned = {message_id for message_id in ours if message_id not in self._claimed} if fresh else set()
        self._claimed.update(owned)  # from the commit on: no other path of this process sends them
        claims = set(owned)
        try:
            keys = sorted({message.key for message in messages})
            pending = await self.ledger.unpublished(keys=keys, limit=None)
            handing = await self._hand_over_in_order(
                [entry for entry in pending if self._ours_to_send(entry, ours)], fresh=owned, owned=owned
            )
        except BaseException:
            self._claimed.difference_update(claims)
            raise
        claims |= handing.claimed
        if settle_later and handing.failure is None:
            task = asyncio.create_task(self._settle_in_background(handing, claims))
            self._settling.add(task)
            return
        await self._settle_and_release(handing, claims)

    async def settle_published(self) -> None:
        """Wait until the events handed to the producer earlier are acknowledged and marked; send
        again at once what failed (before anything newer, as a redelivered batch would), raising
        if that fails too (then the next call tries them again)."""
        while self._settling:  # two subscribers of one service may wait on the same batch
            tasks = list(self._settling)
            results = await asyncio.gather(*tasks)
            self._settling.difference_update(tasks)
            self._unsettled.update((message.message_id, message) for left in results for message in left)
        if self._unsettled:
            unsettled, self._unsettled = self._unsettled, {}
            try:
                await self._publish_committed(list(unsettled.values()), fresh=False)
            except BaseException:
                self._unsettled = unsettled | self._unsettled
                raise

    async def _settle_in_background(self, handing: _Handing, claims: set[str]) -> list[OutgoingMessage]:
        """Settle a batch's events; what did not get out (its publish failed) is given back."""
        try:
            await self._settle_and_release(handing, claims)
        except Exception as error:  # noqa: BLE001 - given back to settle_published, which sends it again
            log.warning("outbox.publish_failed", entries=len(handing.messages), error=_describe(error))
            return [message for message in handing.messages if message.message_id in self._failed_here]
        return []

    async def _settle_and_release(self, handing: _Handing, claims: Set[str]) -> None:
        """Await the acknowledgements of what was handed over, mark it, then give up the claims."""
        try:
            await self._settle(handing.messages, handing.handed, handing.failure)
        finally:
            self._claimed.difference_update(claims)

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
        """Publish in order and take what the broker acknowledged out of the outbox (the "mark");
        how many entries were dealt with.

        Skipped: what another path of this process is publishing (``owned`` are this call's own
        claims). An entry that is not ``fresh`` may have been sent before its publisher died
        between the broker's acknowledgement and the mark: when the consumer can check the
        topics (:attr:`already_published`), what is found there is only marked, not sent again.
        An entry the broker refuses for good (too large) would otherwise block every later event
        of its key, since those go out behind it: it is set aside in the ledger, with the error,
        and logged. Any other failure reaches the caller once what was acknowledged is marked;
        what failed is remembered, so that it goes out before the next event of its key.
        """
        handing = await self._hand_over_in_order(messages, fresh=fresh, owned=owned)
        await self._settle_and_release(handing, handing.claimed)
        return len(handing.claimed) + len(owned)

    async def _hand_over_in_order(
        self, messages: Sequence[OutgoingMessage], *, fresh: Set[str], owned: Set[str]
    ) -> _Handing:
        """Claim ``messages`` (but those another path of this process is publishing) and hand them
        to the producer in order; the claims are the caller's to release once they are settled."""
        messages = [m for m in messages if m.message_id in owned or m.message_id not in self._claimed]
        claimed = {message.message_id for message in messages} - set(owned)
        self._claimed.update(claimed)
        try:
            messages = await self._not_yet_on_the_broker(messages, fresh)
            handed: list[tuple[OutgoingMessage, Awaitable[object]]] = []
            failure = await self._hand_over(messages, handed)
        except BaseException:
            self._claimed.difference_update(claimed)
            raise
        return _Handing(messages, handed, failure, claimed)

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
            await self.ledger.mark_published(
                [message for message in uncertain if message.message_id in found]
            )
            self._failed_here.difference_update(found)
        return [message for message in messages if message.message_id not in found]

    async def _hand_over(
        self, messages: Sequence[OutgoingMessage], handed: list[tuple[OutgoingMessage, Awaitable[object]]]
    ) -> BaseException | None:
        """Hand ``messages`` to the producer one by one, so they leave in order; the first failure."""
        for message in messages:
            problem = self.unpublishable(message)
            if problem is not None:
                await self._set_aside(message, problem[1])
                continue
            try:
                handed.append((message, await self._send(message)))
            except Exception as send_error:  # noqa: BLE001 - told apart in _settle, re-raised there
                if not self.refused_for_good(send_error):
                    return send_error
                await self._set_aside(message, _describe(send_error))
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
                await self._set_aside(message, _describe(result))
            elif failure is None:
                failure = result
        for message in published:
            self.observer.event_published(message)
        if published:
            await self.ledger.mark_published(published)
            self._failed_here.difference_update(message.message_id for message in published)
        if failure is not None:
            done = {message.message_id for message in published}
            self._failed_here.update(
                message.message_id for message in messages if message.message_id not in done
            )
            raise failure

    async def _set_aside(self, message: OutgoingMessage, reason: str) -> None:
        log.error(
            "outbox.refused_by_broker",
            message_id=message.message_id,
            topic=message.topic,
            size=len(message.value),
            reason=reason,
        )
        await self.ledger.set_aside(message, reason=reason)

    async def flush_outbox(
        self, *, source_keys: Sequence[str] | None = None, older_than: timedelta | None = None
    ) -> int:
        """Publish what is still in the outbox (for some messages, or everything old enough).

        Each event goes out behind any earlier unpublished event of its key. Returns how many
        entries were found to publish.
        """
        await self.settle_published()
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
                log.warning("outbox.sweep_failed", error=_describe(error))
                if on_failure is not None:
                    on_failure(error)
            await asyncio.sleep(interval_seconds)

    async def _publish(self, message: OutgoingMessage) -> None:
        await (await self._send(message))
        self.observer.event_published(message)

    async def _send(self, message: OutgoingMessage) -> Awaitable[object]:
        return await self.publish(
            message.value, topic=message.topic, key=message.key, headers=_event_headers(message)
        )

    async def dead_letter(self, value: bytes, origin: MessageOrigin, *, reason: str, detail: str) -> None:
        """Send the original bytes to ``<topic>.dlq`` with the error and where they came from.

        Every header is made valid text, and a value too large for a record is cut (saying so in
        ``x-value-truncated`` and ``x-original-bytes``): a dead letter always goes out.
        """
        detail = printable(detail)[:_DETAIL_LIMIT]
        key = printable(origin.key) if origin.key is not None else None
        log.warning(
            "message.dead_lettered",
            topic=origin.topic,
            key=origin.key,
            partition=origin.partition,
            offset=origin.offset,
            reason=reason,
            detail=detail[:500],
        )
        headers = {
            "x-error-reason": printable(reason),
            "x-error": detail,
            "x-original-topic": printable(origin.topic),
            "x-original-partition": str(origin.partition),
            "x-original-offset": str(origin.offset),
            "x-original-key": key or "",
            "x-failed-service": printable(self.service),
            "x-failed-at": datetime.now(UTC).isoformat(),
        }
        kept = value
        room = self.policy.max_record_bytes - _DEAD_LETTER_ROOM - len((key or "").encode())
        if len(value) > room:
            headers["x-value-truncated"] = "true"
            headers["x-original-bytes"] = str(len(value))
            kept = value[: max(room, 0)]
        acknowledgement = await self.publish(
            kept, topic=dead_letter_topic(origin.topic), key=key, headers=headers
        )
        await acknowledgement
        self._remember_dead_letter(origin, value)
        self.observer.dead_lettered(origin.topic, reason)
        self.observer.message_handled(origin.topic, DEAD_LETTERED)

    def _remember_dead_letter(self, origin: MessageOrigin, value: bytes) -> None:
        self._dead_lettered[_identity(origin, value)] = None
        while len(self._dead_lettered) > self.policy.remembered_dead_letters:
            self._dead_lettered.popitem(last=False)

    def _was_dead_lettered(self, inbound: Inbound) -> bool:
        return _identity(inbound.origin, inbound.value) in self._dead_lettered


def _identity(origin: MessageOrigin, value: bytes) -> tuple[str, int, int, int | None, int]:
    # Time stamp and checksum as well: a topic created anew reuses offsets for other records.
    checksum = zlib.crc32(value[: 64 * 1024])
    return origin.topic, origin.partition, origin.offset, origin.timestamp_ms, checksum


def _event_headers(message: OutgoingMessage) -> dict[str, str]:
    return {"content-type": "application/json", "x-event-id": message.message_id}


def record_size(value: bytes, key: bytes | None, headers: dict[str, str]) -> int:
    """The size the producer gives a record when it checks it against ``max_request_size``."""
    encoded = [(name, text.encode()) for name, text in headers.items()]
    estimate: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, encoded)
    return estimate + _FRAMEWORK_HEADER_ALLOWANCE


def refused_for_good_by_broker(error: BaseException) -> bool:
    """The producer or the broker refuses this very record, whenever it is sent again."""
    return isinstance(
        error, UnicodeError | MessageSizeTooLargeError | RecordListTooLargeError | RecordTooLargeError
    )


def structure_problem(payload: Any, *, max_depth: int) -> tuple[str, str] | None:
    """Why a decoded JSON value cannot be taken in whatever its model, or ``None``.

    Nested deeper than ``max_depth`` (``too_deeply_nested``), or a text (or field name) with an
    unpaired UTF-16 surrogate (``invalid_encoding``: JSON allows the escape ``\\ud800``, but it is
    not Unicode text, and neither the database nor the logs can store it).
    """
    stack: list[tuple[Any, int, tuple[str, ...]]] = [(payload, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth > max_depth:
                return "too_deeply_nested", f"nested more than {max_depth} levels deep (max_nesting_depth)"
            for name, child in node.items():
                if not _is_text(name):
                    return (
                        "invalid_encoding",
                        f"{_path(path) or 'the message'}: a field name is not Unicode text",
                    )
                stack.append((child, depth + 1, (*path, name)))
        elif isinstance(node, list):
            if depth > max_depth:
                return "too_deeply_nested", f"nested more than {max_depth} levels deep (max_nesting_depth)"
            stack.extend((child, depth + 1, (*path, str(index))) for index, child in enumerate(node))
        elif isinstance(node, str) and not _is_text(node):
            where = _path(path) or "the message"
            return "invalid_encoding", f"{where}: has an unpaired UTF-16 surrogate, which is not Unicode text"
    return None


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeError:
        return False
    return True


def _path(path: tuple[str, ...]) -> str:
    return printable(".".join(path))[:200]


def printable(text: str) -> str:
    """``text`` made valid Unicode: unpaired surrogates become ``\\udXXX`` escapes."""
    if _is_text(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode()


def _describe(error: BaseException) -> str:
    return printable(f"{type(error).__name__}: {error}")[:_DETAIL_LIMIT]


def describe_validation_error(error: ValidationError) -> str:
    """A short, readable list of what is wrong with a message, field by field."""
    parts = []
    for issue in error.errors(include_url=False, include_input=False)[:10]:
        where = ".".join(str(step) for step in issue["loc"]) or "message"
        parts.append(f"{where}: {issue['msg']}")
    return printable("; ".join(parts))
