"""One readable line per record of the request topics, for `crs watch` and `make run`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crs.io import TopicRecord
from services.audit.domain import facts_of
from shared.topics import DLQ_SUFFIX

_COLOURS = {
    "received": "36",
    "validated": "34",
    "routed": "35",
    "resolved": "32",
    "closed": "32;1",
    "rejected": "31",
    "on_hold": "33",
    "duplicate_of": "90",
    "awaiting_approval": "33;1",
    "approved": "36;1",
    "sla_warning": "33;7",
    "sla_breached": "31;7",
    "escalated": "35;7",
    "dlq": "31;1",
}


def _money(value: Any) -> str:
    if isinstance(value, dict) and "amount" in value:
        return f"{value['amount']} {value.get('currency', '')}".strip()
    return ""


def describe(record: TopicRecord) -> tuple[str, str, str, str]:
    """(request id, what happened, who, detail) for a record of any request topic."""
    value = record.value if isinstance(record.value, dict) else {}
    if record.topic.endswith(DLQ_SUFFIX):
        return (
            record.key or "-",
            "dlq",
            record.headers.get("x-failed-service", "-"),
            f"{record.headers.get('x-error-reason', '?')}: {record.headers.get('x-error', '')[:100]}",
        )
    # The same attribution audit uses: a CRM case or an email shows under our request id.
    request_id = facts_of(record.topic, record.raw.decode("utf-8", errors="replace")).request_id or str(
        record.key
    )
    if record.topic == "requests.status.v1":
        extra = " ".join(
            part
            for part in (
                f"[{value['reason']}]" if value.get("reason") else "",
                f"queue={value['queue']}" if value.get("queue") else "",
                f"priority={value['priority']}" if value.get("priority") else "",
                f"duplicate_of={value['duplicate_of']}" if value.get("duplicate_of") else "",
            )
            if part
        )
        return (
            request_id,
            str(value.get("status")),
            str(value.get("customer_id") or "-"),
            (f"{value.get('message', '')} {extra}".strip()),
        )
    if record.topic == "erp.resolutions.v1":
        return (
            request_id,
            f"erp:{value.get('kind')}",
            str(value.get("customer_id") or "-"),
            (
                f"{_money(value.get('amount'))} on {value.get('invoice_id') or value.get('payment_id')} "
                f"({value.get('resolution_id')})"
            ),
        )
    if record.topic == "erp.acks.v1":
        return (
            request_id,
            f"erp:{value.get('status')}",
            "-",
            str(value.get("erp_document_id") or value.get("error")),
        )
    if record.topic == "crm.requests.v1":
        return (
            request_id,
            "crm:request",
            str(value.get("customer_id") or "-"),
            (f"{value.get('type') or 'unclassified'}: {value.get('subject', '')}"),
        )
    if record.topic == "email.requests.v1":
        return request_id, "email", str(value.get("from") or "-"), str(value.get("subject", ""))
    event = str(value.get("event_type") or record.topic)
    found = value.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    what = " ".join(
        part
        for part in (
            str(details.get("request_type") or "unclassified"),
            f"{value['verdict']}[{value.get('reason')}]" if value.get("verdict") else "",
            f"waiting_for={','.join(value['waiting_for'])}" if value.get("waiting_for") else "",
            f"queue={value['queue']}" if value.get("queue") else "",
            f"sla_due_at={value['sla_due_at']}" if value.get("sla_due_at") else "",
        )
        if part
    )
    return request_id, event, str(value.get("customer_id") or details.get("customer_id") or "-"), what


def matches(
    record: TopicRecord,
    *,
    request: str | None = None,
    customer: str | None = None,
    status: str | None = None,
) -> bool:
    """Whether a record passes `crs watch`'s filters (each one left out lets everything through).

    ``customer`` matches the customer the record names, or the sender of an email; ``status``
    is a comma-separated list of statuses or events (``rejected,on_hold``, ``dlq``, ``erp:posted``).
    """
    request_id, what, who, _ = describe(record)
    if request and request != request_id:
        return False
    if customer:
        named = record.value.get("customer_id") if isinstance(record.value, dict) else None
        if customer not in (who, named):
            return False
    return not status or what in {part.strip() for part in status.split(",") if part.strip()}


def format_line(record: TopicRecord, *, colour: bool) -> str:
    """The watch line of a record: time, request, what, who, detail."""
    request_id, what, who, detail = describe(record)
    at = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).strftime("%H:%M:%S")
    shown = f"{what:<18}"
    if colour:
        code = _COLOURS.get(what) or _COLOURS.get(what.split(":")[0])
        if code:
            shown = f"\x1b[{code}m{shown}\x1b[0m"
    return f"{at} {request_id:<24} {shown} {who:<14} {detail}"
