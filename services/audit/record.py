"""The Customer Request Record: one request's whole story, assembled from audit's entries alone.

Audit keeps the exact text of every record of a request, so the record shows what each step
actually said, not what a service's own view holds now: the request as the gateway sent it, the
checks validation ran, the routing decision, every status change, the resolution and the ERP's
answer, each with when it happened and when audit recorded it. Times inside messages are kept as
the messages wrote them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class RecordPart(BaseModel):
    """Where a part of the record comes from: the entry's place in the request's chain."""

    model_config = ConfigDict(frozen=True)

    sequence: int
    topic: str
    recorded_at: datetime


class Received(RecordPart):
    """A message as the CRM, the portal or the email gateway published it."""

    message: dict[str, Any]


class Captured(RecordPart):
    """What intake understood: the request's details as captured."""

    occurred_at: str | None
    details: dict[str, Any]


class Validation(RecordPart):
    """One verdict of validation, with the customer it found and every check it ran.

    A request can have several: held (and what it waited for), then validated or rejected.
    """

    occurred_at: str | None
    verdict: str | None
    reason: str | None
    customer_id: str | None
    customer_tier: str | None
    customer: dict[str, Any] | None = Field(
        default=None, description="The customer master's record as validation saw it at the time"
    )
    checks: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    waiting_for: list[str] = Field(default_factory=list)
    duplicate_of: str | None = None


class Routing(RecordPart):
    """The routing decision and the rule version that made it."""

    occurred_at: str | None
    queue: str | None
    priority: str | None
    sla_due_at: str | None
    rule_version: str | None


class StatusChange(RecordPart):
    """One status the customer was told."""

    at: str | None
    status: str | None
    reason: str | None
    message: str | None
    queue: str | None
    priority: str | None
    sla_due_at: str | None
    duplicate_of: str | None = None


class Posted(RecordPart):
    """A resolution sent to the ERP, the ERP's acknowledgement, or an approval: the message itself."""

    message: dict[str, Any]


class CustomerRequestRecord(BaseModel):
    """Everything audit holds about one request, in the order it happened."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    customer_id: str | None
    entries: int
    unreadable: int = Field(description="Entries of this request whose text is not a JSON object")
    received: list[Received] = Field(default_factory=list)
    captured: Captured | None = None
    validations: list[Validation] = Field(default_factory=list)
    routing: Routing | None = None
    status_changes: list[StatusChange] = Field(default_factory=list)
    resolutions: list[Posted] = Field(default_factory=list)
    erp_acks: list[Posted] = Field(default_factory=list)
    approvals: list[Posted] = Field(default_factory=list)
    replies: list[Posted] = Field(default_factory=list, description="Email replies added to the request")
    chain_intact: bool = True
    chain_break: str | None = Field(default=None, description="The first break of the chain, if any")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def assemble_record(
    request_id: str, entries: Iterable[Mapping[str, Any]], *, chain_break: str | None = None
) -> CustomerRequestRecord:
    """The record of ``request_id`` from its audit entries (in sequence order).

    A message delivered twice is audited twice; the record shows it once (events by their
    ``event_id``, resolutions by their ``resolution_id``).
    """
    parts: dict[str, Any] = {
        "received": [],
        "status_changes": [],
        "resolutions": [],
        "erp_acks": [],
        "approvals": [],
        "validations": [],
        "replies": [],
    }
    seen: set[str] = set()
    count = unreadable = 0
    customer_id: str | None = None
    for entry in entries:
        count += 1
        try:
            payload = json.loads(entry.get("text") or "")
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            unreadable += 1
            continue
        identity = _text(payload.get("event_id")) or _text(payload.get("resolution_id"))
        if entry.get("topic") == ERP_ACKS:
            identity = f"ack:{identity}:{payload.get('status')}:{payload.get('posted_at')}"
        if identity is not None:
            if identity in seen:
                continue
            seen.add(identity)
        where = {"sequence": entry["sequence"], "topic": entry["topic"], "recorded_at": entry["recorded_at"]}
        customer_id = _text(payload.get("customer_id")) or customer_id
        _add(parts, where, payload)
    return CustomerRequestRecord(
        request_id=request_id,
        customer_id=customer_id,
        entries=count,
        unreadable=unreadable,
        chain_intact=chain_break is None,
        chain_break=chain_break,
        **parts,
    )


def _add(parts: dict[str, Any], where: dict[str, Any], payload: dict[str, Any]) -> None:
    topic = where["topic"]
    if topic in (CRM_REQUESTS, EMAIL_REQUESTS):
        parts["received"].append(Received(**where, message=payload))
    elif topic == REQUEST_CAPTURED:
        details = payload.get("details")
        parts["captured"] = Captured(
            **where,
            occurred_at=_text(payload.get("occurred_at")),
            details=details if isinstance(details, dict) else {},
        )
    elif topic in (REQUEST_VALIDATED, REQUEST_SET_ASIDE):
        waiting_for = payload.get("waiting_for")
        parts["validations"].append(
            Validation(
                **where,
                occurred_at=_text(payload.get("occurred_at")),
                verdict="validated" if topic == REQUEST_VALIDATED else _text(payload.get("verdict")),
                reason=_text(payload.get("reason")),
                customer_id=_text(payload.get("customer_id")),
                customer_tier=_text(payload.get("customer_tier")),
                customer=customer if isinstance(customer := payload.get("customer"), dict) else None,
                checks=_objects(payload.get("checks")),
                invoices=_objects(payload.get("invoices")),
                waiting_for=[item for item in waiting_for if isinstance(item, str)]
                if isinstance(waiting_for, list)
                else [],
                duplicate_of=_text(payload.get("duplicate_of")),
            )
        )
    elif topic == REQUEST_ROUTED:
        parts["routing"] = Routing(
            **where,
            occurred_at=_text(payload.get("occurred_at")),
            **{
                name: _text(payload.get(name)) for name in ("queue", "priority", "sla_due_at", "rule_version")
            },
        )
    elif topic == REQUEST_STATUS:
        parts["status_changes"].append(
            StatusChange(
                **where,
                **{
                    name: _text(payload.get(name))
                    for name in (
                        "at",
                        "status",
                        "reason",
                        "message",
                        "queue",
                        "priority",
                        "sla_due_at",
                        "duplicate_of",
                    )
                },
            )
        )
    elif topic == ERP_RESOLUTIONS:
        parts["resolutions"].append(Posted(**where, message=payload))
    elif topic == ERP_ACKS:
        parts["erp_acks"].append(Posted(**where, message=payload))
    elif topic == APPROVALS:
        parts["approvals"].append(Posted(**where, message=payload))
    elif topic == REQUEST_UPDATED:
        parts["replies"].append(Posted(**where, message=payload))


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
