"""What every service's composition root builds the same way: broker, database, delivery, health.

A service's ``app.py`` creates its settings, calls :func:`build_runtime`, subscribes its thin
handlers with ``runtime.subscribe(topic, model, apply, key=...)`` (internal events with
``runtime.subscribe_events``), runs its timers' per-request work with ``runtime.run_each``, and
hands ``runtime.asgi_app()`` to :func:`serve`. The ASGI app serves, on the service's health port,
``GET /health`` (readiness: subscribers joined, broker and database answer) for ``crs stack`` and
Kubernetes, ``GET /health/live`` (liveness: the process answers) and ``GET /metrics`` (Prometheus,
see :mod:`shared.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
import uvicorn
from aiokafka.errors import (
    KafkaError,
)
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import FAKE_CONSUMER
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.actions import WorkspaceActionMessage
from shared.consumer_progress import CatchUp, SubscriberProgress
from shared.delivery import (
    Apply,
    DeliveryPolicy,
    Inbound,
    InvalidHook,
    LedgerTransaction,
    MessageOrigin,
    PermanentFailure,
    Prefetch,
    Prepare,
    ReliableConsumer,
)
from shared.events import InternalEvent, RequestUpdateMessage
from shared.kafka import BrokerPublisher, build_broker, ensure_topics, kafka_client_options
from shared.lifecycle import TransitionRefused
from shared.logging import bound_request, configure_logging
from shared.metrics import METRICS_CONTENT_TYPE, PartitionLag, ServiceMetrics
from shared.mongo import Document, MongoLease, MongoLedger, build_mongo_client
from shared.published_check import PublishedCheck
from shared.settings import InfrastructureSettings, ServiceSettings
from shared.topics import (
    ALL_TOPICS,
    REPLAY_FOR,
    REPLAY_ORIGINAL_KEY,
    REPLAY_ORIGINAL_OFFSET,
    REPLAY_ORIGINAL_PARTITION,
    REPLAY_ORIGINAL_TOPIC,
    REQUEST_ACTIONS,
    REQUEST_PATH,
    REQUEST_UPDATED,
    replay_topic,
)

log = structlog.get_logger(__name__)

# A scrape must answer even when the broker or the database does not: past this, the gauges keep
# their last values and the failure is counted.
GAUGE_REFRESH_TIMEOUT_SECONDS = 5.0

# The sweeper lease outlives a few sweeps, so a holder that died is replaced within seconds.
SWEEPER_LEASE_MIN_SECONDS = 10.0
SWEEPER_LEASE_SWEEPS = 5

EventT = TypeVar("EventT", bound=InternalEvent)
ModelT = TypeVar("ModelT", bound=BaseModel)

Handler = Callable[[KafkaMessage], Awaitable[None]]
"""A thin handler: it receives a batch of Kafka records and hands it to the reliable consumer."""

IdempotencyKey = Callable[[ModelT, MessageOrigin], str]
"""The key a message is applied once under (a redelivery or a copy has the same key)."""
LogIds = Callable[[ModelT], tuple[str | None, str | None]]
"""The request id and correlation id a message's logs are bound to."""
Work = Callable[[str, LedgerTransaction], Awaitable[None]]
"""Work on one id (a request, a resolution) inside a transaction of its own."""


def _no_ids(_: object) -> tuple[str | None, str | None]:
    return None, None


def _request_id(one: str) -> tuple[str | None, str | None]:
    return one, None


def refusals_dead_lettered(apply: Apply[ModelT]) -> Apply[ModelT]:
    """``apply``, with a transition the request's state refuses turned into a dead letter.

    A refusal (:class:`shared.lifecycle.TransitionRefused`) can never succeed however often the
    message is tried again: it goes straight to ``<topic>.dlq`` with the refusal's reason.
    """

    @functools.wraps(apply)  # keeps what marks ``apply`` (``idempotent_by_itself``)
    async def applying(message: ModelT, transaction: LedgerTransaction, origin: MessageOrigin) -> None:
        try:
            await apply(message, transaction, origin)
        except TransitionRefused as refused:
            raise PermanentFailure(refused.reason, refused.detail) from refused

    return applying


async def run_each(
    consumer: ReliableConsumer,
    ids: Iterable[str],
    work: Work,
    *,
    source_key: Callable[[str], str],
    name: str,
    log_ids: Callable[[str], tuple[str | None, str | None]] = _request_id,
) -> None:
    """Do ``work`` for each of ``ids``, each in a transaction of its own, logs bound to it.

    For timers and re-checks, which no inbound message started: the view's writes and the events
    the work causes commit together (:meth:`ReliableConsumer.run_in_transaction`, the outbox
    entries under ``source_key(id)``). One id that fails is logged and does not keep the others
    from running; the timer's next run tries it again, so ``work`` must re-read its state (another
    replica may have done it meanwhile) and be safe to repeat.
    """
    for one in ids:
        request_id, correlation_id = log_ids(one)
        with bound_request(request_id=request_id, correlation_id=correlation_id):
            try:
                await consumer.run_in_transaction(functools.partial(work, one), source_key=source_key(one))
            except Exception as error:  # noqa: BLE001 - the next run tries again
                log.warning("each.failed", job=name, error=str(error))


def inbound_batch(message: KafkaMessage) -> list[Inbound]:
    """The records of a batch subscriber's message, each with where it came from."""
    records: Any = message.raw_message  # every subscriber here is a batch subscriber
    return [Inbound(record.value or b"", _origin_of_record(record)) for record in records]


async def tolerant_batch_parser(records: tuple[Any, ...], original: Callable[..., Awaitable[Any]]) -> Any:
    """FastStream's batch parser, handed records whose headers are text.

    FastStream decodes every header of a batch as strict UTF-8 before any handler runs: one record
    with a header that is not UTF-8 (or has no value) would fail the batch outside the handler and
    rewind every partition of it, for ever. Such a header is read with replacement characters.
    """
    return await original(tuple(_with_text_headers(record) for record in records))


def _with_text_headers(record: Any) -> Any:
    headers = list(record.headers or ())
    readable = [(name, _text_bytes(value)) for name, value in headers]
    return record if readable == headers else dataclasses.replace(record, headers=readable)


def _text_bytes(value: bytes | None) -> bytes:
    if value is None:
        return b""
    try:
        value.decode()
    except UnicodeDecodeError:
        return value.decode(errors="replace").encode()
    return value


async def undecoded_batch(message: KafkaMessage) -> Any:
    """No decoding by FastStream: the reliable consumer reads every record itself.

    FastStream's decoder parses each record as JSON and lets a RecursionError (deep nesting), a
    ValueError (a number of more than 4,300 digits) or a JSON error (with a JSON content type)
    escape before the handler runs; the handler only needs the raw records anyway.
    """
    return message.body


def _origin_of_record(record: Any) -> MessageOrigin:
    key = record.key
    return MessageOrigin(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key.decode(errors="replace") if isinstance(key, bytes) else key,
        timestamp_ms=record.timestamp,
    )


def new_replica_id() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is a new replica)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class ServiceRuntime:
    """The infrastructure of one service, built once in its composition root."""

    settings: ServiceSettings
    infrastructure: InfrastructureSettings
    broker: KafkaBroker
    mongo_client: AsyncMongoClient[Document]
    database: AsyncDatabase[Document]
    ledger: MongoLedger
    consumer: ReliableConsumer
    metrics: ServiceMetrics
    startup_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    periodic_jobs: list[tuple[str, float, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    ready: bool = False
    replica_id: str = field(default_factory=new_replica_id)
    # Every subscriber with its consumer group: where consumer lag and catching up are read from.
    _subscribers: list[SubscriberProgress] = field(default_factory=list)
    # The handler of each consumed topic, for replays addressed to this service.
    _handlers: dict[str, Handler] = field(default_factory=dict)
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _catch_up: CatchUp | None = None
    _sweeper_lease: MongoLease | None = None
    _replays_registered: bool = False

    @property
    def catch_up(self) -> CatchUp:
        """The gate timers wait at: open once every group has read what was waiting for it."""
        if self._catch_up is None:
            self._catch_up = CatchUp(self._subscribers, database_answers=self._database_answers)
        return self._catch_up

    @property
    def sweeper_lease(self) -> MongoLease:
        """One outbox sweeper per service, whichever replica holds this lease."""
        if self._sweeper_lease is None:
            ttl = max(SWEEPER_LEASE_MIN_SECONDS, SWEEPER_LEASE_SWEEPS * self.settings.outbox_sweep_seconds)
            self._sweeper_lease = MongoLease(
                self.database, "outbox-sweeper", holder=self.replica_id, ttl=timedelta(seconds=ttl)
            )
        return self._sweeper_lease

    def subscriber(self, *topics: str, name: str | None = None) -> Callable[[Handler], Handler]:
        """A subscriber that commits only after handling, in a consumer group of its own.

        Each subscriber gets its own group (``<service group>.<topic or name>``): several
        consumers with different subscriptions in one group make every join a rebalance of all
        of them, which on the local broker never settles.

        A subscriber of topics that only carry a request from one service to the next
        (:data:`shared.topics.REQUEST_PATH`) fetches with the shorter ``request_fetch_max_wait_ms``,
        every other one with ``fetch_max_wait_ms`` (see :class:`shared.settings.ServiceSettings`).

        ``NACK_ON_ERROR``: if the handler raises (the broker or the database could not be
        reached, through every retry), the offset is not committed and the batch comes back;
        every failure of a message itself is handled inside :class:`ReliableConsumer`.
        """
        group_id = f"{self.settings.consumer_group}.{name or '+'.join(topics)}"
        progress = SubscriberProgress(group=group_id, subscriber=None)
        registration = self.broker.subscriber(
            *topics,
            # Batches: one database transaction per batch instead of per message.
            batch=True,
            max_records=self.settings.max_batch_size,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=max(self.settings.session_timeout_ms // 5, 500),
            fetch_max_wait_ms=(
                self.settings.request_fetch_max_wait_ms
                if set(topics) <= REQUEST_PATH
                else self.settings.fetch_max_wait_ms
            ),
            max_partition_fetch_bytes=self.settings.max_partition_fetch_bytes,
            # Nothing a record holds may fail the batch before the handler: see both functions.
            parser=tolerant_batch_parser,
            decoder=undecoded_batch,
            listener=progress.listener(),
        )
        progress.subscriber = registration
        self._subscribers.append(progress)

        def register(handler: Handler) -> Handler:
            @functools.wraps(handler)
            async def handle(message: KafkaMessage) -> None:
                try:
                    await handler(message)
                except Exception as error:
                    # The batch comes back (not committed): the database or the broker is away.
                    self.catch_up.fell_behind(f"handler of {group_id} failed: {type(error).__name__}")
                    raise
                progress.handled(message.raw_message if isinstance(message.raw_message, tuple) else ())

            registration(handle)
            for topic in topics:
                self._handlers[topic] = handler
            return handler

        return register

    def subscribe(
        self,
        topics: str | Sequence[str],
        model: type[ModelT],
        apply: Apply[ModelT],
        *,
        key: IdempotencyKey[ModelT],
        log_ids: LogIds[ModelT] = _no_ids,
        on_invalid: InvalidHook | None = None,
        prepare: Prepare[ModelT] | None = None,
        decode: Callable[[bytes], dict[str, Any]] | None = None,
        name: str | None = None,
        prefetch: Prefetch[ModelT] | None = None,
    ) -> None:
        """Consume ``topics`` as ``model``: each message applied once, in a transaction, by ``apply``.

        The whole of a subscription: a batch subscriber of its own consumer group
        (:meth:`subscriber`) whose records go through the reliable consumer (screening, dead
        letters, idempotency by ``key``, the outbox; see :meth:`ReliableConsumer.consume_batch`
        for ``on_invalid``, ``prepare``, ``decode`` and ``prefetch``). A transition the request's
        state refuses is dead-lettered with its reason (:func:`refusals_dead_lettered`).
        """
        names = (topics,) if isinstance(topics, str) else tuple(topics)
        applying = refusals_dead_lettered(apply)

        async def on_records(message: KafkaMessage) -> None:
            await self.consumer.consume_batch(
                inbound_batch(message),
                model=model,
                idempotency_key=key,
                apply=applying,
                log_ids=log_ids,
                on_invalid=on_invalid,
                decode=decode,
                prepare=prepare,
                prefetch=prefetch,
            )

        on_records.__name__ = "on_" + (name or names[0]).replace(".", "_").replace("-", "_")
        self.subscriber(*names, name=name)(on_records)

    def subscribe_events(
        self,
        topic: str,
        model: type[EventT],
        apply: Apply[EventT],
        *,
        prefetch: Prefetch[EventT] | None = None,
    ) -> None:
        """Consume our own internal events of ``topic``: once per event id, logs bound to the request.

        Every event is read through upcasting (:func:`shared.events.upcast`, which the event models
        apply as they validate): a version older than the model's arrives as the current version.
        """
        self.subscribe(
            topic,
            model,
            apply,
            key=lambda event, _: f"event:{event.event_id}",
            log_ids=lambda event: (event.request_id, event.correlation_id),
            prefetch=prefetch,
        )

    def subscribe_updates(self, apply: Apply[RequestUpdateMessage]) -> None:
        """Consume ``requests.updated.v1`` (a changed CRM case or an email reply), once per event id."""
        self.subscribe(
            REQUEST_UPDATED,
            RequestUpdateMessage,
            apply,
            key=lambda update, _: f"event:{update.root.event_id}",
            log_ids=lambda update: (update.root.request_id, update.root.correlation_id),
        )

    def subscribe_actions(self, apply: Apply[WorkspaceActionMessage]) -> None:
        """Consume the workspace's actions (``requests.actions.v1``), once per action."""
        self.subscribe(
            REQUEST_ACTIONS,
            WorkspaceActionMessage,
            apply,
            key=lambda action, _: f"action:{action.root.event_id}",
            log_ids=lambda action: (action.root.request_id, action.root.correlation_id),
        )

    async def run_each(
        self,
        ids: Iterable[str],
        work: Work,
        *,
        source_key: Callable[[str], str],
        name: str,
        log_ids: Callable[[str], tuple[str | None, str | None]] = _request_id,
    ) -> None:
        """Do ``work`` for each of ``ids``, each in a transaction of its own (see :func:`run_each`)."""
        await run_each(self.consumer, ids, work, source_key=source_key, name=name, log_ids=log_ids)

    def every(self, seconds: float, job: Callable[[], Awaitable[None]], *, name: str) -> None:
        """Run ``job`` every ``seconds`` once the service has caught up, until it stops.

        Jobs are timers that decide from the service's view (SLA clocks, holds, ack time-outs), so
        they wait, after a start and after an outage, until every consumer group of the service
        has read what was waiting for it (:class:`shared.consumer_progress.CatchUp`): a timer must
        not breach an SLA whose ``resolved`` status is still unread. A failing run is logged and the
        next run tries again, so a job must be safe to repeat (timers here re-read their state
        from the database on every run).
        """
        self.periodic_jobs.append((name, seconds, job))

    def every_each(
        self,
        seconds: float,
        due: Callable[[], Awaitable[Iterable[str]]],
        work: Work,
        *,
        name: str,
        source_key: Callable[[str], str] | None = None,
    ) -> None:
        """A timer (:meth:`every`) that asks ``due`` which ids need work now, then does ``work`` on
        each in a transaction of its own (:meth:`run_each`).

        ``due`` is a hint read outside any transaction; ``work`` reads its state again. The outbox
        entries of each run are under ``source_key(id)``, by default ``<name>:<id>:<now>``.
        """
        keyed = source_key or (lambda one: f"{name}:{one}:{datetime.now(UTC).isoformat()}")

        async def job() -> None:
            await self.run_each(await due(), work, source_key=keyed, name=name)

        self.every(seconds, job, name=name)

    def _register_replays(self) -> None:
        """Consume ``replays.<service>.v1``: dead letters an operator sends back to this service alone.

        ``crs dlq replay`` publishes a dead letter that this service failed on there rather than on
        its original topic, which every consumer of that topic (the ERP included) would read
        again. Each record is handed to the handler of its original topic as if it came from its
        original topic, partition and offset, so idempotency keys and audit's place of record are
        those of the original.
        """
        if not self._handlers or self._replays_registered:
            return
        self._replays_registered = True
        topic = replay_topic(self.settings.service_name)

        async def on_replay(message: KafkaMessage) -> None:
            records: Any = message.raw_message
            for record in records:
                original = _original_record(record)
                handler = self._handlers.get(original.topic) if original is not None else None
                if original is None or handler is None:
                    log.warning(
                        "replay.skipped",
                        offset=record.offset,
                        reason="no original topic this service consumes",
                        original_topic=original.topic if original else None,
                    )
                    continue
                log.info(
                    "replay.received",
                    original_topic=original.topic,
                    original_partition=original.partition,
                    original_offset=original.offset,
                )
                await handler(
                    KafkaMessage(raw_message=(original,), body=[original.value], consumer=FAKE_CONSUMER)
                )

        on_replay.__name__ = "on_replay"
        self.subscriber(topic, name="replays")(on_replay)
        # Only the original topics have handlers; the replay topic's handler is not one of them.
        self._handlers.pop(topic, None)

    async def _on_startup(self) -> None:
        await ensure_topics(
            self.infrastructure.kafka_bootstrap_servers,
            ALL_TOPICS,
            partitions=self.infrastructure.topic_partitions,
            replication_factor=self.infrastructure.topic_replication_factor,
        )
        await self.ledger.ensure_indexes()
        for hook in self.startup_hooks:
            await hook()

    async def _after_startup(self) -> None:
        # The sweeper's first pass, at once, is the start-up flush of what a previous run committed
        # but did not get out: in the background (a failing flush must not keep the service from
        # starting), under the sweeper lease and with the grace period, like every later pass.
        self._background.append(
            asyncio.create_task(
                self.consumer.sweep_outbox(
                    self.settings.outbox_sweep_seconds,
                    lease=self.sweeper_lease,
                    on_failure=self._on_background_failure,
                )
            )
        )
        for name, seconds, job in self.periodic_jobs:
            self._background.append(asyncio.create_task(self._repeat(name, seconds, job)))
        # Only now has every subscriber joined its group: before this, /health says "not yet".
        self.ready = True
        log.info("service.started", consumer_group=self.settings.consumer_group)

    async def _on_shutdown(self) -> None:
        self.ready = False
        # The last batch's events may still wait for the broker's acknowledgement: marked now,
        # they are not sent again by the next start's sweeper (which would only find them there).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await self.consumer.settle_published()
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Another replica's sweeper takes over at once instead of when the lease expires.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.sweeper_lease.release()

    async def _repeat(self, name: str, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                if not await self.catch_up.ready():
                    continue
                await job()
            except Exception as error:  # noqa: BLE001 - a periodic job must outlive a bad moment
                log.warning("periodic_job.failed", job=name, error=str(error))
                self._on_background_failure(error)

    def _on_background_failure(self, error: BaseException) -> None:
        """A timer or the sweeper failed: if the database or the broker is away, timers wait again."""
        if self.ledger.is_unavailable(error) or isinstance(
            error, KafkaError | ConnectionError | TimeoutError
        ):
            self.catch_up.fell_behind(f"{type(error).__name__}: {error}")

    async def _database_answers(self) -> bool:
        try:
            async with asyncio.timeout(GAUGE_REFRESH_TIMEOUT_SECONDS):
                await self.mongo_client.admin.command("ping")
        except Exception:  # noqa: BLE001 - any failure means not answering
            return False
        return True

    async def _after_shutdown(self) -> None:
        await self.mongo_client.close()

    async def consumer_lags(self) -> list[PartitionLag]:
        """End offset minus committed offset of every partition assigned to our consumers.

        From what this replica already knows (see :mod:`shared.consumer_progress`): the high
        watermark of the consumer's latest fetch, and the offsets of the batches it handled. The
        broker is asked only for partitions not fetched yet or whose committed offset this replica
        has not learnt yet (once after each assignment), so a scrape costs no round trip per
        partition. It covers exactly the partitions this replica holds; other replicas report theirs.
        """
        lags: list[PartitionLag] = []
        for progress in self._subscribers:
            lags += await progress.lags()
        return lags

    async def refresh_gauges(self) -> None:
        """Read consumer lag and outbox size into the metrics; a failure keeps the old values."""
        try:
            async with asyncio.timeout(GAUGE_REFRESH_TIMEOUT_SECONDS):
                self.metrics.set_consumer_lag(await self.consumer_lags())
        except Exception as error:  # noqa: BLE001 - a scrape must still answer
            self.metrics.refresh_failed("consumer_lag")
            log.warning("metrics.consumer_lag_failed", error=str(error))
        try:
            async with asyncio.timeout(GAUGE_REFRESH_TIMEOUT_SECONDS):
                unpublished = await self.ledger.unpublished_count()
            self.metrics.set_outbox_unpublished(unpublished)
        except Exception as error:  # noqa: BLE001 - a scrape must still answer
            self.metrics.refresh_failed("outbox")
            log.warning("metrics.outbox_failed", error=str(error))

    async def render_metrics(self) -> bytes:
        """What ``GET /metrics`` answers: the gauges read now, then every series as text."""
        await self.refresh_gauges()
        return self.metrics.render()

    def asgi_app(self) -> AsgiFastStream:
        """The FastStream app with its HTTP routes, ready for :func:`serve` or any ASGI server.

        ``/health`` (readiness) answers 204 once every subscriber has started and while the broker
        and the database answer, 503 otherwise. ``/health/live`` (liveness) answers 204 whenever
        the process does: an outage of the broker or the database takes a replica out of service
        but is no reason to restart it. ``/metrics`` is the Prometheus text format.
        """

        @get(include_in_schema=False)
        async def health(scope: Any) -> AsgiResponse:  # noqa: ARG001 - ASGI handler signature
            broker_ok = await self.broker.ping(timeout=2.0)
            try:
                await self.mongo_client.admin.command("ping")
                database_ok = True
            except Exception:  # noqa: BLE001 - any failure means not healthy
                database_ok = False
            healthy = self.ready and broker_ok and database_ok
            return AsgiResponse(b"", 204 if healthy else 503)

        @get(include_in_schema=False)
        async def live(scope: Any) -> AsgiResponse:  # noqa: ARG001 - ASGI handler signature
            return AsgiResponse(b"", 204)

        @get(include_in_schema=False)
        async def metrics(scope: Any) -> AsgiResponse:  # noqa: ARG001 - ASGI handler signature
            return AsgiResponse(
                await self.render_metrics(), 200, headers={"content-type": METRICS_CONTENT_TYPE}
            )

        self._register_replays()
        return AsgiFastStream(
            self.broker,
            asgi_routes=[("/health", health), ("/health/live", live), ("/metrics", metrics)],
            on_startup=[self._on_startup],
            after_startup=[self._after_startup],
            on_shutdown=[self._on_shutdown],
            after_shutdown=[self._after_shutdown],
        )


def _original_record(record: Any) -> Any | None:
    """A replayed record as its original: topic, partition, offset and key from its headers."""
    headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}
    try:
        topic = headers[REPLAY_ORIGINAL_TOPIC]
        partition = int(headers.get(REPLAY_ORIGINAL_PARTITION, "0"))
        offset = int(headers.get(REPLAY_ORIGINAL_OFFSET, "-1"))
    except (KeyError, ValueError):
        return None
    key = headers.get(REPLAY_ORIGINAL_KEY)
    return dataclasses.replace(
        record,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.encode() if key else record.key,
        headers=[(name, value) for name, value in record.headers or () if name != REPLAY_FOR],
    )


def build_runtime(
    settings: ServiceSettings, infrastructure: InfrastructureSettings | None = None
) -> ServiceRuntime:
    """Build broker, database, ledger and reliable consumer for ``settings.service_name``."""
    infrastructure = infrastructure or InfrastructureSettings()
    configure_logging(
        service=settings.service_name,
        log_format=infrastructure.log_format,
        level=infrastructure.log_level,
    )
    broker = build_broker(
        infrastructure.kafka_bootstrap_servers,
        client_id=f"crs-{settings.service_name}",
        infrastructure=infrastructure,
    )
    metrics = ServiceMetrics(settings.service_name)
    mongo_client = build_mongo_client(infrastructure.mongodb_uri, listeners=[metrics.database_commands])
    database = mongo_client[settings.database]
    ledger = MongoLedger(mongo_client, database)
    runtime = ServiceRuntime(
        settings=settings,
        infrastructure=infrastructure,
        broker=broker,
        mongo_client=mongo_client,
        database=database,
        ledger=ledger,
        metrics=metrics,
        consumer=ReliableConsumer(
            service=settings.service_name,
            ledger=ledger,
            publish=BrokerPublisher(broker),
            policy=DeliveryPolicy(
                max_attempts=settings.max_attempts,
                retry_backoff_seconds=settings.retry_backoff_seconds,
                max_message_bytes=settings.max_message_bytes,
                max_record_bytes=settings.max_record_bytes,
                max_nesting_depth=settings.max_nesting_depth,
                outbox_grace=timedelta(seconds=settings.outbox_grace_seconds),
            ),
            observer=metrics,
            already_published=PublishedCheck(
                infrastructure.kafka_bootstrap_servers, connection=kafka_client_options(infrastructure)
            ),
        ),
    )
    if settings.processed_retention_days > 0:
        retention = timedelta(days=settings.processed_retention_days)

        async def prune_processed_keys() -> None:
            await ledger.prune_processed(older_than=retention)

        runtime.every(settings.processed_prune_seconds, prune_processed_keys, name="prune_processed_keys")
    return runtime


async def serve(app: AsgiFastStream, settings: ServiceSettings) -> None:
    """Run the service until SIGINT/SIGTERM; uvicorn drives the app's lifespan."""
    config = uvicorn.Config(
        app, host=settings.health_host, port=settings.health_port, log_config=None, access_log=False
    )
    await uvicorn.Server(config).serve()


def run_service(build_app: Callable[[], tuple[AsgiFastStream, ServiceSettings]]) -> None:
    """Entry point of ``python -m services.<name>``."""
    app, settings = build_app()
    asyncio.run(serve(app, settings))


__all__: Sequence[str] = (
    "ServiceRuntime",
    "build_runtime",
    "inbound_batch",
    "refusals_dead_lettered",
    "run_each",
    "run_service",
    "serve",
)
