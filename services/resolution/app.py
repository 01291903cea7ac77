"""Composition root of the resolution service: wiring only."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaMessage

from services.resolution import domain
from services.resolution.settings import ResolutionSettings
from services.resolution.store import ResolutionStore
from shared.contract import Channel, ErpAck
from shared.delivery import LedgerTransaction, MessageOrigin, OutgoingMessage, PermanentFailure
from shared.events import RequestRouted
from shared.messages import outgoing_status, status_changed
from shared.runtime import build_runtime, inbound_batch
from shared.settings import InfrastructureSettings
from shared.topics import ERP_ACKS, ERP_RESOLUTIONS, REQUEST_ROUTED


class ResolutionHandlers:
    def __init__(self, store: ResolutionStore) -> None:
        self._store = store

    async def resolve(self, event: RequestRouted, tx: LedgerTransaction, _: MessageOrigin) -> None:
        now = datetime.now(UTC)
        decision = domain.resolve(event, now=now)
        record = {
            "channel": event.details.channel.value,
            "source_id": event.details.source_id,
            "customer_id": event.customer_id,
            "queue": event.queue,
            "priority": event.priority.value,
            "sla_due_at": event.sla_due_at,
            "state": "routed" if decision is None else decision.status.value,
            "resolution_id": None,
        }
        if decision is None or decision.resolution is None:
            await self._store.record_request(event.request_id, record, session=tx.session)
            return
        resolution = decision.resolution
        record["resolution_id"] = resolution.resolution_id
        await self._store.record_request(event.request_id, record, session=tx.session)
        await self._store.record_resolution(
            resolution.resolution_id,
            {**resolution.model_dump(mode="json"), "status": "issued"},
            session=tx.session,
        )
        tx.emit(
            OutgoingMessage.of(
                topic=ERP_RESOLUTIONS,
                key=event.request_id,
                event=resolution,
                message_id=resolution.resolution_id,
            )
        )
        tx.emit(
            outgoing_status(
                status_changed(
                    request_id=event.request_id,
                    channel=event.details.channel,
                    source_id=event.details.source_id,
                    customer_id=event.customer_id,
                    status=decision.status,
                    message=decision.message,
                    queue=event.queue,
                    priority=event.priority,
                    sla_due_at=event.sla_due_at,
                    at=now,
                )
            )
        )

    async def acknowledge(self, ack: ErpAck, tx: LedgerTransaction, _: MessageOrigin) -> None:
        resolution = await self._store.resolution(ack.resolution_id, session=tx.session)
        if resolution is None or resolution["request_id"] != ack.request_id:
            raise PermanentFailure(
                "unknown_resolution", f"no resolution {ack.resolution_id} for request {ack.request_id}"
            )
        request = await self._store.request(ack.request_id, session=tx.session) or {}
        now = datetime.now(UTC)
        decision = domain.acknowledge(ack)
        await self._store.record_ack(ack, request_state=decision.status.value, at=now, session=tx.session)
        tx.emit(
            outgoing_status(
                status_changed(
                    request_id=ack.request_id,
                    channel=Channel(request.get("channel", "crm")),
                    source_id=request.get("source_id", ""),
                    customer_id=resolution.get("customer_id"),
                    status=decision.status,
                    reason=decision.reason,
                    message=decision.message,
                    queue=request.get("queue"),
                    at=now,
                    occurrence=f"{ack.resolution_id}:{ack.status}",
                )
            )
        )


def build_app(
    settings: ResolutionSettings | None = None, infrastructure: InfrastructureSettings | None = None
) -> tuple[AsgiFastStream, ResolutionSettings]:
    """Build the resolution service."""
    settings = settings or ResolutionSettings()
    runtime = build_runtime(settings, infrastructure)
    store = ResolutionStore(runtime.database)
    handlers = ResolutionHandlers(store)
    runtime.startup_hooks.append(store.ensure_indexes)
    consumer = runtime.consumer

    runtime.subscribe_events(REQUEST_ROUTED, RequestRouted, handlers.resolve)

    @runtime.subscriber(ERP_ACKS)
    async def on_erp_ack(message: KafkaMessage) -> None:
        await consumer.consume_batch(
            inbound_batch(message),
            model=ErpAck,
            idempotency_key=lambda ack, _: f"ack:{ack.resolution_id}:{ack.status}",
            apply=handlers.acknowledge,
            log_ids=lambda ack: (ack.request_id, ack.resolution_id),
        )

    return runtime.asgi_app(), settings
