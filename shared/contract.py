"""Pydantic models of every public topic in the external contract (``../shared/CONTRACT.md``).

Inbound models ignore unknown extra fields (the contract promises that) and are frozen. Money is
:class:`shared.money.Money`; timestamps must carry a zone. Outbound models are what we publish
and what the ERP and the CRM read.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.money import Amount, CurrencyCode, Money

Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=1_000)]
LongText = Annotated[str, StringConstraints(max_length=100_000)]


class ContractModel(BaseModel):
    """Base of every contract message: frozen, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class RequestType(StrEnum):
    """What the customer asks for."""

    BILLING_DISPUTE = "billing_dispute"
    INVOICE_CORRECTION = "invoice_correction"
    PAYMENT_QUERY = "payment_query"
    CREDIT_LIMIT_CHANGE = "credit_limit_change"
    REFUND = "refund"
    WRITE_OFF = "write_off"
    ACCOUNT_UPDATE = "account_update"
    CONTRACT_QUERY = "contract_query"
    SERVICE_REQUEST = "service_request"


class Priority(StrEnum):
    """The urgency of a request, from the agent's hint or from routing."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Channel(StrEnum):
    """Where a request came in."""

    CRM = "crm"
    PORTAL = "portal"
    EMAIL = "email"


class Contact(ContractModel):
    """A person at the customer."""

    name: ShortText | None = None
    email: ShortText | None = None


class Attachment(ContractModel):
    """Metadata of an attachment; the content stays with the gateway."""

    filename: ShortText
    content_type: ShortText | None = None
    size: int | None = Field(default=None, ge=0)
    sha256: ShortText | None = None
    uri: ShortText | None = None


class CrmRequest(ContractModel):
    """``crm.requests.v1`` (key ``case_id``): a request from the CRM gateway or the portal."""

    case_id: Identifier = Field(description="The CRM's id of the case; idempotency key")
    channel: Literal["crm", "portal"] = "crm"
    customer_id: Identifier
    type: ShortText | None = Field(default=None, description="A RequestType; absent or unknown: we classify")
    subject: ShortText
    description: LongText | None = None
    invoice_ids: list[Identifier] = Field(default_factory=list, max_length=100)
    payment_ids: list[Identifier] = Field(default_factory=list, max_length=100)
    contract_id: Identifier | None = None
    disputed_amount: Money | None = None
    expected_amount: Money | None = None
    requested_credit_limit: Money | None = None
    priority: Priority | None = None
    contact: Contact | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    submitted_at: AwareDatetime


class EmailRequest(ContractModel):
    """``email.requests.v1`` (key ``message_id``): one email from the gateway, MIME decoded."""

    message_id: Identifier = Field(description="RFC 5322 Message-ID; idempotency key")
    sender: ShortText = Field(alias="from", description='"Jane Doe <jane@acme.example>"')
    to: list[ShortText] = Field(min_length=1, max_length=100)
    cc: list[ShortText] = Field(default_factory=list, max_length=100)
    subject: ShortText
    body_text: LongText
    in_reply_to: ShortText | None = None
    references: list[ShortText] = Field(default_factory=list, max_length=200)
    received_at: AwareDatetime
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)


class ReferenceRecord(ContractModel):
    """Base of the reference-data records: the latest ``updated_at`` per key is current."""

    updated_at: AwareDatetime


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    CLOSED = "closed"


class KycStatus(StrEnum):
    VERIFIED = "verified"
    PENDING = "pending"
    EXPIRED = "expired"
    FAILED = "failed"


class Customer(ReferenceRecord):
    """``customers.master.v1`` (key ``customer_id``): the latest message per key is current."""

    customer_id: Identifier
    name: ShortText
    status: CustomerStatus
    kyc_status: KycStatus
    kyc_expires_on: date | None = None
    credit_limit: Money | None = None
    tier: Literal["strategic", "key", "standard"] = "standard"
    contacts: list[Contact] = Field(default_factory=list, max_length=1_000)


class InvoiceLine(ContractModel):
    """One line of an invoice."""

    sku: ShortText
    description: ShortText | None = None
    quantity: Amount
    unit_price: Amount


class Invoice(ReferenceRecord):
    """``erp.invoices.v1`` (key ``invoice_id``)."""

    invoice_id: Identifier
    customer_id: Identifier
    contract_id: Identifier | None = None
    issued_on: date
    due_on: date | None = None
    currency: CurrencyCode
    lines: list[InvoiceLine] = Field(default_factory=list, max_length=10_000)
    total: Money
    open_amount: Money
    status: Literal["open", "partially_paid", "paid", "cancelled"]


class PaymentApplication(ContractModel):
    invoice_id: Identifier
    amount: Amount


class Payment(ReferenceRecord):
    """``erp.payments.v1`` (key ``payment_id``)."""

    payment_id: Identifier
    customer_id: Identifier
    amount: Money
    received_on: date
    reference: ShortText | None = None
    status: Literal["unapplied", "applied"]
    applied_to: list[PaymentApplication] = Field(default_factory=list, max_length=10_000)


class ContractPrice(ContractModel):
    sku: ShortText
    unit_price: Amount


class CustomerContract(ReferenceRecord):
    """``erp.contracts.v1`` (key ``contract_id``)."""

    contract_id: Identifier
    customer_id: Identifier
    valid_from: date
    valid_to: date | None = None
    currency: CurrencyCode
    prices: list[ContractPrice] = Field(default_factory=list, max_length=10_000)
    payment_terms_days: int | None = None


class ApprovalDecision(ContractModel):
    """``requests.approvals.v1`` (key ``request_id``), published by the approval tools."""

    request_id: Identifier
    decision: Literal["approve", "reject"]
    approver: Identifier
    role: ShortText
    comment: ShortText | None = None
    decided_at: AwareDatetime


class ErpAck(ContractModel):
    """``erp.acks.v1`` (key ``request_id``): the ERP's answer to a resolution."""

    resolution_id: Identifier
    request_id: Identifier
    status: Literal["posted", "failed"]
    erp_document_id: ShortText | None = None
    error: ShortText | None = None
    posted_at: AwareDatetime | None = None


class ResolutionKind(StrEnum):
    CREDIT_MEMO = "credit_memo"
    INVOICE_CORRECTION = "invoice_correction"
    PAYMENT_ALLOCATION = "payment_allocation"
    CREDIT_LIMIT_UPDATE = "credit_limit_update"
    WRITE_OFF = "write_off"
    REFUND = "refund"


class ResolutionApproval(ContractModel):
    approver: str
    role: str
    decided_at: AwareDatetime


class ErpResolution(ContractModel):
    """``erp.resolutions.v1`` (key ``request_id``): what the ERP must post.

    ``resolution_id`` is stable across redelivery and restarts: it is the ERP's idempotency key.
    """

    resolution_id: str
    request_id: str
    customer_id: str
    kind: ResolutionKind
    invoice_id: str | None = None
    payment_id: str | None = None
    amount: Money = Field(description="The financial effect")
    original_amount: Money | None = None
    corrected_amount: Money | None = None
    reason_code: str
    approvals: list[ResolutionApproval] = Field(default_factory=list)
    effective_on: date
    created_at: AwareDatetime


class RequestStatus(StrEnum):
    """Statuses and flags of ``requests.status.v1``."""

    RECEIVED = "received"
    ON_HOLD = "on_hold"
    REJECTED = "rejected"
    VALIDATED = "validated"
    ROUTED = "routed"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RESOLVED = "resolved"
    CLOSED = "closed"
    DUPLICATE_OF = "duplicate_of"
    SLA_WARNING = "sla_warning"
    SLA_BREACHED = "sla_breached"
    ESCALATED = "escalated"


class RequestStatusChanged(ContractModel):
    """``requests.status.v1`` (key ``request_id``): every change of a request's status.

    ``event_id`` and ``duplicate_of`` are optional additions to the contract: the event id is
    stable for one change, so a consumer can drop the copies an at-least-once publisher may send;
    ``duplicate_of`` names the open request a duplicate was linked to.
    """

    event_id: str
    request_id: str
    channel: Channel
    source_id: str = Field(description="The case id or Message-ID the request came from")
    customer_id: str | None = None
    status: RequestStatus
    reason: str | None = Field(default=None, description="Machine reason code")
    message: str = Field(description="A sentence a customer can read")
    queue: str | None = None
    priority: Priority | None = None
    sla_due_at: AwareDatetime | None = None
    duplicate_of: str | None = Field(
        default=None, description="With status duplicate_of: the open request this one repeats"
    )
    at: AwareDatetime
