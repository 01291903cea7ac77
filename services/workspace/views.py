"""What pages and the API show, from the view's documents: queue rows and a request's record. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    refused: Sequence[Mapping[str, Any]] = (),
    *,
    calendar: BusinessCalendar,
    now: datetime,
) -> dict[str, Any]:
    """A request's whole record as the request page and ``GET /api/requests/{id}`` show it
    (``refused``: the people's actions the owning services refused, oldest first)."""
    summary = dict(document.get("summary") or {})
    summary["_statuses"] = document.get("statuses", [])
    row = row_of(summary, calendar=calendar, now=now) if summary.get("request_id") else {}
    captured = document.get("captured") or {}
    validations = document.get("validations", [])
    latest = validations[-1] if validations else {}
    actions = document.get("actions", [])
    return {
        "request_id": document["_id"],
        "summary": {k: v for k, v in summary.items() if not k.startswith("_")},
        "sla": public_row(row) if row else None,
        "request": captured.get("details") or {},
        "captured_at": captured.get("occurred_at"),
        "customer": latest.get("customer"),
        "validations": validations,
        "invoices": invoices_of(document),
        "routings": document.get("routings", []),
        "statuses": document.get("statuses", []),
        "approval": summary.get("approval"),
        "decisions": document.get("decisions", []),
        "resolutions": document.get("resolutions", []),
        "acks": document.get("acks", []),
        "replies": replies_of(document, emails),
        "notes": [a for a in actions if a.get("event_type") == "NoteAdded"],
        "actions": actions,
        "refused_actions": [_public(refusal) for refusal in refused],
        "timeline": sorted(
            [*timeline_of(document, now=now), *map(_refusal_entry, refused)],
            key=lambda item: (parse_time(item["at"]) or now, item["what"]),
        ),
    }


def invoices_of(document: Mapping[str, Any]) -> list[Any]:
    """The request's invoices: the latest validation's, else the latest routing's that has some."""
    validations = document.get("validations", [])
    latest = validations[-1] if validations else {}
    invoices: list[Any] = latest.get("invoices") or next(
        (r.get("invoices") for r in reversed(document.get("routings", [])) if r.get("invoices")), []
    )
    return invoices


def replies_of(document: Mapping[str, Any], emails: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The customer's replies, each with its email (empty when the email is not stored)."""
    return [
        {**reply, "email": dict(emails.get(str(reply.get("message_key")), {}))}
        for reply in document.get("replies", [])
    ]


def timeline_of(document: Mapping[str, Any], *, now: datetime) -> list[dict[str, Any]]:
    """Everything that happened to the request, oldest first (entries without a time count as now)."""
    entries = [
        *map(_status_entry, document.get("statuses", [])),
        *map(_action_entry, document.get("actions", [])),
        *map(_update_entry, document.get("updates", [])),
        *map(_decision_entry, document.get("decisions", [])),
        *map(_posting_entry, document.get("resolutions", [])),
        *map(_ack_entry, document.get("acks", [])),
    ]
    return sorted(entries, key=lambda item: (parse_time(item["at"]) or now, item["what"]))


def _entry(at: Any, what: Any, who: str, detail: Any, reason: Any = None) -> dict[str, Any]:
    return {"at": at, "what": what, "who": who, "detail": detail, "reason": reason}


def _status_entry(s: Mapping[str, Any]) -> dict[str, Any]:
    return _entry(s.get("at"), f"status {s.get('status')}", "system", s.get("message"), s.get("reason"))


def _action_entry(a: Mapping[str, Any]) -> dict[str, Any]:
    who = f"{a.get('actor')} ({a.get('actor_role')})"
    event_type = str(a.get("event_type"))
    return _entry(a.get("occurred_at"), ACTION_NAMES.get(event_type, event_type), who, _action_detail(a))


def _update_entry(u: Mapping[str, Any]) -> dict[str, Any]:
    what = "case withdrawn" if u.get("withdrawn") else "case updated"
    detail = "changed: " + ", ".join(u.get("changed") or [])
    return _entry(u.get("occurred_at"), what, "customer (CRM)", detail)


def _refusal_entry(r: Mapping[str, Any]) -> dict[str, Any]:
    event_type = str(r.get("event_type"))
    what = f"{ACTION_NAMES.get(event_type, event_type)} refused by {r.get('refused_by')}"
    return _entry(r.get("refused_at"), what, str(r.get("refused_by")), r.get("detail"), r.get("reason"))


ACTION_NAMES = {
    "RequestAssigned": "Assignment",
    "RequestReleased": "Release",
    "NoteAdded": "Note",
    "ReclassificationRequested": "Reclassification",
    "RerouteRequested": "Re-route",
    "CustomerQuestionRequested": "Question to the customer",
    "ResolutionDecided": "Decision",
    "PostingRetryRequested": "Retry of a failed posting",
    "ClosureRequested": "Closing",
}
"""What a person calls each action of the console."""


def _public(refusal: Mapping[str, Any]) -> dict[str, Any]:
    shown = {key: value for key, value in refusal.items() if key != "_id"}
    event_type = str(refusal.get("event_type"))
    return {**shown, "action_name": ACTION_NAMES.get(event_type, event_type)}


def _decision_entry(d: Mapping[str, Any]) -> dict[str, Any]:
    who = f"{d.get('approver')} ({d.get('role')})"
    return _entry(d.get("decided_at"), f"approval: {d.get('decision')}", who, d.get("comment"))


def _posting_entry(r: Mapping[str, Any]) -> dict[str, Any]:
    detail = f"{money_text(r.get('amount'))} {r.get('resolution_id')}"
    return _entry(r.get("created_at"), f"posting {r.get('kind')}", "resolution", detail, r.get("reason_code"))


def _ack_entry(a: Mapping[str, Any]) -> dict[str, Any]:
    detail = a.get("erp_document_id") or a.get("error")
    return _entry(a.get("posted_at"), f"ERP {a.get('status')}", "ERP", detail)


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
