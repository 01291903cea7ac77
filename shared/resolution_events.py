"""What resolution tells the people who work a request, as data: ``requests.resolution.v1`` (internal,
key ``request_id``).

The statuses on ``requests.status.v1`` say the same in sentences for the customer; these events
carry it as fields, so that the workspace never reads a status message to find the payments a
person chooses from or the approvals a posting waits for:

- :class:`PaymentCandidatesFound`: a colleague must choose among these payments (status ``routed``,
  reason ``several_payments_match`` or ``payment_not_found``);
- :class:`ApprovalRequested`: postings wait for these roles under this policy (``awaiting_approval``);
- :class:`ApprovalEvaluated`: one approval decision, counted or refused (and why), and what is still
  needed after it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from shared.contract import ResolutionKind
from shared.events import InternalEvent
from shared.money import Money


class CandidatePayment(BaseModel):
    """One payment that could be the one, as resolution's views hold it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    payment_id: str
    amount: Money
    unapplied: Money = Field(description="What of the payment is not applied to any invoice yet")
    received_on: date
    reference: str | None = None


class PaymentCandidatesFound(InternalEvent):
    """A colleague must choose the payment: these could be the one (best first)."""

    event_type: Literal["PaymentCandidatesFound"] = "PaymentCandidatesFound"
    reason: str = Field(description="several_payments_match, payment_not_found, ...")
    invoice_ids: tuple[str, ...] = ()
    candidates: tuple[CandidatePayment, ...]


class ApprovalRequested(InternalEvent):
    """Postings of the request wait for the approvals the policy asks for."""

    event_type: Literal["ApprovalRequested"] = "ApprovalRequested"
    kind: ResolutionKind
    amount: Money | None = Field(
        description="What the policy's tiers are read against: the postings' total when they share a "
        "currency; in several currencies, their total converted into the policy's currency; null when "
        "one of several currencies has no rate in the policy (the highest tier applies)"
    )
    amounts: tuple[Money, ...] = Field(
        default=(), description="The postings' totals, one per currency, as posted"
    )
    required_roles: tuple[str, ...] = Field(description="A role twice: two different people with it")
    policy_version: str
    explanation: str
    prepared_by: tuple[str, ...] = Field(
        default=(), description="Who decided it in the workspace (they may not approve it)"
    )


class ApprovalEvaluated(InternalEvent):
    """One approval decision on the request, as resolution counted it."""

    event_type: Literal["ApprovalEvaluated"] = "ApprovalEvaluated"
    approver: str = Field(description="The name the decision gave")
    approver_id: str | None = Field(default=None, description="The directory's id of that person")
    role: str
    decision: Literal["approve", "reject"]
    decided_at: datetime
    verdict: Literal["refused", "counted", "complete", "rejected"]
    reason: str | None = Field(default=None, description="Why it was refused (segregation_of_duties, ...)")
    explanation: str = ""
    still_needed: tuple[str, ...] = ()


AnyResolutionEvent = Annotated[
    PaymentCandidatesFound | ApprovalRequested | ApprovalEvaluated, Field(discriminator="event_type")
]


class ResolutionEventMessage(RootModel[AnyResolutionEvent]):
    """``requests.resolution.v1`` (key ``request_id``): what resolution tells the people who work it."""
