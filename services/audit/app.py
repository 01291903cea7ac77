"""Composition root of the audit service: wiring only."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaMessage
from pydantic import BaseModel, ConfigDict

from services.audit import domain
from services.audit.settings import AuditSettings
from services.audit.store import AuditStore
from shared.delivery import LedgerTransaction, MessageOrigin
from shared.mongo import BatchedInserts
from shared.runtime import build_runtime, inbound_batch
from shared.settings import InfrastructureSettings
from shared.topics import REQUEST_TOPICS


class RecordText(BaseModel):
    """A record as audit receives it: its exact text, whether or not it is valid JSON."""

    model_config = ConfigDict(frozen=True)

    text: str


class AuditHandlers:
    def __init__(self, store: AuditStore) -> None:
        self._entries = BatchedInserts(store.append_many)

    async def record(self, record: RecordText, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        facts = domain.facts_of(origin.topic, record.text)
        self._entries.add(
            tx,
            {
                "request_id": facts.request_id,
                "event_type": facts.event_type,
                "status": facts.status,
                "customer_id": facts.customer_id,
                "topic": origin.topic,
                "partition": origin.partition,
                "offset": origin.offset,
                "key": origin.key,
                "published_at": (
                    datetime.fromtimestamp(origin.timestamp_ms / 1000, UTC) if origin.timestamp_ms else None
                ),
                "recorded_at": datetime.now(UTC),
                "text": record.text,
            },
        )


def build_app(
    settings: AuditSettings | None = None, infrastructure: InfrastructureSettings | None = None
) -> tuple[AsgiFastStream, AuditSettings]:
    """Build the audit service."""
    settings = settings or AuditSettings()
    runtime = build_runtime(settings, infrastructure)
    store = AuditStore(runtime.database)
    handlers = AuditHandlers(store)
    runtime.startup_hooks.append(store.ensure_indexes)
    consumer = runtime.consumer

    @runtime.subscriber(*REQUEST_TOPICS, name="request-topics")
    async def on_request_record(message: KafkaMessage) -> None:
        await consumer.consume_batch(
            inbound_batch(message),
            # Audit keeps even what is not JSON: it records the text instead of parsing it.
            decode=lambda raw: {"text": raw.decode("utf-8", errors="replace")},
            model=RecordText,
            idempotency_key=lambda _, origin: f"{origin.topic}:{origin.partition}:{origin.offset}",
            apply=handlers.record,
        )

    return runtime.asgi_app(), settings
