"""What pages and the API show, from the view's documents: queue rows and a request's record. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.workspace.domain import (
    ClockState,
    format_working_time,
    money_text,
    parse_time,
    sla_now,
    sla_risk_key,
)
from shared.business_time import BusinessCalendar

PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


@dataclass(frozen=True)
class QueueFilter:
    """What a queue listing is narrowed to (every field optional)."""

    queue: str | None = None
    status: str | None = None
    priority: str | None = None
    assigned: str | None = None  # "me", "nobody", or a user id
    flagged: bool = False
    include_closed: bool = False
    sort: str = "sla"  # "sla", "age", "priority"


def queue_rows(
    summaries: Iterable[Mapping[str, Any]],
    *,
    calendar: BusinessCalendar,
    now: datetime,
    me: str,
    wanted: QueueFilter,
) -> list[dict[str, Any]]:
    """The rows of a queue listing, filtered and sorted (by SLA risk unless asked otherwise)."""
    rows = []
    for summary in summaries:
        if not wanted.include_closed and not summary.get("open"):
            continue
        if wanted.queue and summary.get("queue") != wanted.queue:
            continue
        if wanted.status and summary.get("status") != wanted.status:
            continue
        if wanted.priority and summary.get("priority") != wanted.priority:
            continue
        if wanted.assigned == "me" and summary.get("assignee") != me:
            continue
        if wanted.assigned == "nobody" and summary.get("assignee") is not None:
            continue
        if (
            wanted.assigned not in (None, "", "me", "nobody", "anyone")
            and summary.get("assignee") != wanted.assigned
        ):
            continue
        if wanted.flagged and not summary.get("flags"):
            continue
        rows.append(row_of(summary, calendar=calendar, now=now))
    if wanted.sort == "age":
        rows.sort(key=lambda row: row["created_at"] or "")
    elif wanted.sort == "priority":
        rows.sort(key=lambda row: (PRIORITY_ORDER.get(row["priority"] or "", 9), row["_risk"]))
    else:
        rows.sort(key=lambda row: (row["_risk"], row["request_id"]))
    return rows


def row_of(summary: Mapping[str, Any], *, calendar: BusinessCalendar, now: datetime) -> dict[str, Any]:
    clock = sla_now(
        calendar,
        routed_at=parse_time(summary.get("routed_at")),
        sla_due_at=parse_time(summary.get("sla_due_at")),
        statuses=summary.get("_statuses") or [],
        now=now,
    )
    created = parse_time(summary.get("created_at"))
    return {
        "request_id": summary["request_id"],
        "customer_id": summary.get("customer_id"),
        "customer_name": summary.get("customer_name"),
        "request_type": summary.get("request_type"),
        "subject": summary.get("subject"),
        "queue": summary.get("queue"),
        "status": summary.get("status"),
        "status_reason": summary.get("status_reason"),
        "priority": summary.get("priority"),
        "assignee": summary.get("assignee"),
        "flags": summary.get("flags") or [],
        "amount": money_text(summary.get("amount")),
        "created_at": summary.get("created_at"),
        "age": _age(now - created) if created else "",
        "sla_due_at": clock.due_at.isoformat() if clock and clock.due_at else summary.get("sla_due_at"),
        "sla_state": clock.state.value if clock else None,
        "sla_left_hours": round(clock.left.total_seconds() / 3600, 2) if clock else None,
        "sla_left": _sla_text(clock.left, clock.state) if clock else "no SLA",
        "sla_breached": bool(clock and clock.breached),
        "_risk": sla_risk_key(clock),
    }


def _sla_text(left: Any, state: ClockState) -> str:
    text = format_working_time(left)
    text = f"{text.lstrip('-')} overdue" if left.total_seconds() < 0 else f"{text} left"
    if state is ClockState.PAUSED:
        return f"paused ({text})"
    if state in (ClockState.STOPPED, ClockState.FINISHED):
        return f"stopped ({text})"
    return text


def _age(span: Any) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def public_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without the fields used only for sorting."""
    return {key: value for key, value in row.items() if not key.startswith("_")}


def record_of(
    document: Mapping[str, Any],
    emails: Mapping[str, Mapping[str, Any]],
    *,
    calendar: BusinessCalendar,
    now: datetime,
) -> dict[str, Any]:
    """A request's whole record as the request page and ``GET /api/requests/{id}`` show it."""
    summary = dict(document.get("summary") or {})
    summary["_statuses"] = document.get("statuses", [])
    row = row_of(summary, calendar=calendar, now=now) if summary.get("request_id") else {}
    captured = document.get("captured") or {}
    validations = document.get("validations", [])
    latest = validations[-1] if validations else {}
    invoices: list[Any] = latest.get("invoices") or next(
        (r.get("invoices") for r in reversed(document.get("routings", [])) if r.get("invoices")), []
    )
    replies = [
        {**reply, "email": dict(emails.get(str(reply.get("message_key")), {}))}
        for reply in document.get("replies", [])
    ]
    actions = document.get("actions", [])
    timeline = sorted(
        [
            *(
                {
                    "at": s.get("at"),
                    "what": f"status {s.get('status')}",
                    "who": "system",
                    "detail": s.get("message"),
                    "reason": s.get("reason"),
                }
                for s in document.get("statuses", [])
            ),
            *(
                {
                    "at": a.get("occurred_at"),
                    "what": a.get("event_type"),
                    "who": f"{a.get('actor')} ({a.get('actor_role')})",
                    "detail": _action_detail(a),
                    "reason": None,
                }
                for a in actions
            ),
            *(
                {
                    "at": u.get("occurred_at"),
                    "what": "case withdrawn" if u.get("withdrawn") else "case updated",
                    "who": "customer (CRM)",
                    "detail": "changed: " + ", ".join(u.get("changed") or []),
                    "reason": None,
                }
                for u in document.get("updates", [])
            ),
            *(
                {
                    "at": d.get("decided_at"),
                    "what": f"approval: {d.get('decision')}",
                    "who": f"{d.get('approver')} ({d.get('role')})",
                    "detail": d.get("comment"),
                    "reason": None,
                }
                for d in document.get("decisions", [])
            ),
            *(
                {
                    "at": r.get("created_at"),
                    "what": f"posting {r.get('kind')}",
                    "who": "resolution",
                    "detail": f"{money_text(r.get('amount'))} {r.get('resolution_id')}",
                    "reason": r.get("reason_code"),
                }
                for r in document.get("resolutions", [])
            ),
            *(
                {
                    "at": a.get("posted_at"),
                    "what": f"ERP {a.get('status')}",
                    "who": "ERP",
                    "detail": a.get("erp_document_id") or a.get("error"),
                    "reason": None,
                }
                for a in document.get("acks", [])
            ),
        ],
        key=lambda item: (parse_time(item["at"]) or now, item["what"]),
    )
    return {
        "request_id": document["_id"],
        "summary": {k: v for k, v in summary.items() if not k.startswith("_")},
        "sla": public_row(row) if row else None,
        "request": captured.get("details") or {},
        "captured_at": captured.get("occurred_at"),
        "customer": latest.get("customer"),
        "validations": validations,
        "invoices": invoices,
        "routings": document.get("routings", []),
        "statuses": document.get("statuses", []),
        "approval": summary.get("approval"),
        "decisions": document.get("decisions", []),
        "resolutions": document.get("resolutions", []),
        "acks": document.get("acks", []),
        "replies": replies,
        "notes": [a for a in actions if a.get("event_type") == "NoteAdded"],
        "actions": actions,
        "timeline": timeline,
    }


def _action_detail(action: Mapping[str, Any]) -> str:
    kind = action.get("event_type")
    if kind == "RequestAssigned":
        return f"to {action.get('assignee')}"
    if kind == "RequestReleased":
        return f"from {action.get('previous_assignee')}"
    if kind == "NoteAdded":
        return str(action.get("text"))
    parts = [
        f"{name}={value}"
        for name, value in action.items()
        if name
        in (
            "request_type",
            "queue",
            "priority",
            "question",
            "kind",
            "invoice_id",
            "payment_id",
            "resolution_id",
            "reason",
            "reason_code",
            "comment",
        )
        and value
    ]
    if action.get("amount"):
        parts.append(f"amount={money_text(action['amount'])}")
    return ", ".join(parts)
