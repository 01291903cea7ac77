"""The JSON API's models: request bodies and answers, as OpenAPI publishes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from services.workspace.service import Published
from shared.actions import OWNED_BY_WORKSPACE, OWNER_OF
from shared.contract import Priority, RequestType, ResolutionKind
from shared.directory import Team
from shared.money import Money


class ActionAccepted(BaseModel):
    """An action published: the workspace's view shows it once it has read it back from the topic."""

    topic: str
    event_id: str
    event_type: str
    request_id: str
    carried_out_by: str = Field(description="The service that carries the action out")


class Refused(BaseModel):
    refused: str = Field(description="Machine reason, e.g. other_team, read_only, not_eligible")
    detail: str


class AssignBody(BaseModel):
    assignee: str
    action_id: str | None = Field(default=None, description="Idempotency key: the same id is the same action")


class ActionIdBody(BaseModel):
    action_id: str | None = None


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=4000)
    action_id: str | None = None


class ReclassifyBody(BaseModel):
    request_type: RequestType
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class RerouteBody(BaseModel):
    queue: Team
    priority: Priority | None = None
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class AskCustomerBody(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    action_id: str | None = None


class ResolutionBody(BaseModel):
    kind: ResolutionKind
    invoice_id: str | None = None
    payment_id: str | None = Field(default=None, description="The candidate payment chosen (an allocation)")
    amount: Money | None = None
    corrected_amount: Money | None = None
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class RetryBody(BaseModel):
    resolution_id: str | None = None
    reason: str = Field(min_length=1, max_length=500)
    action_id: str | None = None


class CloseBody(BaseModel):
    reason_code: Literal[
        "answered",
        "resolved_outside_system",
        "withdrawn_by_customer",
        "no_response",
        "duplicate",
        "not_a_finance_request",
    ]
    comment: str | None = Field(default=None, max_length=500)
    action_id: str | None = None


class ApprovalBody(BaseModel):
    decision: Literal["approve", "reject"]
    role: Literal["team_lead", "finance_manager"] | None = Field(
        default=None, description="The role to decide in; default: the one still needed that you hold"
    )
    comment: str | None = Field(default=None, max_length=1000)


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    user: str
    expires_in_days: float


def accepted(published: Published) -> ActionAccepted:
    """The answer to an action published, naming the service that carries it out."""
    owner = (
        "workspace"
        if published.event_type in OWNED_BY_WORKSPACE
        else OWNER_OF.get(published.event_type, "resolution")
    )
    return ActionAccepted(
        topic=published.topic,
        event_id=published.event_id,
        event_type=published.event_type,
        request_id=published.request_id,
        carried_out_by=owner,
    )
