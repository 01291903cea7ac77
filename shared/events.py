"""Internal events between our own services: immutable, past tense, versioned.

They travel on ``requests.captured.v1``, ``requests.validated.v1`` and ``requests.routed.v1``,
keyed by ``request_id``. A later version of an event adds optional fields and bumps
``schema_version``; every reader reads an older version as the current one: the event models run
:func:`upcast` on what they validate, so the services' subscriptions and their stored copies of
events (a held request, a routed one waiting for data) all see the version the code knows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    model_validator,
)

from shared.contract import Attachment, Channel, Contact, Customer, Priority, RequestStatus, RequestType
from shared.money import Amount, CurrencyCode, Money

CandidateNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
MAX_CANDIDATES = 20
MAX_STATED_AMOUNTS = 50


class InternalEvent(BaseModel):
    """Base of our events: frozen, with a stable id, a version and the ids logs are bound to."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = 1
    event_id: str = Field(description="Stable id of this event; consumers drop repeats")
    request_id: str
    correlation_id: str = Field(description="The source message id that started this request")
    occurred_at: AwareDatetime

    @model_validator(mode="before")
    @classmethod
    def _as_current_version(cls, data: Any) -> Any:
        """An older version of the event is read as the current one (see :func:`upcast`)."""
        if not isinstance(data, dict):
            return data
        event_type = cls.model_fields.get("event_type")
        return upcast(data, event_type=str(event_type.default) if event_type is not None else cls.__name__)


AmountRole = Literal["disputed", "expected", "paid"]


class StatedAmount(BaseModel):
    """An amount the customer wrote in the text, with what the words say it is.

    ``currency`` is absent when the text gave none ("we paid 18,500.00"): validation reads it in
    the currency of the invoices the request names.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    amount: Amount
    currency: CurrencyCode | None = None
    role: AmountRole | None = Field(default=None, description="None: only mentioned")


class RequestDetails(BaseModel):
    """What the customer asked, as captured from the CRM, the portal or an email.

    Version 2 added what intake reads from the text for validation to resolve: document number
    candidates, amounts with their roles (with or without a currency) and the payment date. A
    version 1 event reads with them empty.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel: Channel
    source_id: str = Field(description="The CRM case id or the email Message-ID")
    customer_id: str | None = Field(default=None, description="Absent for email until validation")
    sender_email: str | None = Field(default=None, description="The email sender's address")
    sender_name: str | None = Field(default=None, description="The email sender's display name")
    request_type: RequestType | None = Field(default=None, description="None: not classified")
    type_confidence: float = Field(default=1.0, ge=0, le=1, description="1.0 when the CRM said")
    type_evidence: tuple[str, ...] = Field(
        default=(), description="What in the text decided the type; empty when the CRM said"
    )
    subject: str
    description: str | None = None
    invoice_ids: tuple[str, ...] = ()
    payment_ids: tuple[str, ...] = ()
    contract_id: str | None = None
    disputed_amount: Money | None = None
    expected_amount: Money | None = None
    requested_credit_limit: Money | None = None
    mentioned_amounts: tuple[Money, ...] = Field(
        default=(), description="Every amount with a currency found in the text, in order"
    )
    mentioned_dates: tuple[date, ...] = Field(default=(), description="Every date found in the text")
    invoice_candidates: tuple[CandidateNumber, ...] = Field(
        default=(),
        max_length=MAX_CANDIDATES,
        description="Invoice numbers as written in the text after an invoice word or code; validation "
        "resolves them against the customer's own invoices",
    )
    payment_candidates: tuple[CandidateNumber, ...] = Field(
        default=(),
        max_length=MAX_CANDIDATES,
        description="Payment numbers as written in the text after a payment word or code",
    )
    loose_candidates: tuple[CandidateNumber, ...] = Field(
        default=(),
        max_length=MAX_CANDIDATES,
        description="Numbers standing alone in the text; an invoice only when exactly one of the "
        "customer's invoices has it and no worded candidate named one",
    )
    stated_amounts: tuple[StatedAmount, ...] = Field(
        default=(),
        max_length=MAX_STATED_AMOUNTS,
        description="Amounts in the text, with their roles (the first ones, when a text states more)",
    )
    paid_amount: Money | None = Field(default=None, description="What the customer says they paid")
    payment_date: date | None = Field(default=None, description="When the customer says they paid")
    priority_hint: Priority | None = None
    contact: Contact | None = None
    attachments: tuple[Attachment, ...] = ()
    submitted_at: datetime


class RequestCaptured(InternalEvent):
    """Intake stored a new request and gave it our ``request_id``.

    ``follows_up`` (version 2, optional) names the earlier request a reply opened this one for:
    a reply to a request closed longer ago than the reopening window opens a new request linked
    to the old one.
    """

    schema_version: int = 2
    event_type: Literal["RequestCaptured"] = "RequestCaptured"
    details: RequestDetails
    follows_up: str | None = Field(
        default=None, description="The closed request this one follows up (a late reply in its thread)"
    )


class InvoiceSnapshot(BaseModel):
    """The invoice facts validation checked against, carried so later steps decide on the same facts."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    invoice_id: str
    total: Money
    open_amount: Money
    status: str


class CheckResult(BaseModel):
    """One validation check that ran, passed or failed: the audit record shows them all."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    check: str
    passed: bool
    detail: str


class CustomerSnapshot(BaseModel):
    """The customer master's record as validation saw it when it decided: the audit record keeps
    the customer's information at the time, not as it is today."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    customer_id: str
    name: str
    status: str
    kyc_status: str
    kyc_expires_on: date | None = None
    tier: str
    credit_limit: Money | None = None
    updated_at: AwareDatetime

    @classmethod
    def of(cls, customer: Customer) -> CustomerSnapshot:
        return cls.model_validate(customer.model_dump())


class RequestValidated(InternalEvent):
    """Validation found the customer and the documents in order."""

    schema_version: int = 2
    event_type: Literal["RequestValidated"] = "RequestValidated"
    details: RequestDetails
    customer_id: str
    customer_tier: str
    customer: CustomerSnapshot | None = None
    invoices: tuple[InvoiceSnapshot, ...] = ()
    checks: tuple[CheckResult, ...] = ()


class RequestSetAside(InternalEvent):
    """Validation did not pass the request on: it is on hold, rejected, or a duplicate of an open one.

    Carries every check that ran, so the audit record shows why, and for a hold what it waits for.
    """

    schema_version: int = 2
    event_type: Literal["RequestSetAside"] = "RequestSetAside"
    details: RequestDetails
    customer_id: str | None
    customer: CustomerSnapshot | None = Field(default=None, description="Absent when none was found")
    verdict: RequestStatus = Field(description="on_hold, rejected or duplicate_of")
    reason: str
    message: str
    checks: tuple[CheckResult, ...] = ()
    waiting_for: tuple[str, ...] = Field(default=(), description="Documents or KYC a hold waits for")
    reject_after: AwareDatetime | None = Field(default=None, description="When a hold turns into a rejection")
    duplicate_of: str | None = Field(default=None, description="The open request this one repeats")


class EmailReplyAdded(InternalEvent):
    """Intake added an email to the request its ``In-Reply-To``/``References`` point at.

    The email's own record on ``email.requests.v1`` cannot name the request it belongs to; this
    event does, so the request's audit record shows the reply. Version 2 adds what intake read in
    the reply, exactly as for a new email (``understood``: number candidates, amounts, dates), for
    validation to resume a request waiting for the customer's answer; whether the reply is an
    automatic one (an out-of-office), which answers nothing; and whether it reopens the request
    (closed when it came, within the reopening window: intake knows, validation may not yet).
    """

    schema_version: int = 2
    event_type: Literal["EmailReplyAdded"] = "EmailReplyAdded"
    message_id: str
    sender: str
    subject: str
    received_at: AwareDatetime
    attachments: tuple[Attachment, ...] = ()
    understood: RequestDetails | None = Field(
        default=None, description="The reply read as a new email would be (None in version 1)"
    )
    automatic: bool = Field(default=False, description="An automatic reply (out of office): no answer")
    reopens: bool = Field(
        default=False,
        description="The request was closed when the reply came (within the reopening window): it reopens",
    )


class CaseUpdated(InternalEvent):
    """Intake saw a CRM case again with other content: an update of the same request.

    ``changed`` names the case's fields that differ from the version seen before (the audit record
    and the workspace show them); ``details`` is the request as captured from the new version, which
    validation checks again from where the request stands. ``withdrawn``: the customer withdrew the
    case, and whoever holds the request closes it (reason ``withdrawn``).
    """

    event_type: Literal["CaseUpdated"] = "CaseUpdated"
    details: RequestDetails
    changed: tuple[str, ...] = Field(description="The case's fields that changed, by contract name")
    fingerprint: str = Field(description="The fingerprint of the case's content in this version")
    withdrawn: bool = False
    updated_at: AwareDatetime | None = Field(default=None, description="The case's own updated_at")


AnyRequestUpdate = Annotated[EmailReplyAdded | CaseUpdated, Field(discriminator="event_type")]


class RequestUpdateMessage(RootModel[AnyRequestUpdate]):
    """``requests.updated.v1`` (key ``request_id``): something added to an existing request."""


class RequestRouted(InternalEvent):
    """Routing put the request in a queue with a priority and an SLA."""

    schema_version: int = 2
    event_type: Literal["RequestRouted"] = "RequestRouted"
    details: RequestDetails
    customer_id: str
    customer_tier: str
    invoices: tuple[InvoiceSnapshot, ...] = ()
    queue: str
    priority: Priority
    sla_due_at: AwareDatetime
    rule_version: str


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""One step up: a payload of one version of an event type, as the next version."""

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""The step from each (event type, version) to the next; :func:`upcast` follows them."""


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register ``step`` as the way from ``from_version`` of ``event_type`` to the next version."""

    def register(step: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = step
        return step

    return register


def upcast(payload: dict[str, Any], *, event_type: str | None = None) -> dict[str, Any]:
    """Bring an older event payload up to the current schema, one version at a time.

    ``event_type`` is the payload's own ``event_type`` or, when it has none, the one given. A payload
    without ``schema_version`` is taken as current (models built in code); a version no step starts
    from (the current one, or a newer one an older reader meets) is read as it is.
    """
    kind = payload.get("event_type", event_type)
    version = payload.get("schema_version")
    while isinstance(kind, str) and type(version) is int and (kind, version) in UPCASTERS:
        payload = UPCASTERS[(kind, version)](payload)
        version = payload.get("schema_version")
    return payload


DETAILS_ADDED_IN_V2: dict[str, Any] = {
    "invoice_candidates": [],
    "payment_candidates": [],
    "loose_candidates": [],
    "stated_amounts": [],
    "paid_amount": None,
    "payment_date": None,
}
"""What version 2 of the request's details added: what intake reads from the text (empty in v1)."""


def _details_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 2 of the events that carry a request's details only added optional fields to them
    (number candidates, stated amounts, paid amount, payment date): a version 1 had none."""
    details = payload.get("details")
    if isinstance(details, dict):
        payload = {**payload, "details": {**DETAILS_ADDED_IN_V2, **details}}
    return {**payload, "schema_version": 2}


for _carrying_details in ("RequestCaptured", "RequestValidated", "RequestSetAside", "RequestRouted"):
    upcaster(_carrying_details, from_version=1)(_details_v1_to_v2)


@upcaster("EmailReplyAdded", from_version=1)
def _reply_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Version 1 of a reply carried nothing read from its text: nothing to resume a request with."""
    return {"understood": None, "automatic": False, "reopens": False, **payload, "schema_version": 2}
