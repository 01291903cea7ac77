"""Audit's domain: which request a record on a request topic belongs to, and what it says.

Audit records every record of every request topic as it was received (the exact text), with
where it came from. It does not judge: an unreadable record is kept too, unattributed, since the
owning service dead-letters it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.identity import crm_request_id, email_request_id, normalize_message_id
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_STATUS


@dataclass(frozen=True)
class AuditFacts:
    """What an audit entry says about a record beyond its text."""

    request_id: str | None
    event_type: str
    status: str | None = None
    customer_id: str | None = None


def facts_of(topic: str, text: str) -> AuditFacts:
    """Attribute a record to its request and name what happened."""
    try:
        payload: Any = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, a number too long, nested too deep
        return AuditFacts(request_id=None, event_type="unreadable")
    if not isinstance(payload, dict):
        return AuditFacts(request_id=None, event_type="unreadable")
    customer_id = _text(payload.get("customer_id"))
    if topic == CRM_REQUESTS:
        case_id = _text(payload.get("case_id"))
        request_id = crm_request_id(case_id.strip()) if case_id else None
        return AuditFacts(request_id, "CrmRequestReceived", customer_id=customer_id)
    if topic == EMAIL_REQUESTS:
        message_id = _text(payload.get("message_id"))
        request_id = email_request_id(message_id) if message_id and normalize_message_id(message_id) else None
        return AuditFacts(request_id, "EmailReceived")
    request_id = _text(payload.get("request_id"))
    if topic == REQUEST_STATUS:
        status = _text(payload.get("status"))
        return AuditFacts(request_id, "RequestStatusChanged", status=status, customer_id=customer_id)
    event_type = _text(payload.get("event_type")) or topic
    return AuditFacts(request_id, event_type, customer_id=customer_id)


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        value.encode()
    except UnicodeError:  # an unpaired surrogate identifies nothing and cannot be stored
        return None
    return value
