"""Composition root of the routing service: wiring only."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.asgi import AsgiFastStream

from services.routing import domain
from services.routing.settings import RoutingSettings
from services.routing.store import RoutingStore
from shared.contract import RequestStatus
from shared.delivery import LedgerTransaction, MessageOrigin
from shared.events import RequestRouted, RequestValidated
from shared.identity import event_id_for
from shared.messages import outgoing_event, outgoing_status, status_changed
from shared.runtime import build_runtime
from shared.settings import InfrastructureSettings
from shared.topics import REQUEST_ROUTED, REQUEST_VALIDATED


class RoutingHandlers:
    def __init__(self, store: RoutingStore) -> None:
        self._store = store

    async def route(self, event: RequestValidated, tx: LedgerTransaction, _: MessageOrigin) -> None:
        now = datetime.now(UTC)
        decision = domain.decide_route(event.details, customer_tier=event.customer_tier, now=now)
        await self._store.record_route(
            event.request_id,
            {
                "queue": decision.queue,
                "priority": decision.priority.value,
                "sla_due_at": decision.sla_due_at,
                "rule_version": decision.rule_version,
                "customer_id": event.customer_id,
                "routed_at": now,
            },
            session=tx.session,
        )
        tx.emit(
            outgoing_event(
                REQUEST_ROUTED,
                RequestRouted(
                    event_id=event_id_for(event.request_id, "RequestRouted"),
                    request_id=event.request_id,
                    correlation_id=event.correlation_id,
                    occurred_at=now,
                    details=event.details,
                    customer_id=event.customer_id,
                    customer_tier=event.customer_tier,
                    invoices=event.invoices,
                    queue=decision.queue,
                    priority=decision.priority,
                    sla_due_at=decision.sla_due_at,
                    rule_version=decision.rule_version,
                ),
            )
        )
        tx.emit(
            outgoing_status(
                status_changed(
                    request_id=event.request_id,
                    channel=event.details.channel,
                    source_id=event.details.source_id,
                    customer_id=event.customer_id,
                    status=RequestStatus.ROUTED,
                    message=f"Your request is with our {decision.queue.replace('_', ' ')} team.",
                    queue=decision.queue,
                    priority=decision.priority,
                    sla_due_at=decision.sla_due_at,
                    at=now,
                )
            )
        )


def build_app(
    settings: RoutingSettings | None = None, infrastructure: InfrastructureSettings | None = None
) -> tuple[AsgiFastStream, RoutingSettings]:
    """Build the routing service."""
    settings = settings or RoutingSettings()
    runtime = build_runtime(settings, infrastructure)
    store = RoutingStore(runtime.database)
    handlers = RoutingHandlers(store)
    runtime.startup_hooks.append(store.ensure_indexes)

    runtime.subscribe_events(REQUEST_VALIDATED, RequestValidated, handlers.route)

    return runtime.asgi_app(), settings
