"""Pydantic models of every public topic in the external contract (``../shared/CONTRACT.md``).

Inbound models ignore unknown extra fields (the contract promises that) and are frozen. Money is
:class:`shared.money.Money`; timestamps must carry a zone. Outbound models are what we publish
and what the ERP and the CRM read.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from shared.money import DOCUMENT_AMOUNT_SCHEMA, Amount, CurrencyCode, Money, Quantity, amount_in, money_in

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
    updated_at: AwareDatetime | None = Field(
        default=None, description="When the case last changed in the CRM (not part of its content)"
    )
    withdrawn: bool = Field(default=False, description="true: the customer withdrew the case")


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


DocumentAmount = Annotated[Amount, WithJsonSchema(DOCUMENT_AMOUNT_SCHEMA)]
"""An amount of a reference document: a decimal string in the document's currency or a money object
in that currency (the document's validator reads either; see :func:`shared.money.amount_in`)."""

DocumentMoney = Annotated[Money, WithJsonSchema(DOCUMENT_AMOUNT_SCHEMA)]
"""Money of a reference document, sent as a decimal string in its currency or as a money object."""


def _amounts_of(items: object, field: str, currency: str | None, *, document: str) -> object:
    """``field`` of each item (a line, a price, an application) read in the document's currency."""
    if not isinstance(items, list):
        return items  # not a list: the field's own validation says what is wrong
    read: list[object] = []
    for position, item in enumerate(items, start=1):
        if isinstance(item, dict) and field in item and not isinstance(item[field], str | int):
            amount = amount_in(item[field], currency, document=document, item=f"{field} of item {position}")
            read.append({**item, field: format(amount, "f")})
        else:
            read.append(item)
    return read


def _currency_of(info: ValidationInfo) -> str | None:
    currency = info.data.get("currency")
    return currency if isinstance(currency, str) else None


class InvoiceLine(ContractModel):
    """One line of an invoice."""

    sku: ShortText
    description: ShortText | None = None
    quantity: Quantity
    unit_price: DocumentAmount


class Invoice(ReferenceRecord):
    """``erp.invoices.v1`` (key ``invoice_id``).

    ``unit_price``, ``total`` and ``open_amount`` are amounts in ``currency``: a decimal string or a
    money object in that currency, as ERPs send either; a money object in another currency is
    refused with a ``currency_mismatch`` error naming both currencies.
    """

    invoice_id: Identifier
    customer_id: Identifier
    contract_id: Identifier | None = None
    issued_on: date
    due_on: date | None = None
    currency: CurrencyCode
    lines: list[InvoiceLine] = Field(default_factory=list, max_length=10_000)
    total: DocumentMoney
    open_amount: DocumentMoney
    status: Literal["open", "partially_paid", "paid", "cancelled"]

    @field_validator("lines", mode="before")
    @classmethod
    def _line_prices_in_invoice_currency(cls, lines: object, info: ValidationInfo) -> object:
        return _amounts_of(lines, "unit_price", _currency_of(info), document="invoice")

    @field_validator("total", "open_amount", mode="before")
    @classmethod
    def _in_invoice_currency(cls, value: object, info: ValidationInfo) -> Money:
        return money_in(value, _currency_of(info), document="invoice")


class PaymentApplication(ContractModel):
    """Part of a payment applied to an invoice, in the payment's currency."""

    invoice_id: Identifier
    amount: DocumentAmount


class Payment(ReferenceRecord):
    """``erp.payments.v1`` (key ``payment_id``).

    ``amount`` is money; an ERP that sends it as a decimal string must say ``currency`` beside it.
    ``applied_to`` amounts are decimal strings or money objects in the payment's currency.
    """

    payment_id: Identifier
    customer_id: Identifier
    currency: CurrencyCode | None = Field(
        default=None, description="Only needed when amount is a decimal string"
    )
    amount: DocumentMoney
    received_on: date
    reference: ShortText | None = None
    status: Literal["unapplied", "applied"]
    applied_to: list[PaymentApplication] = Field(default_factory=list, max_length=10_000)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_as_money(cls, value: object, info: ValidationInfo) -> Money:
        return money_in(value, _currency_of(info), document="payment")

    @field_validator("applied_to", mode="before")
    @classmethod
    def _applications_in_payment_currency(cls, applied: object, info: ValidationInfo) -> object:
        amount = info.data.get("amount")
        currency = amount.currency if isinstance(amount, Money) else None
        return _amounts_of(applied, "amount", currency, document="payment")


class ContractPrice(ContractModel):
    """A contract's unit price of one SKU, in the contract's currency."""

    sku: ShortText
    unit_price: DocumentAmount


class CustomerContract(ReferenceRecord):
    """``erp.contracts.v1`` (key ``contract_id``).

    Prices are decimal strings or money objects in ``currency``.
    """

    contract_id: Identifier
    customer_id: Identifier
    valid_from: date
    valid_to: date | None = None
    currency: CurrencyCode
    prices: list[ContractPrice] = Field(default_factory=list, max_length=10_000)
    payment_terms_days: int | None = None

    @field_validator("prices", mode="before")
    @classmethod
    def _prices_in_contract_currency(cls, prices: object, info: ValidationInfo) -> object:
        return _amounts_of(prices, "unit_price", _currency_of(info), document="contract")


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
    REOPENED = "reopened"
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
