"""Finance resolution: from a proposal to the ERP posting and the statuses. Pure functions, no I/O.

The strategies (``strategies.py``) decide what a request deserves; the approval policy
(``policy.py``) and the approvals (``approvals.py``) decide when it may be posted; this module
builds the posting with its stable ``resolution_id`` and reads the ERP's answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.resolution.approvals import RecordedApproval
from services.resolution.strategies import Posting
from shared.contract import ErpAck, ErpResolution, RequestStatus, ResolutionApproval, ResolutionKind
from shared.events import RequestRouted
from shared.identity import stable_id

KIND_NAMES = {
    ResolutionKind.CREDIT_MEMO: "credit memo",
    ResolutionKind.INVOICE_CORRECTION: "invoice correction",
    ResolutionKind.PAYMENT_ALLOCATION: "payment allocation",
    ResolutionKind.CREDIT_LIMIT_UPDATE: "credit limit update",
    ResolutionKind.WRITE_OFF: "write-off",
    ResolutionKind.REFUND: "refund",
}


@dataclass(frozen=True)
class Decision:
    """A status change for the customer, with its machine reason."""

    status: RequestStatus
    message: str
    reason: str | None = None


def resolution_id_for(request_id: str, kind: ResolutionKind, document_id: str) -> str:
    """Stable across redelivery and restarts: the ERP's idempotency key."""
    return "RES-" + stable_id("resolution", request_id, kind.value, document_id)[:18].upper()


def retry_resolution_id(failed_id: str, retry_event_id: str) -> str:
    """The id of a failed posting sent again: new for the ERP, the same for the same retry."""
    return "RES-" + stable_id("resolution-retry", failed_id, retry_event_id)[:18].upper()


def requesters_of(event: RequestRouted) -> frozenset[str]:
    """Who asked: the contact, the email sender and the customer. They may not approve it."""
    details = event.details
    candidates: Iterable[str | None] = (
        details.contact.email if details.contact else None,
        details.sender_email,
        event.customer_id,
    )
    return frozenset(candidate.strip().lower() for candidate in candidates if candidate)


def build_resolution(
    event: RequestRouted, posting: Posting, *, approvals: Iterable[RecordedApproval], now: datetime
) -> ErpResolution:
    """The posting as the ERP receives it; the same request and posting give the same id."""
    return ErpResolution(
        resolution_id=resolution_id_for(event.request_id, posting.kind, posting.document_id),
        request_id=event.request_id,
        customer_id=event.customer_id,
        kind=posting.kind,
        invoice_id=posting.invoice_id,
        payment_id=posting.payment_id,
        amount=posting.amount,
        original_amount=posting.original_amount,
        corrected_amount=posting.corrected_amount,
        reason_code=posting.reason_code,
        approvals=[
            ResolutionApproval.model_validate(
                {"approver": approval.approver, "role": approval.role, "decided_at": approval.decided_at}
            )
            for approval in approvals
        ],
        effective_on=now.date(),
        created_at=now,
    )


def acknowledge(ack: ErpAck, kind: ResolutionKind | None = None) -> Decision:
    """What the ERP's answer means: posted closes the request, failed puts it back to its queue."""
    what = KIND_NAMES.get(kind, "resolution") if kind is not None else "resolution"
    if ack.status == "posted":
        document = f" as document {ack.erp_document_id}" if ack.erp_document_id else ""
        return Decision(
            RequestStatus.CLOSED, f"Your {what} has been posted{document}. This request is closed."
        )
    error = f": {ack.error}" if ack.error else ""
    return Decision(
        RequestStatus.ROUTED,
        f"The ERP could not post the {what} {ack.resolution_id}{error}. A colleague is looking into it.",
        reason="erp_posting_failed",
    )


def all_posted(count: int, documents: list[str]) -> Decision:
    """The last of a request's several postings is posted: the request is closed."""
    posted = f" as documents {', '.join(documents)}" if documents else ""
    return Decision(
        RequestStatus.CLOSED,
        f"All {count} postings of this request have been posted{posted}. This request is closed.",
    )
