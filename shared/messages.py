"""Building the outgoing messages every service publishes: status changes and internal events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from shared.contract import Channel, ErpResolution, Priority, RequestStatus, RequestStatusChanged
from shared.delivery import LedgerTransaction, OutgoingMessage
from shared.events import (
    CaseUpdated,
    EmailReplyAdded,
    InternalEvent,
    RequestCaptured,
    RequestRouted,
    RequestSetAside,
    RequestValidated,
)
from shared.identity import event_id_for
from shared.lifecycle import Effect
from shared.resolution_events import ApprovalEvaluated, ApprovalRequested, PaymentCandidatesFound
from shared.topics import (
    ERP_RESOLUTIONS,
    REQUEST_CAPTURED,
    REQUEST_RESOLUTION,
    REQUEST_ROUTED,
    REQUEST_SET_ASIDE,
    REQUEST_STATUS,
    REQUEST_UPDATED,
    REQUEST_VALIDATED,
)

EVENT_TOPICS: Mapping[type[InternalEvent], str] = {
    RequestCaptured: REQUEST_CAPTURED,
    RequestValidated: REQUEST_VALIDATED,
    RequestSetAside: REQUEST_SET_ASIDE,
    RequestRouted: REQUEST_ROUTED,
    EmailReplyAdded: REQUEST_UPDATED,
    PaymentCandidatesFound: REQUEST_RESOLUTION,
    ApprovalRequested: REQUEST_RESOLUTION,
    ApprovalEvaluated: REQUEST_RESOLUTION,
    CaseUpdated: REQUEST_UPDATED,
}
"""The topic each internal event travels on."""


def status_changed(
    *,
    request_id: str,
    channel: Channel,
    source_id: str,
    customer_id: str | None,
    status: RequestStatus,
    message: str,
    at: datetime,
    reason: str | None = None,
    queue: str | None = None,
    priority: Priority | None = None,
    sla_due_at: datetime | None = None,
    duplicate_of: str | None = None,
    occurrence: str = "",
) -> RequestStatusChanged:
    """A status change with a stable event id (one per request, status, reason and occurrence)."""
    return RequestStatusChanged(
        event_id=event_id_for(request_id, "status", status.value, reason or "", occurrence),
        request_id=request_id,
        channel=channel,
        source_id=source_id,
        customer_id=customer_id,
        status=status,
        reason=reason,
        message=message,
        queue=queue,
        priority=priority,
        sla_due_at=sla_due_at,
        duplicate_of=duplicate_of,
        at=at,
    )


def outgoing_status(change: RequestStatusChanged) -> OutgoingMessage:
    """The status change as a message on ``requests.status.v1``, keyed by request id."""
    return OutgoingMessage.of(
        topic=REQUEST_STATUS, key=change.request_id, event=change, message_id=change.event_id
    )


def outgoing_event(topic: str, event: InternalEvent) -> OutgoingMessage:
    """An internal event as a message on ``topic``, keyed by request id."""
    return OutgoingMessage.of(topic=topic, key=event.request_id, event=event, message_id=event.event_id)


def outgoing_resolution(resolution: ErpResolution) -> OutgoingMessage:
    """A posting for the ERP on ``erp.resolutions.v1``, keyed by request id, its id the resolution id."""
    return OutgoingMessage.of(
        topic=ERP_RESOLUTIONS,
        key=resolution.request_id,
        event=resolution,
        message_id=resolution.resolution_id,
    )


def outgoing(effect: Effect) -> OutgoingMessage:
    """What a transition caused, as the message that says so on its topic."""
    if isinstance(effect, RequestStatusChanged):
        return outgoing_status(effect)
    if isinstance(effect, ErpResolution):
        return outgoing_resolution(effect)
    return outgoing_event(EVENT_TOPICS[type(effect)], effect)


def emit(transaction: LedgerTransaction, effects: Iterable[Effect]) -> None:
    """Queue what a transition caused in the transaction's outbox, in order."""
    for effect in effects:
        transaction.emit(outgoing(effect))
