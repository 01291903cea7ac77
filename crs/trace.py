"""`crs trace REQUEST_ID`: a request's path through the services, the time each step took, and
where it is now, from audit's entries alone.

Steps are ordered by when they were published (the Kafka timestamp audit keeps), so the order is
the order things happened on the bus, not the order audit happened to read the topics. The time a
step took is the time since the step before it: the time the service that published it needed
(plus the time it waited in its topic). A record published twice (the outbox sends at least once)
shows once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.audit.reader import AuditReader
from shared.topics import (
    APPROVALS,
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_CAPTURED,
    REQUEST_ROUTED,
    REQUEST_SET_ASIDE,
    REQUEST_STATUS,
    REQUEST_UPDATED,
    REQUEST_VALIDATED,
)

FLAGS = frozenset({"sla_warning", "sla_breached", "escalated"})
"""Statuses that mark a request without moving it: it stays where its last other status put it."""

FINISHED = frozenset({"closed", "rejected", "duplicate_of"})

_PUBLISHER_OF_STATUS = {
    "received": "intake",
    "on_hold": "validation",
    "rejected": "validation",
    "validated": "validation",
    "duplicate_of": "validation",
    "routed": "routing",
    "sla_warning": "routing",
    "sla_breached": "routing",
    "escalated": "routing",
    "awaiting_approval": "resolution",
    "approved": "resolution",
    "resolved": "resolution",
    "closed": "resolution",
}

_HOLDER_OF_STATUS = {
    "received": "validation (to be checked)",
    "on_hold": "validation (on hold)",
    "validated": "routing (to be routed)",
    "routed": "resolution and the queue",
    "awaiting_approval": "approvers",
    "approved": "resolution (approved)",
    "resolved": "ERP (to post the resolution)",
    "closed": "nobody: closed",
    "rejected": "nobody: rejected",
    "duplicate_of": "nobody: linked as a duplicate",
}


class TraceStep(BaseModel):
    """One thing that happened to the request, with the time since the step before."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    service: str
    step: str
    detail: str
    topic: str
    sequence: int
    since_previous_ms: float | None


class RequestTrace(BaseModel):
    """A request's path, the time each service took in total, and where it is now."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    customer_id: str | None
    steps: list[TraceStep]
    time_by_service_ms: dict[str, float]
    total_ms: float
    status: str | None
    flags: list[str]
    queue: str | None
    held_by: str
    since_last_step_ms: float


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def _message(entry: Mapping[str, Any]) -> dict[str, Any]:
    try:
        found = json.loads(entry.get("text") or "")
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def _money(value: Any) -> str:
    if isinstance(value, dict) and "amount" in value:
        return f"{value['amount']} {value.get('currency', '')}".strip()
    return "-"


def _shown(value: Any) -> str:
    """A value as shown in a step: ``-`` where it is absent (never ``None``)."""
    return "-" if value is None or value == "" else str(value)


def describe_step(topic: str, message: Mapping[str, Any]) -> tuple[str, str, str]:
    """(service, step, detail) of a record of a request topic."""
    if topic in (CRM_REQUESTS, EMAIL_REQUESTS):
        gateway = "email" if topic == EMAIL_REQUESTS else str(message.get("channel") or "crm")
        subject = message.get("subject") or ""
        return gateway, "received", f"{message.get('type') or 'type not given'}: {subject}".strip()
    if topic == REQUEST_CAPTURED:
        details = message.get("details") if isinstance(message.get("details"), dict) else {}
        return "intake", "captured", f"type={(details or {}).get('request_type') or 'unclassified'}"
    if topic == REQUEST_VALIDATED:
        return "validation", "validated", f"customer={message.get('customer_id') or '-'}"
    if topic == REQUEST_SET_ASIDE:
        waiting = message.get("waiting_for") or []
        detail = f"[{message.get('reason')}]" + (f" waiting for {', '.join(waiting)}" if waiting else "")
        if message.get("duplicate_of"):
            detail += f" of {message['duplicate_of']}"
        return "validation", str(message.get("verdict") or "set aside"), detail
    if topic == REQUEST_ROUTED:
        return (
            "routing",
            "routed",
            f"queue={_shown(message.get('queue'))} priority={_shown(message.get('priority'))} "
            f"sla_due_at={_shown(message.get('sla_due_at'))}",
        )
    if topic == ERP_RESOLUTIONS:
        return (
            "resolution",
            f"resolution:{_shown(message.get('kind'))}",
            f"{_money(message.get('amount'))} on "
            f"{message.get('invoice_id') or message.get('payment_id') or '-'}",
        )
    if topic == ERP_ACKS:
        return (
            "erp",
            f"erp:{_shown(message.get('status'))}",
            _shown(message.get("erp_document_id") or message.get("error")),
        )
    if topic == REQUEST_STATUS:
        status = str(message.get("status"))
        extra = " ".join(
            f"{name}={message[name]}" for name in ("reason", "queue", "duplicate_of") if message.get(name)
        )
        return _PUBLISHER_OF_STATUS.get(status, "-"), f"status:{status}", extra
    if topic == REQUEST_UPDATED:
        if message.get("event_type") == "CaseUpdated":
            what = "case withdrawn" if message.get("withdrawn") else "case updated"
            return "intake", what, ",".join(str(name) for name in message.get("changed") or [])
        return "intake", "email reply added", str(message.get("subject") or "")
    if topic == APPROVALS:
        return "approvers", f"approval:{_shown(message.get('decision'))}", _shown(message.get("approver"))
    return "-", str(message.get("event_type") or topic), ""


def trace_request(request_id: str, entries: Iterable[Mapping[str, Any]], *, now: datetime) -> RequestTrace:
    """The trace of a request from its audit entries (any order)."""
    unique: dict[tuple[str, str], Mapping[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: (_aware(e.get("published_at")), int(e.get("sequence") or 0))):
        unique.setdefault((str(entry.get("topic")), str(entry.get("text"))), entry)
    steps: list[TraceStep] = []
    by_service: dict[str, float] = {}
    status: str | None = None
    flags: list[str] = []
    queue: str | None = None
    customer_id: str | None = None
    previous: datetime | None = None
    for entry in unique.values():
        topic, message = str(entry.get("topic")), _message(entry)
        at = _aware(entry.get("published_at"))
        service, step, detail = describe_step(topic, message)
        since = None if previous is None else (at - previous).total_seconds() * 1000
        if since is not None:
            by_service[service] = by_service.get(service, 0.0) + since
        previous = at
        steps.append(
            TraceStep(
                at=at,
                service=service,
                step=step,
                detail=detail,
                topic=topic,
                sequence=int(entry.get("sequence") or 0),
                since_previous_ms=since,
            )
        )
        customer_id = entry.get("customer_id") or message.get("customer_id") or customer_id
        queue = message.get("queue") or queue
        if topic == REQUEST_STATUS and message.get("status"):
            if message["status"] in FLAGS:
                flags.append(str(message["status"]))
            else:
                status = str(message["status"])
    first = steps[0].at if steps else now
    last = steps[-1].at if steps else now
    held_by = _HOLDER_OF_STATUS.get(status or "", "unknown (no status yet)")
    if status == "routed" and queue:
        held_by = f"the {queue} queue"
    return RequestTrace(
        request_id=request_id,
        customer_id=customer_id,
        steps=steps,
        time_by_service_ms=by_service,
        total_ms=(last - first).total_seconds() * 1000,
        status=status,
        flags=list(dict.fromkeys(flags)),
        queue=queue,
        held_by=held_by,
        since_last_step_ms=(now - last).total_seconds() * 1000,
    )


def duration(milliseconds: float | None) -> str:
    """A duration as people read it: 850 ms, 12.4 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def format_trace(trace: RequestTrace) -> str:
    """The trace as a table, then the time by service and where the request is now."""
    rows = [
        (
            step.at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            duration(step.since_previous_ms),
            step.service,
            step.step,
            step.detail,
        )
        for step in trace.steps
    ]
    header = ("published", "+time", "service", "step", "detail")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(4)]
    lines = [f"Trace of {trace.request_id} (customer {trace.customer_id or '-'})", ""]
    for row in [header, *rows]:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        lines.append(f"{cells}  {row[4]}".rstrip())
    lines += [
        "",
        "time by service: "
        + (", ".join(f"{service} {duration(ms)}" for service, ms in trace.time_by_service_ms.items()) or "-")
        + f"; total {duration(trace.total_ms)}",
    ]
    flags = f" (flags: {', '.join(trace.flags)})" if trace.flags else ""
    lines.append(
        f"now: {trace.status or 'no status yet'}{flags}; held by {trace.held_by}; "
        f"last step {duration(trace.since_last_step_ms)} ago"
    )
    return "\n".join(lines)


async def load_trace(reader: AuditReader, request_id: str, *, now: datetime) -> RequestTrace | None:
    """The trace of ``request_id`` from the audit store; None when audit has no entry of it."""
    entries = await reader.entries_of(request_id)
    return trace_request(request_id, entries, now=now) if entries else None
