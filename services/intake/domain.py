"""Intake's domain: turn a CRM case or an email into a captured request. No I/O here.

The request-id rules (``crm_request_id``, ``email_request_id``) live in :mod:`shared.identity`,
since audit and the `crs` tool apply them too; they are re-exported here.

What an email says (sender, documents, amounts, dates, type) is read by
:mod:`services.intake.email_understanding`; the CRM's free text is classified the same way when
the CRM gives no known type. A request we cannot classify keeps ``request_type=None`` and is routed
to customer service for a person, never silently defaulted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.intake.email_understanding import classify, understand_email, understand_text
from shared.contract import (
    Channel,
    CrmRequest,
    EmailRequest,
    RequestStatus,
    RequestStatusChanged,
    RequestType,
)
from shared.events import RequestCaptured, RequestDetails
from shared.identity import crm_request_id as crm_request_id  # noqa: PLC0414 - re-exported
from shared.identity import email_request_id as email_request_id  # noqa: PLC0414 - re-exported
from shared.identity import event_id_for
from shared.identity import normalize_message_id as normalize_message_id  # noqa: PLC0414 - re-exported
from shared.messages import status_changed


@dataclass(frozen=True)
class Capture:
    """What intake stores and publishes for a new request."""

    request_id: str
    captured: RequestCaptured
    received: RequestStatusChanged


def parse_request_type(value: str | None) -> RequestType | None:
    """The CRM's type if it is one we know; absent or unknown means we classify."""
    try:
        return RequestType(value) if value else None
    except ValueError:
        return None


def capture_crm_request(case: CrmRequest, *, now: datetime) -> Capture:
    """A CRM or portal case becomes a request; its type is taken as given when it is known.

    Without a known type the subject and description are classified (the case's documents count
    as evidence). The CRM's structured fields stay as given; what the subject and description say
    is added beside them: invoice and payment number candidates (which validation resolves against
    the customer's documents), amounts with their roles, dates (relative ones from the day the case
    was submitted) and the payment date. An amount the text gives a role fills the structured
    field only where the CRM left it empty: payment details given only in the text count as given.
    """
    request_id = crm_request_id(case.case_id)
    request_type = parse_request_type(case.type)
    type_confidence = 1.0
    type_evidence: tuple[str, ...] = ()
    text = f"{case.subject}\n{case.description or ''}"
    facts = understand_text(text, today=case.submitted_at.date())
    if request_type is None:
        classification = classify(
            case.description or "",
            subject=case.subject,
            invoice_ids=tuple(case.invoice_ids) or facts.invoice_candidates,
            payment_ids=tuple(case.payment_ids) or facts.payment_candidates,
            contract_ids=(case.contract_id,) if case.contract_id else (),
        )
        request_type = classification.request_type
        type_confidence, type_evidence = classification.confidence, classification.evidence
    details = RequestDetails(
        channel=Channel(case.channel),
        source_id=case.case_id,
        customer_id=case.customer_id,
        request_type=request_type,
        type_confidence=type_confidence,
        type_evidence=type_evidence,
        subject=case.subject,
        description=case.description,
        invoice_ids=tuple(case.invoice_ids),
        payment_ids=tuple(case.payment_ids),
        contract_id=case.contract_id,
        disputed_amount=case.disputed_amount or facts.amounts.disputed,
        expected_amount=case.expected_amount or facts.amounts.expected,
        requested_credit_limit=case.requested_credit_limit or facts.amounts.requested_credit_limit,
        mentioned_amounts=facts.amounts.mentioned,
        mentioned_dates=facts.dates,
        invoice_candidates=_not_structured(facts.invoice_candidates, case.invoice_ids),
        payment_candidates=_not_structured(facts.payment_candidates, case.payment_ids),
        loose_candidates=_not_structured(facts.loose_candidates, [*case.invoice_ids, *case.payment_ids]),
        stated_amounts=facts.amounts.stated,
        paid_amount=facts.amounts.paid,
        payment_date=facts.payment_date,
        priority_hint=case.priority,
        contact=case.contact,
        attachments=tuple(case.attachments),
        submitted_at=case.submitted_at,
    )
    return _capture(request_id, details, now=now)


def capture_email(email: EmailRequest, *, now: datetime, follows_up: str | None = None) -> Capture:
    """An email that is not a reply to a known request becomes a new request.

    The customer is not known yet: validation finds it from ``sender_email``, then resolves the
    invoice and payment numbers the email names (``invoice_candidates``, in any format) against
    that customer's documents. An email has no structured document fields: ``invoice_ids`` stays
    empty until validation has resolved the candidates.
    """
    request_id = email_request_id(email.message_id)
    understood = understand_email(
        subject=email.subject,
        body_text=email.body_text,
        sender=email.sender,
        received_on=email.received_at.date(),
    )
    details = RequestDetails(
        channel=Channel.EMAIL,
        source_id=email.message_id,
        sender_email=understood.sender_email,
        sender_name=understood.sender_name,
        request_type=understood.request_type,
        type_confidence=understood.type_confidence,
        type_evidence=understood.type_evidence,
        subject=email.subject,
        description=email.body_text,
        invoice_candidates=understood.invoice_candidates,
        payment_candidates=understood.payment_candidates,
        loose_candidates=understood.loose_candidates,
        contract_id=understood.contract_ids[0] if understood.contract_ids else None,
        disputed_amount=understood.disputed_amount,
        expected_amount=understood.expected_amount,
        requested_credit_limit=understood.requested_credit_limit,
        mentioned_amounts=understood.mentioned_amounts,
        mentioned_dates=understood.mentioned_dates,
        stated_amounts=understood.stated_amounts,
        paid_amount=understood.paid_amount,
        payment_date=understood.payment_date,
        attachments=tuple(email.attachments),
        submitted_at=email.received_at,
    )
    return _capture(request_id, details, now=now, follows_up=follows_up)


def _not_structured(candidates: tuple[str, ...], structured: list[str]) -> tuple[str, ...]:
    """Candidates from the text that do not just repeat a number the CRM gave in its fields."""
    given = {number.strip().upper() for number in structured}
    return tuple(candidate for candidate in candidates if candidate.strip().upper() not in given)


def _capture(
    request_id: str, details: RequestDetails, *, now: datetime, follows_up: str | None = None
) -> Capture:
    captured = RequestCaptured(
        event_id=event_id_for(request_id, "RequestCaptured"),
        request_id=request_id,
        correlation_id=details.source_id,
        occurred_at=now,
        details=details,
        follows_up=follows_up,
    )
    received = status_changed(
        request_id=request_id,
        channel=details.channel,
        source_id=details.source_id,
        customer_id=details.customer_id,
        status=RequestStatus.RECEIVED,
        message=follow_up_message(follows_up)
        if follows_up
        else "We have received your request and will check it shortly.",
        at=now,
    )
    return Capture(request_id=request_id, captured=captured, received=received)


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


VOLATILE_CASE_FIELDS = frozenset({"updated_at"})
"""Fields of a case that change without its content changing: left out of its fingerprint."""


def case_content(case: CrmRequest) -> dict[str, Any]:
    """What a case says, as the contract names its fields, without the volatile ones."""
    return case.model_dump(mode="json", exclude=set(VOLATILE_CASE_FIELDS))


def case_fingerprint(case: CrmRequest) -> str:
    """The fingerprint of a case's content: the same content, the same fingerprint.

    Taken over the case as the contract reads it (unknown extra fields are ignored, as everywhere),
    without ``updated_at``: a CRM that touches a case without changing it, or a gateway that sends
    it again, changes nothing.
    """
    canonical = json.dumps(case_content(case), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of a case whose values differ between two versions (all of them when the
    earlier version is not known)."""
    if before is None:
        return tuple(sorted(name for name, value in after.items() if value not in (None, [], False)))
    names = sorted({*before, *after})
    return tuple(name for name in names if before.get(name) != after.get(name))


def capture_withdrawn_case(case: CrmRequest, *, now: datetime) -> RequestStatusChanged:
    """A case whose first message already says it was withdrawn: closed at once, nothing to check."""
    return status_changed(
        request_id=crm_request_id(case.case_id),
        channel=Channel(case.channel),
        source_id=case.case_id,
        customer_id=case.customer_id,
        status=RequestStatus.CLOSED,
        reason="withdrawn",
        message="You withdrew this request before we started on it; it is closed.",
        at=now,
    )


_AUTOMATIC_SUBJECTS = re.compile(
    r"^\s*(automatic reply|auto(matische)?[- ]?(reply|antwort)|auto:|out of (the )?office|"
    r"abwesenheitsnotiz|abwesend|r[ée]ponse automatique|absence|autosvar|afwezig|risposta automatica|"
    r"respuesta autom[áa]tica|fuera de la oficina)",
    re.IGNORECASE,
)


def is_automatic_reply(email: EmailRequest) -> bool:
    """Whether an email is an automatic reply (out of office): it answers no question."""
    return bool(_AUTOMATIC_SUBJECTS.match(email.subject))


def follow_up_message(earlier_request_id: str) -> str:
    """The ``received`` message of a request opened by a late reply to a closed one."""
    return (
        f"We have received your message. Your earlier request {earlier_request_id} was closed some "
        "time ago, so we have opened this new request for it, linked to the earlier one."
    )
