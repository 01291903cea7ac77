"""Composition root of the audit service: wiring only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from faststream.asgi import AsgiFastStream
from pydantic import BaseModel, ConfigDict

from services.audit import domain
from services.audit.chain import record_fingerprint
from services.audit.incarnations import TopicIncarnations
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared.delivery import LedgerTransaction, MessageOrigin, idempotent_by_itself
from shared.kafka import build_admin_client
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import REQUEST_TOPICS


class RecordText(BaseModel):
    """A record as audit receives it: its exact text, whether or not it is valid JSON."""

    model_config = ConfigDict(frozen=True)

    text: str


class AuditHandlers:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    @idempotent_by_itself  # an entry is kept under its record's identity: a repeat adds nothing
    async def record(self, record: RecordText, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        facts = domain.facts_of(origin.topic, record.text)
        self._store.append_on_commit(
            tx,
            record_identity(record, origin),
            {
                "request_id": facts.request_id,
                "event_type": facts.event_type,
                "status": facts.status,
                "customer_id": facts.customer_id,
                "topic": origin.topic,
                "partition": origin.partition,
                "offset": origin.offset,
                "key": origin.key,
                "published_at": published_at(origin),
                "recorded_at": datetime.now(UTC),
                "text": record.text,
            },
        )


def published_at(origin: MessageOrigin) -> datetime | None:
    """The record's Kafka timestamp, exactly (no float arithmetic on the milliseconds)."""
    if not origin.timestamp_ms or origin.timestamp_ms < 0:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=origin.timestamp_ms)


def record_identity(record: RecordText, origin: MessageOrigin) -> str:
    """The idempotency key of a record: its position, and what tells records at a reused position
    apart (a topic created again numbers from 0 again; see :func:`chain.record_fingerprint`)."""
    fingerprint = record_fingerprint(published_at=published_at(origin), key=origin.key, text=record.text)
    return f"{origin.topic}:{origin.partition}:{origin.offset}:{fingerprint}"


def build_app(
    settings: AuditSettings | None = None, infrastructure: InfrastructureSettings | None = None
) -> tuple[AsgiFastStream, AuditSettings]:
    """Build the audit service."""
    settings = settings or AuditSettings()
    runtime = build_runtime(settings, infrastructure)
    store = AuditStore(runtime.database)
    handlers = AuditHandlers(store)
    runtime.startup_hooks.append(store.ensure_indexes)
    runtime.startup_hooks.append(store.check_heads)
    group_id = f"{settings.consumer_group}.request-topics"  # the group runtime.subscriber gives it

    def request_topics_consumer() -> Any:
        subscriber = next(
            (s for s in runtime.broker.subscribers if getattr(s, "group_id", None) == group_id), None
        )
        return getattr(subscriber, "consumer", None)

    incarnations = TopicIncarnations(
        partial(
            build_admin_client, runtime.infrastructure, client_id=f"crs-{settings.service_name}-topic-ids"
        ),
        REQUEST_TOPICS,
        request_topics_consumer,
    )
    runtime.startup_hooks.append(incarnations.start)
    runtime.every(settings.incarnation_check_seconds, incarnations.check, name="topic_incarnations")

    runtime.subscribe(
        REQUEST_TOPICS,
        RecordText,
        handlers.record,
        key=record_identity,
        # Audit keeps even what is not JSON: it records the text instead of parsing it.
        decode=lambda raw: {"text": raw.decode("utf-8", errors="replace")},
        name="request-topics",
    )

    app = runtime.asgi_app()
    app.after_shutdown(incarnations.stop)
    return app, settings
