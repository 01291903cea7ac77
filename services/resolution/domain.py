"""Finance resolution: what the ERP must post for a routed request. Pure functions, no I/O.

At this stage one strategy is automatic: a billing dispute (or invoice correction) about one
invoice, where the customer says what the invoice should be and that is below its total, gets a
credit memo for the difference. Everything else waits in its queue for a person, and so does
a dispute by email: an expected amount read out of free text is not a structured claim to post on
(issue 4 replaces trusting the customer's figure with repricing against the contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contract import Channel, ErpAck, ErpResolution, RequestStatus, RequestType, ResolutionKind
from shared.events import RequestRouted
from shared.identity import stable_id

AUTOMATIC_CREDIT_TYPES = frozenset({RequestType.BILLING_DISPUTE, RequestType.INVOICE_CORRECTION})


@dataclass(frozen=True)
class Decision:
    """A resolution to post (or none) and the status change it means for the customer."""

    resolution: ErpResolution | None
    status: RequestStatus
    message: str
    reason: str | None = None


def resolution_id_for(request_id: str, kind: ResolutionKind, document_id: str) -> str:
    """Stable across redelivery and restarts: the ERP's idempotency key."""
    return "RES-" + stable_id("resolution", request_id, kind.value, document_id)[:18].upper()


def resolve(event: RequestRouted, *, now: datetime) -> Decision | None:
    """The automatic resolution of a routed request, or ``None`` when a person must decide."""
    details = event.details
    expected = details.expected_amount
    if details.request_type not in AUTOMATIC_CREDIT_TYPES or expected is None or len(event.invoices) != 1:
        return None
    if details.channel is Channel.EMAIL:
        return None
    invoice = event.invoices[0]
    if expected.currency != invoice.total.currency or not (0 <= expected.amount < invoice.total.amount):
        return None
    credit = invoice.total - expected
    resolution = ErpResolution(
        resolution_id=resolution_id_for(event.request_id, ResolutionKind.CREDIT_MEMO, invoice.invoice_id),
        request_id=event.request_id,
        customer_id=event.customer_id,
        kind=ResolutionKind.CREDIT_MEMO,
        invoice_id=invoice.invoice_id,
        amount=credit,
        original_amount=invoice.total,
        corrected_amount=expected,
        reason_code=details.request_type.value if details.request_type else "billing_dispute",
        effective_on=now.date(),
        created_at=now,
    )
    return Decision(
        resolution=resolution,
        status=RequestStatus.RESOLVED,
        message=(
            f"We have issued a credit memo of {credit} against invoice {invoice.invoice_id} "
            f"(from {invoice.total} to {expected})."
        ),
    )


def acknowledge(ack: ErpAck) -> Decision:
    """What the ERP's answer means: posted closes the request, failed puts it back to its queue."""
    if ack.status == "posted":
        document = f" as document {ack.erp_document_id}" if ack.erp_document_id else ""
        return Decision(
            None, RequestStatus.CLOSED, f"Your credit has been posted{document}. This request is closed."
        )
    return Decision(
        None,
        RequestStatus.ROUTED,
        "We hit a problem recording your credit and a colleague is looking into it.",
        reason="erp_posting_failed",
    )
