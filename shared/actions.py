"""What people do in the workspace, as events on ``requests.actions.v1`` (key: ``request_id``).

Every action a person takes in the console (or through its API) is published here, under the
person's directory id and the role they acted in, so audit records it beside everything else that
happened to the request. They are all events, named in the past tense: a person *did* something.

- The workspace owns who works on a request and what was noted about it: :class:`RequestAssigned`
  (picking a request up is assigning it to oneself), :class:`RequestReleased`, :class:`NoteAdded`.
  Its own view applies them.
- The other actions are decisions a person took that the service owning that part of the request
  carries out (never written into its database by the workspace): :class:`ReclassificationRequested`
  and :class:`RerouteRequested` (routing owns queues, priorities and SLAs),
  :class:`CustomerQuestionRequested` (validation puts the request ``on_hold`` with reason
  ``awaiting_customer``), :class:`ResolutionDecided` and :class:`PostingRetryRequested` (resolution,
  through the same approval policy and segregation of duties), :class:`ClosureRequested`
  (resolution, which publishes ``closed``). Routing and resolution consume this topic and carry
  out theirs as a transition of the request's lifecycle (``services/<name>/lifecycle.py``); the
  workspace records and shows every action (its view, audit). An action the owner cannot carry out
  (a request it does not know, one already closed, a decision the documents do not allow) is
  dead-lettered on ``requests.actions.v1.dlq`` with its reason (``x-error-reason``) and a sentence
  saying why (``x-error``).

``event_id`` is derived from the request and the action's own id (``action_id``, sent with the form
or the API call), so a form submitted twice is one action.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel, StringConstraints, TypeAdapter

from shared.contract import Priority, RequestType, ResolutionKind
from shared.events import InternalEvent
from shared.identity import event_id_for
from shared.money import Money

ActionText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4_000)]
ShortReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class WorkspaceAction(InternalEvent):
    """Base of every action: who did it (directory id), in which role, and about which customer."""

    actor: str = Field(description="The person's canonical id in the user directory")
    actor_role: str = Field(description="The role the person acted in (agent, team_lead, ...)")
    customer_id: str | None = Field(default=None, description="The request's customer, when known")


class RequestAssigned(WorkspaceAction):
    """The request was given to ``assignee`` (by themselves: picked up; by a team lead: assigned)."""

    event_type: Literal["RequestAssigned"] = "RequestAssigned"
    assignee: str = Field(description="Directory id of the person who now has the request")
    previous_assignee: str | None = None


class RequestReleased(WorkspaceAction):
    """Nobody has the request any more: it is back in its queue for anyone of the team."""

    event_type: Literal["RequestReleased"] = "RequestReleased"
    previous_assignee: str | None = None


class NoteAdded(WorkspaceAction):
    """A note on the request, for the team (never shown to the customer)."""

    event_type: Literal["NoteAdded"] = "NoteAdded"
    text: ActionText


class ReclassificationRequested(WorkspaceAction):
    """A person says the request is of another type (routing re-routes it by its rules)."""

    event_type: Literal["ReclassificationRequested"] = "ReclassificationRequested"
    request_type: RequestType
    reason: ShortReason


class RerouteRequested(WorkspaceAction):
    """A person sends the request to another queue, optionally with another priority (routing)."""

    event_type: Literal["RerouteRequested"] = "RerouteRequested"
    queue: str
    priority: Priority | None = None
    reason: ShortReason


class CustomerQuestionRequested(WorkspaceAction):
    """A question for the customer: validation puts the request on hold (``awaiting_customer``)."""

    event_type: Literal["CustomerQuestionRequested"] = "CustomerQuestionRequested"
    question: ActionText


class ResolutionDecided(WorkspaceAction):
    """A person decided how the request is resolved; resolution posts it through the approval policy.

    ``payment_id`` chooses among candidate payments (an allocation); ``amount`` is the financial
    effect for a credit memo, write-off or refund, ``corrected_amount`` the invoice's new total for
    a correction. The person who decides cannot approve it (segregation of duties).
    """

    event_type: Literal["ResolutionDecided"] = "ResolutionDecided"
    kind: ResolutionKind
    invoice_id: str | None = None
    payment_id: str | None = None
    amount: Money | None = None
    corrected_amount: Money | None = None
    reason: ShortReason


class PostingRetryRequested(WorkspaceAction):
    """Post a resolution the ERP refused again (resolution sends it under a new resolution id: the ERP
    keys postings by it and answers the same id as it did before)."""

    event_type: Literal["PostingRetryRequested"] = "PostingRetryRequested"
    resolution_id: str | None = Field(default=None, description="None: every failed posting of the request")
    reason: ShortReason


CLOSURE_REASONS: tuple[str, ...] = (
    "answered",
    "resolved_outside_system",
    "withdrawn_by_customer",
    "no_response",
    "duplicate",
    "not_a_finance_request",
)
"""Why a person closes a request (``ClosureRequested.reason_code``)."""


class ClosureRequested(WorkspaceAction):
    """A person closes the request with a reason (resolution publishes ``closed``)."""

    event_type: Literal["ClosureRequested"] = "ClosureRequested"
    reason_code: Literal[
        "answered",
        "resolved_outside_system",
        "withdrawn_by_customer",
        "no_response",
        "duplicate",
        "not_a_finance_request",
    ]
    comment: ShortReason | None = None


AnyAction = Annotated[
    RequestAssigned
    | RequestReleased
    | NoteAdded
    | ReclassificationRequested
    | RerouteRequested
    | CustomerQuestionRequested
    | ResolutionDecided
    | PostingRetryRequested
    | ClosureRequested,
    Field(discriminator="event_type"),
]


class WorkspaceActionMessage(RootModel[AnyAction]):
    """``requests.actions.v1`` (key ``request_id``): one action a person took in the workspace."""


ACTION_ADAPTER: TypeAdapter[AnyAction] = TypeAdapter(AnyAction)

OWNED_BY_WORKSPACE = frozenset({"RequestAssigned", "RequestReleased", "NoteAdded"})
"""Actions the workspace carries out itself (its own view); the owners carry out the others."""

OWNER_OF: dict[str, str] = {
    "ReclassificationRequested": "routing",
    "RerouteRequested": "routing",
    "CustomerQuestionRequested": "validation",
    "ResolutionDecided": "resolution",
    "PostingRetryRequested": "resolution",
    "ClosureRequested": "resolution",
}
"""Which service carries out each action the workspace does not own."""


def action_event_id(request_id: str, action_id: str) -> str:
    """The stable id of an action: one per request and action id (a form sent twice is one action)."""
    return event_id_for(request_id, "workspace-action", action_id)
