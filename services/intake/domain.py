"""Intake's domain: turn a CRM case or an email into a captured request. No I/O here.

Email understanding is deliberately simple at this stage: the sender's address, invoice and
payment numbers in the demo data's formats (and the usual typing variations), and a keyword
classification with a confidence. A request we cannot classify keeps ``request_type=None`` and is
routed to customer service for a person, never silently defaulted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from shared.contract import (
    Channel,
    CrmRequest,
    EmailRequest,
    RequestStatus,
    RequestStatusChanged,
    RequestType,
)
from shared.events import RequestCaptured, RequestDetails
from shared.identity import event_id_for, request_id_for
from shared.messages import status_changed

_INVOICE_NUMBER = re.compile(r"\binv(?:oice)?[\s#:._-]*(\d{4})[\s._-]*(\d{6})\b", re.IGNORECASE)
_PAYMENT_NUMBER = re.compile(r"\bpa?y(?:ment)?[\s#:._-]*(\d{4})[\s._-]*(\d{6})\b", re.IGNORECASE)

# Ordered: the first rule whose words appear wins; the confidence says how sure the words are.
_CLASSIFICATION_RULES: tuple[tuple[RequestType, re.Pattern[str], float], ...] = (
    (RequestType.CREDIT_LIMIT_CHANGE, re.compile(r"credit[\s-]*limit", re.I), 0.9),
    (RequestType.REFUND, re.compile(r"\brefund", re.I), 0.85),
    (RequestType.WRITE_OFF, re.compile(r"write[\s-]*off", re.I), 0.85),
    (
        RequestType.BILLING_DISPUTE,
        re.compile(r"overcharg|dispute|wrong (price|amount)|incorrect (price|amount)|billed twice", re.I),
        0.8,
    ),
    (
        RequestType.INVOICE_CORRECTION,
        re.compile(r"correct(ion)? (the |our )?invoice|wrong address|PO number", re.I),
        0.7,
    ),
    (
        RequestType.PAYMENT_QUERY,
        re.compile(r"payment.*(not|never).*(posted|applied|received)|remittance|we (have )?paid", re.I),
        0.75,
    ),
    (RequestType.CONTRACT_QUERY, re.compile(r"\bcontract\b", re.I), 0.6),
)
CONFIDENT_ENOUGH = 0.6


@dataclass(frozen=True)
class Capture:
    """What intake stores and publishes for a new request."""

    request_id: str
    captured: RequestCaptured
    received: RequestStatusChanged


def crm_request_id(case_id: str) -> str:
    """Our request id for a CRM or portal case."""
    return request_id_for("crm", case_id)


def email_request_id(message_id: str) -> str:
    """Our request id for an email that opens a request."""
    return request_id_for("email", normalize_message_id(message_id))


def parse_request_type(value: str | None) -> RequestType | None:
    """The CRM's type if it is one we know; absent or unknown means we classify."""
    try:
        return RequestType(value) if value else None
    except ValueError:
        return None


def capture_crm_request(case: CrmRequest, *, now: datetime) -> Capture:
    """A CRM or portal case becomes a request; its type is taken as given when it is known."""
    request_id = crm_request_id(case.case_id)
    request_type = parse_request_type(case.type)
    type_confidence = 1.0
    if request_type is None:
        request_type, type_confidence = classify(f"{case.subject}\n{case.description or ''}")
    details = RequestDetails(
        channel=Channel(case.channel),
        source_id=case.case_id,
        customer_id=case.customer_id,
        request_type=request_type,
        type_confidence=type_confidence,
        subject=case.subject,
        description=case.description,
        invoice_ids=tuple(case.invoice_ids),
        payment_ids=tuple(case.payment_ids),
        contract_id=case.contract_id,
        disputed_amount=case.disputed_amount,
        expected_amount=case.expected_amount,
        requested_credit_limit=case.requested_credit_limit,
        priority_hint=case.priority,
        contact=case.contact,
        attachments=tuple(case.attachments),
        submitted_at=case.submitted_at,
    )
    return _capture(request_id, details, now=now)


def capture_email(email: EmailRequest, *, now: datetime) -> Capture:
    """An email that is not a reply to a known request becomes a new request."""
    request_id = email_request_id(email.message_id)
    text = f"{email.subject}\n{email.body_text}"
    request_type, confidence = classify(text)
    _, address = parseaddr(email.sender)
    details = RequestDetails(
        channel=Channel.EMAIL,
        source_id=email.message_id,
        sender_email=address.lower() or None,
        request_type=request_type,
        type_confidence=confidence,
        subject=email.subject,
        description=email.body_text,
        invoice_ids=find_invoice_numbers(text),
        payment_ids=find_payment_numbers(text),
        attachments=tuple(email.attachments),
        submitted_at=email.received_at,
    )
    return _capture(request_id, details, now=now)


def _capture(request_id: str, details: RequestDetails, *, now: datetime) -> Capture:
    captured = RequestCaptured(
        event_id=event_id_for(request_id, "RequestCaptured"),
        request_id=request_id,
        correlation_id=details.source_id,
        occurred_at=now,
        details=details,
    )
    received = status_changed(
        request_id=request_id,
        channel=details.channel,
        source_id=details.source_id,
        customer_id=details.customer_id,
        status=RequestStatus.RECEIVED,
        message="We have received your request and will check it shortly.",
        at=now,
    )
    return Capture(request_id=request_id, captured=captured, received=received)


def find_invoice_numbers(text: str) -> tuple[str, ...]:
    """Invoice numbers such as ``INV-2026-000123``, ``inv 2026 000123`` or ``INV2026000123``."""
    found = (f"INV-{year}-{number}" for year, number in _INVOICE_NUMBER.findall(text))
    return tuple(dict.fromkeys(found))


def find_payment_numbers(text: str) -> tuple[str, ...]:
    """Payment numbers such as ``PAY-2026-000123`` in their usual variations."""
    found = (f"PAY-{year}-{number}" for year, number in _PAYMENT_NUMBER.findall(text))
    return tuple(dict.fromkeys(found))


def classify(text: str) -> tuple[RequestType | None, float]:
    """The request type the words suggest, with a confidence; ``None`` when nothing is clear."""
    for request_type, pattern, confidence in _CLASSIFICATION_RULES:
        if pattern.search(text):
            return (request_type, confidence) if confidence >= CONFIDENT_ENOUGH else (None, confidence)
    return None, 0.0


def normalize_message_id(value: str) -> str:
    """A Message-ID without its angle brackets, as gateways and mail clients vary on them."""
    return value.strip().strip("<>").strip()


def reply_of(email: EmailRequest) -> dict[str, Any]:
    """What is kept of a reply on the request it answers: who, what, and its attachments."""
    return {
        "message_id": normalize_message_id(email.message_id),
        "from": email.sender,
        "subject": email.subject,
        "body_text": email.body_text,
        "received_at": email.received_at.isoformat(),
        "attachments": [attachment.model_dump(mode="json") for attachment in email.attachments],
    }


def thread_message_ids(email: EmailRequest) -> tuple[str, ...]:
    """The earlier Message-IDs this email answers, from ``In-Reply-To`` and ``References``."""
    raw = " ".join([email.in_reply_to or "", *email.references]).split()
    return tuple(dict.fromkeys(normalize_message_id(item) for item in raw if normalize_message_id(item)))


def reject_unreadable(
    channel_group: str, payload: dict[str, Any], problems: str, *, now: datetime
) -> RequestStatusChanged | None:
    """The rejection of a message that does not match the contract, if its sender can be told.

    ``channel_group`` is ``crm`` (cases, identified by ``case_id``) or ``email`` (identified by
    ``message_id``); without a usable id there is nobody to tell, only the dead letter remains.
    """
    id_field = "case_id" if channel_group == "crm" else "message_id"
    raw_id = payload.get(id_field)
    if not isinstance(raw_id, str) or not raw_id.strip():
        return None
    source_id = raw_id.strip()
    if channel_group == "crm":
        channel = Channel.PORTAL if payload.get("channel") == "portal" else Channel.CRM
        request_id, what = crm_request_id(source_id), "request"
        customer_id = payload.get("customer_id") if isinstance(payload.get("customer_id"), str) else None
    else:
        channel, request_id, what, customer_id = Channel.EMAIL, email_request_id(source_id), "email", None
    return status_changed(
        request_id=request_id,
        channel=channel,
        source_id=source_id,
        customer_id=customer_id,
        status=RequestStatus.REJECTED,
        reason="invalid_request",
        message=f"We could not read this {what}: {problems}.",
        at=now,
    )
