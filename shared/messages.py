"""Building the outgoing messages every service publishes: status changes and internal events."""

from __future__ import annotations

from datetime import datetime

from shared.contract import Channel, Priority, RequestStatus, RequestStatusChanged
from shared.delivery import OutgoingMessage
from shared.events import InternalEvent
from shared.identity import event_id_for
from shared.topics import REQUEST_STATUS


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
