"""The records the other services publish about a request, built for tests that feed the topics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contract import Channel, Contact, Priority, RequestStatus, RequestStatusChanged, RequestType
from shared.events import (
    CheckResult,
    CustomerSnapshot,
    InvoiceSnapshot,
    RequestCaptured,
    RequestDetails,
    RequestRouted,
    RequestValidated,
)
from shared.identity import event_id_for
from shared.money import Money
from shared.topics import (
    REQUEST_CAPTURED,
    REQUEST_ROUTED,
    REQUEST_STATUS,
    REQUEST_VALIDATED,
)

Record = tuple[str, str, Any]
QUEUE_OF = {
    "billing_dispute": "accounts_receivable",
    "payment_query": "cash_application",
    "credit_limit_change": "credit_control",
    "refund": "collections",
    "service_request": "customer_service",
}


def status(
    request_id: str,
    state: RequestStatus,
    at: datetime,
    *,
    customer_id: str = "CUST-1",
    reason: str | None = None,
    message: str = "",
    queue: str | None = None,
    priority: str | None = None,
    sla_due_at: datetime | None = None,
    occurrence: str = "",
) -> Record:
    change = RequestStatusChanged(
        event_id=event_id_for(request_id, "status", state.value, reason or "", occurrence),
        request_id=request_id,
        channel=Channel.CRM,
        source_id=f"CASE-{request_id}",
        customer_id=customer_id,
        status=state,
        reason=reason,
        message=message or f"{state.value}",
        queue=queue,
        priority=Priority(priority) if priority else None,
        sla_due_at=sla_due_at,
        at=at,
    )
    return (REQUEST_STATUS, request_id, change.model_dump(mode="json"))


def routed_request(
    request_id: str,
    *,
    request_type: str = "billing_dispute",
    customer_id: str = "CUST-1",
    customer_name: str = "Acme Logistics GmbH",
    amount: str | None = "500.00",
    credit_limit: str | None = None,
    at: datetime | None = None,
    sla_hours: float = 24,
    priority: str = "normal",
    contact_email: str = "jane@acme.example",
    subject: str = "Invoice above our contract price",
    due: datetime | None = None,
    invoice_id: str = "INV-2026-000123",
) -> list[Record]:
    """Captured, validated (with checks), routed, and the statuses received, validated, routed."""
    at = at or datetime.now(UTC)
    queue = QUEUE_OF[request_type]
    details = RequestDetails(
        channel=Channel.CRM,
        source_id=f"CASE-{request_id}",
        customer_id=customer_id,
        request_type=RequestType(request_type),
        subject=subject,
        description="Cloud storage is billed at 600.00 per unit; our contract says 500.00.",
        invoice_ids=(invoice_id,),
        disputed_amount=Money(amount=amount, currency="USD") if amount else None,
        requested_credit_limit=Money(amount=credit_limit, currency="USD") if credit_limit else None,
        contact=Contact(name="Jane Doe", email=contact_email),
        submitted_at=at,
    )
    customer = CustomerSnapshot(
        customer_id=customer_id,
        name=customer_name,
        status="active",
        kyc_status="verified",
        tier="standard",
        credit_limit=Money(amount="50000.00", currency="USD"),
        updated_at=at,
    )
    invoice = InvoiceSnapshot(
        invoice_id=invoice_id,
        total=Money(amount="4709.08", currency="USD"),
        open_amount=Money(amount="4709.08", currency="USD"),
        status="open",
    )
    due = due or at + timedelta(hours=sla_hours * 3)  # the workspace takes routing's due time as given
    captured = RequestCaptured(
        event_id=event_id_for(request_id, "RequestCaptured"),
        request_id=request_id,
        correlation_id=details.source_id,
        occurred_at=at,
        details=details,
    )
    validated = RequestValidated(
        event_id=event_id_for(request_id, "RequestValidated"),
        request_id=request_id,
        correlation_id=details.source_id,
        occurred_at=at + timedelta(seconds=1),
        details=details,
        customer_id=customer_id,
        customer_tier="standard",
        customer=customer,
        invoices=(invoice,),
        checks=(
            CheckResult(check="customer_exists", passed=True, detail=customer_id),
            CheckResult(check="invoice_owned", passed=True, detail=invoice_id),
        ),
    )
    routed = RequestRouted(
        event_id=event_id_for(request_id, "RequestRouted"),
        request_id=request_id,
        correlation_id=details.source_id,
        occurred_at=at + timedelta(seconds=2),
        details=details,
        customer_id=customer_id,
        customer_tier="standard",
        invoices=(invoice,),
        queue=queue,
        priority=Priority(priority),
        sla_due_at=due,
        rule_version="routing-test",
    )
    return [
        (REQUEST_CAPTURED, request_id, captured.model_dump(mode="json")),
        status(request_id, RequestStatus.RECEIVED, at, customer_id=customer_id),
        (REQUEST_VALIDATED, request_id, validated.model_dump(mode="json")),
        status(request_id, RequestStatus.VALIDATED, at + timedelta(seconds=1), customer_id=customer_id),
        (REQUEST_ROUTED, request_id, routed.model_dump(mode="json")),
        status(
            request_id,
            RequestStatus.ROUTED,
            at + timedelta(seconds=2),
            customer_id=customer_id,
            queue=queue,
            priority=priority,
            sla_due_at=due,
            message=f"Your request is with our {queue.replace('_', ' ')} team.",
        ),
    ]


def awaiting_approval(
    request_id: str,
    at: datetime,
    *,
    roles: str = "a team lead",
    queue: str = "credit_control",
    customer_id: str = "CUST-1",
) -> Record:
    """Resolution's awaiting_approval status, worded as resolution words it."""
    return status(
        request_id,
        RequestStatus.AWAITING_APPROVAL,
        at,
        customer_id=customer_id,
        queue=queue,
        message=(
            "The credit limit of 50,000.00 USD would become 58,000.00 USD (+8,000.00 USD). "
            "Before it is posted, "
            f"approval is needed by {roles} (policy approvals-2026.11)."
        ),
    )
