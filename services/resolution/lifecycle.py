"""A request's life in resolution, as a typed object: states, and transitions that say what they cause.

Pure: no I/O. The handlers load a :class:`RequestResolution` from the store, call one transition
with what it needs (the reference facts, the approvers as the directory knows them, the ERP's
answer, the time), save it, and emit what the transition returned: statuses for the customer and
postings for the ERP. A transition the state does not allow raises
:class:`shared.lifecycle.TransitionRefused`.

The states (:class:`ResolutionState`) and how a request moves between them::

    routed ─consider─┬─ (no strategy for its type: a colleague decides; no status) ── routed
                     ├─ awaiting_reference_data ─consider (timer)─▶ any of these, in time
                     ├─ with_person       (a colleague decides: candidates, data that never came)
                     ├─ closed            (the documents do not support the claim: nothing posted)
                     ├─ awaiting_approval ─decide─▶ itself (refused, counted) | rejected | resolved
                     └─ resolved          (postings sent to the ERP)
    resolved ─acknowledge─▶ closed (every posting posted) | with_person (the ERP failed one)
    a posting the ERP does not acknowledge in time ─escalate_overdue─▶ status escalated, once

What the people of the workspace do (assign, decide a resolution, retry a failed posting, close)
is a transition more on this object: a method that checks the state, changes it and returns its
statuses and postings, and a line in the handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import structlog

from services.resolution import approvals, domain, strategies
from services.resolution.approvals import RecordedApproval
from services.resolution.policy import ApprovalPolicy
from shared.contract import (
    ApprovalDecision,
    Channel,
    ErpAck,
    ErpResolution,
    Priority,
    RequestStatus,
    RequestStatusChanged,
    ResolutionApproval,
)
from shared.directory import DirectoryUser
from shared.events import CaseUpdated, RequestRouted
from shared.lifecycle import Effect, TransitionRefused
from shared.messages import status_changed
from shared.money import Money

log = structlog.get_logger(__name__)

WITHDRAWN = "withdrawn"
"""The reason of a request closed because the customer withdrew it."""
WITHDRAWN_BEFORE_ROUTING = "withdrawn_before_routing"
"""Kept closed, silently, until the routing of a request withdrawn on its way here closes it."""


class ResolutionState(StrEnum):
    """Where a request stands in resolution (stored as ``state``)."""

    ROUTED = "routed"
    """Routed to a queue; nothing proposed (yet, or ever: its type has no strategy)."""
    AWAITING_REFERENCE_DATA = "awaiting_reference_data"
    """On hold: a document the strategy needs has not reached resolution's views yet."""
    WITH_PERSON = "with_person"
    """A colleague must decide (several candidates, data that never came, a posting that failed)."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Postings proposed, waiting for the approvals the policy asks for."""
    RESOLVED = "resolved"
    """Postings sent to the ERP, waiting for its answers."""
    CLOSED = "closed"
    """Every posting posted, or nothing to post (the claim is not supported)."""
    REJECTED = "rejected"
    """An approver rejected the postings: nothing posted."""


class PostingStatus(StrEnum):
    """Where a posting sent to the ERP stands (stored as the resolution's ``status``)."""

    ISSUED = "issued"
    POSTED = "posted"
    FAILED = "failed"


@dataclass(frozen=True)
class Terms:
    """What the service's configuration says for every request."""

    policy: ApprovalPolicy
    ack_timeout: timedelta
    """A posting the ERP has not acknowledged this long after it was sent is escalated."""
    reference_wait: timedelta
    """How long a request waits for reference data before a colleague takes it."""


@dataclass(frozen=True)
class AboutRequest:
    """Who and what the request is, as routing handed it over: what every status carries."""

    channel: Channel
    source_id: str
    customer_id: str | None
    request_type: str | None
    queue: str | None
    priority: Priority | None
    sla_due_at: datetime | None
    requesters: tuple[str, ...]
    """Who asked (contact, email sender, customer), lower-cased: they may not approve it."""


@dataclass(frozen=True)
class PendingPostings:
    """Postings proposed and waiting for approval, approved together (the policy applies to the sum)."""

    resolutions: tuple[ErpResolution, ...]
    explanation: str
    required_roles: tuple[str, ...]
    policy_version: str


@dataclass(frozen=True)
class Refusal:
    """An approval decision that was not counted, and why."""

    approver: str
    role: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class IssuedPosting:
    """A posting sent to the ERP, with its answer once it came."""

    resolution: ErpResolution
    status: PostingStatus
    issued_at: datetime
    ack_due_at: datetime
    escalated_at: datetime | None = None
    erp_document_id: str | None = None
    erp_error: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def resolution_id(self) -> str:
        return self.resolution.resolution_id

    def overdue(self, now: datetime) -> bool:
        """Sent, not answered by its due time, and not escalated yet."""
        return self.status is PostingStatus.ISSUED and self.escalated_at is None and self.ack_due_at < now


@dataclass(frozen=True)
class Approvers:
    """The people an approval decision concerns, as the user directory knows them."""

    approver: DirectoryUser | None
    """The person the decision names (None: nobody the directory knows)."""
    requester_ids: frozenset[str] = frozenset()
    """The directory ids of those who asked, where they are users."""
    approved_ids: frozenset[str] = frozenset()
    """The directory ids of those who approved already."""


@dataclass(eq=False)  # one object per request and load: the store tells loaded ones apart by identity
class RequestResolution:
    """One routed request in resolution: its state, what was proposed, approved and posted."""

    request_id: str
    about: AboutRequest
    routed: RequestRouted | None
    """The routed event the strategies read (None only in documents stored before it was kept)."""
    state: ResolutionState
    routed_at: datetime
    wait_for_data_until: datetime | None
    reason: str | None = None
    candidates: tuple[str, ...] = ()
    """The documents a person can choose from (payments that could be the one)."""
    pending: PendingPostings | None = None
    approvals: tuple[RecordedApproval, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    rejected_by: str | None = None
    resolution_ids: tuple[str, ...] = ()
    """The postings issued, in the order they were sent."""
    postings: dict[str, IssuedPosting] = field(default_factory=dict)

    @property
    def waits_for_reference_data(self) -> bool:
        """On hold until a document the strategy needs reaches resolution's views."""
        return self.state is ResolutionState.AWAITING_REFERENCE_DATA

    # -- Creation ------------------------------------------------------------------------

    @classmethod
    def from_routed(cls, event: RequestRouted, *, now: datetime, terms: Terms) -> RequestResolution:
        """A request routing handed over: nothing proposed yet."""
        details = event.details
        return cls(
            request_id=event.request_id,
            about=AboutRequest(
                channel=details.channel,
                source_id=details.source_id,
                customer_id=event.customer_id,
                request_type=details.request_type.value if details.request_type else None,
                queue=event.queue,
                priority=event.priority,
                sla_due_at=event.sla_due_at,
                requesters=tuple(sorted(domain.requesters_of(event))),
            ),
            routed=event,
            state=ResolutionState.ROUTED,
            routed_at=now,
            wait_for_data_until=now + terms.reference_wait,
        )

    # -- Transitions ---------------------------------------------------------------------

    def consider(self, facts: strategies.Facts, *, now: datetime, terms: Terms) -> list[Effect]:
        """Apply the strategy of the request's type to what resolution's views know now.

        From ``routed`` (just handed over) or ``awaiting_reference_data`` (tried again on the
        timer). Reference data may come later than the request: while the strategy waits for a
        document and the wait has not run out, the request is on hold for it.
        """
        self._require(
            {ResolutionState.ROUTED, ResolutionState.AWAITING_REFERENCE_DATA}, "not_awaiting_a_proposal"
        )
        if self.routed is None:
            raise TransitionRefused("no_routed_event", f"request {self.request_id} was stored without it")
        proposal = strategies.propose(self.routed, facts, write_off_tolerance=terms.policy.write_off)
        if (
            isinstance(proposal, strategies.ForPerson)
            and proposal.awaiting is not None
            and self._may_wait(now)
        ):
            return self._await_reference_data(proposal, now)
        if proposal is None:
            return []  # no strategy for its type: it stays with its queue
        if isinstance(proposal, strategies.ForPerson):
            self.state, self.reason, self.candidates = (
                ResolutionState.WITH_PERSON,
                proposal.reason,
                proposal.candidates,
            )
            return [self._status(RequestStatus.ROUTED, proposal.explanation, now, reason=proposal.reason)]
        if isinstance(proposal, strategies.NotSupported):
            self.state, self.reason = ResolutionState.CLOSED, proposal.reason
            closing = "Nothing has been posted and this request is closed."
            return [
                self._status(RequestStatus.RESOLVED, proposal.explanation, now, reason=proposal.reason),
                self._status(RequestStatus.CLOSED, closing, now, reason=proposal.reason),
            ]
        return self._propose_postings(proposal, now, terms)

    def decide(
        self, decision: ApprovalDecision, approvers: Approvers, *, now: datetime, terms: Terms
    ) -> list[Effect]:
        """An approver's decision on the postings awaiting approval.

        Refused (not counted: segregation of duties, not a user, a role not held or not needed,
        one person twice), counted, the last one needed (the postings are sent), or a rejection
        (nothing is posted).
        """
        if self.state is not ResolutionState.AWAITING_APPROVAL or self.pending is None:
            raise TransitionRefused(
                "not_awaiting_approval", f"request {self.request_id} is {self.state}, not awaiting approval"
            )
        outcome = approvals.evaluate(
            decision,
            required=self.pending.required_roles,
            approvals=self.approvals,
            requesters=frozenset(self.about.requesters),
            preparer=terms.policy.preparer,
            approver=approvers.approver,
            requester_ids=approvers.requester_ids,
            approved_ids=approvers.approved_ids,
        )
        log.info(
            "approval.evaluated",
            approver=decision.approver,
            verdict=outcome.verdict.value,
            why=outcome.reason,
        )
        who = f"{decision.approver} ({decision.role})"
        occurrence = f"{decision.approver}:{decision.decision}:{decision.decided_at.isoformat()}"
        if outcome.verdict is approvals.Verdict.REFUSED:
            self.refusals = (*self.refusals, Refusal(decision.approver, decision.role, outcome.reason, now))
            message = (
                f"The {decision.decision} by {who} was not counted: {outcome.explanation}. "
                f"Still needed: {approvals.describe_roles(outcome.still_needed)}."
            )
            return [
                self._status(
                    RequestStatus.AWAITING_APPROVAL,
                    message,
                    now,
                    reason=outcome.reason,
                    occurrence=occurrence,
                )
            ]
        if outcome.verdict is approvals.Verdict.REJECTED:
            self.state, self.reason, self.rejected_by = (
                ResolutionState.REJECTED,
                "approval_rejected",
                decision.approver,
            )
            message = f"Rejected by {who}: {outcome.explanation}. Nothing has been posted."
            return [self._status(RequestStatus.REJECTED, message, now, reason="approval_rejected")]
        # Counted under the person's directory id, whatever name the decision gave.
        approver = approvers.approver
        self.approvals = (
            *self.approvals,
            RecordedApproval(
                approver.id if approver is not None else decision.approver,
                decision.role,
                decision.decided_at.isoformat(),
            ),
        )
        if outcome.verdict is approvals.Verdict.COUNTED:
            message = f"Approved by {who}; still needed: {approvals.describe_roles(outcome.still_needed)}."
            return [
                self._status(
                    RequestStatus.AWAITING_APPROVAL,
                    message,
                    now,
                    reason="approval_recorded",
                    occurrence=occurrence,
                )
            ]
        names = ", ".join(f"{approval.approver} ({approval.role})" for approval in self.approvals)
        given = [
            ResolutionApproval.model_validate(
                {"approver": approval.approver, "role": approval.role, "decided_at": approval.decided_at}
            )
            for approval in self.approvals
        ]
        approved = [
            pending.model_copy(update={"approvals": given, "effective_on": now.date(), "created_at": now})
            for pending in self.pending.resolutions
        ]
        return [
            self._status(RequestStatus.APPROVED, f"Approved by {names}.", now),
            *self._issue(approved, now, terms),
        ]

    def acknowledge(self, ack: ErpAck, *, now: datetime) -> list[Effect]:
        """The ERP's answer to one of the request's postings.

        Posted closes the request once every posting of it is posted (one of several: no status
        until the last); failed puts the request back with a person.
        """
        posting = self.postings.get(ack.resolution_id)
        if posting is None:
            raise TransitionRefused(
                "unknown_resolution", f"no resolution {ack.resolution_id} for request {ack.request_id}"
            )
        self.postings[ack.resolution_id] = IssuedPosting(
            resolution=posting.resolution,
            status=PostingStatus(ack.status),
            issued_at=posting.issued_at,
            ack_due_at=posting.ack_due_at,
            escalated_at=posting.escalated_at,
            erp_document_id=ack.erp_document_id,
            erp_error=ack.error,
            acknowledged_at=now,
        )
        decision = domain.acknowledge(ack, posting.resolution.kind)
        if decision.status is RequestStatus.CLOSED:
            siblings = [other for other in self.postings.values() if other.resolution_id != ack.resolution_id]
            if any(other.status is not PostingStatus.POSTED for other in siblings):
                self.state = ResolutionState.RESOLVED  # one of several postings: closed with the last
                return []
            if siblings:
                documents = [other.erp_document_id for other in siblings] + [ack.erp_document_id]
                decision = domain.all_posted(len(siblings) + 1, [d for d in documents if d])
            self.state = ResolutionState.CLOSED
        else:
            self.state, self.reason = ResolutionState.WITH_PERSON, decision.reason
        return [
            self._status(
                decision.status,
                decision.message,
                now,
                reason=decision.reason,
                occurrence=f"{ack.resolution_id}:{ack.status}",
            )
        ]

    def escalate_overdue(self, *, now: datetime, terms: Terms) -> list[Effect]:
        """Escalate, once each, the postings the ERP has not acknowledged in time."""
        effects: list[Effect] = []
        for resolution_id, posting in list(self.postings.items()):
            if not posting.overdue(now):
                continue
            self.postings[resolution_id] = IssuedPosting(
                resolution=posting.resolution,
                status=posting.status,
                issued_at=posting.issued_at,
                ack_due_at=posting.ack_due_at,
                escalated_at=now,
            )
            what = domain.KIND_NAMES[posting.resolution.kind]
            waited = int(terms.ack_timeout.total_seconds())
            message = (
                f"The ERP has not confirmed the {what} {resolution_id} within {waited} seconds; "
                "operations has been alerted."
            )
            effects.append(
                self._status(
                    RequestStatus.ESCALATED, message, now, reason="erp_ack_overdue", occurrence=resolution_id
                )
            )
        return effects

    # -- The customer withdrew the case (issue 9 item 5) -----------------------------------

    @property
    def withdrawn(self) -> bool:
        """Closed because the customer withdrew the case."""
        return self.state is ResolutionState.CLOSED and self.reason == WITHDRAWN

    def withdraw(self, *, now: datetime) -> list[Effect]:
        """The customer withdrew the case: closed (``withdrawn``), whatever was pending dropped.

        Resolution closes every request it holds that is not closed or rejected already (validation
        closes those it never passed on: exactly one service publishes the close). A posting
        already sent to the ERP is not undone, and the message says so.
        """
        if self.state in (ResolutionState.CLOSED, ResolutionState.REJECTED):
            return []
        sent = [posting for posting in self.postings.values() if posting.status is not PostingStatus.FAILED]
        self.state, self.reason, self.pending = ResolutionState.CLOSED, WITHDRAWN, None
        if sent:
            what = ", ".join(
                f"the {domain.KIND_NAMES[posting.resolution.kind]} {posting.resolution_id}"
                for posting in sent
            )
            message = (
                f"You withdrew this request; it is closed. {what[0].upper()}{what[1:]} had already been "
                "sent to our ERP before the withdrawal and is not undone by it; please contact us if it "
                "should be reversed."
            )
        else:
            message = "You withdrew this request; it is closed and nothing has been posted."
        return [self._status(RequestStatus.CLOSED, message, now, reason=WITHDRAWN)]

    @classmethod
    def withdrawn_before_routing(cls, case: CaseUpdated, *, now: datetime) -> RequestResolution:
        """A withdrawal of a request resolution does not hold (yet): kept, silently.

        Validation closes a request it never passed on; one it did pass on may still be on its way
        here (the withdrawal travels on another topic): when it is routed, it is closed then
        (:meth:`routed_after_withdrawal`), and nothing is ever proposed or posted for it.
        """
        details = case.details
        return cls(
            request_id=case.request_id,
            about=AboutRequest(
                channel=details.channel,
                source_id=details.source_id,
                customer_id=details.customer_id,
                request_type=details.request_type.value if details.request_type else None,
                queue=None,
                priority=None,
                sla_due_at=None,
                requesters=(),
            ),
            routed=None,
            state=ResolutionState.CLOSED,
            routed_at=now,
            wait_for_data_until=None,
            reason=WITHDRAWN_BEFORE_ROUTING,
        )

    @property
    def awaits_its_routing_to_close(self) -> bool:
        """Withdrawn before it was routed here: the routing that follows closes it."""
        return self.state is ResolutionState.CLOSED and self.reason == WITHDRAWN_BEFORE_ROUTING

    def routed_after_withdrawal(self, event: RequestRouted, *, now: datetime, terms: Terms) -> list[Effect]:
        """The request withdrawn before it was routed here arrives: closed (``withdrawn``), nothing posted."""
        if not self.awaits_its_routing_to_close:
            return []
        routed = RequestResolution.from_routed(event, now=now, terms=terms)
        self.about, self.routed, self.routed_at = routed.about, event, now
        self.state, self.reason = ResolutionState.ROUTED, None
        return self.withdraw(now=now)

    def acknowledge_after_withdrawal(self, ack: ErpAck, *, now: datetime) -> list[Effect]:
        """The ERP's answer to a posting sent before the withdrawal: recorded, the request stays closed."""
        posting = self.postings.get(ack.resolution_id)
        if posting is None:
            raise TransitionRefused(
                "unknown_resolution", f"no resolution {ack.resolution_id} for request {ack.request_id}"
            )
        self.postings[ack.resolution_id] = replace(
            posting,
            status=PostingStatus(ack.status),
            erp_document_id=ack.erp_document_id,
            erp_error=ack.error,
            acknowledged_at=now,
        )
        return []

    # -- Inside the transitions ----------------------------------------------------------

    def _require(self, states: set[ResolutionState], reason: str) -> None:
        if self.state not in states:
            allowed = " or ".join(sorted(states))
            raise TransitionRefused(reason, f"request {self.request_id} is {self.state}, not {allowed}")

    def _may_wait(self, now: datetime) -> bool:
        return self.wait_for_data_until is not None and now < self.wait_for_data_until

    def _await_reference_data(self, proposal: strategies.ForPerson, now: datetime) -> list[Effect]:
        if self.state is ResolutionState.AWAITING_REFERENCE_DATA:
            return []  # still waiting: nothing new to say
        self.state, self.reason = ResolutionState.AWAITING_REFERENCE_DATA, proposal.reason
        message = f"{proposal.awaiting} has not reached us yet; we will continue as soon as it does."
        return [self._status(RequestStatus.ON_HOLD, message, now, reason="awaiting_reference_data")]

    def _propose_postings(
        self, proposal: strategies.Posting | strategies.Postings, now: datetime, terms: Terms
    ) -> list[Effect]:
        """Post what the strategy proposes, once the policy's approvals are given.

        Several postings of one request (a dispute over several invoices, a payment split across
        invoices) are approved together: the policy applies to their sum, so splitting a claim
        across invoices never needs fewer approvals than the claim as a whole. Each posting has its
        own stable resolution id.
        """
        assert self.routed is not None  # checked by consider
        postings = proposal.postings if isinstance(proposal, strategies.Postings) else (proposal,)
        total = sum((posting.amount.amount for posting in postings), Decimal(0))
        required = (
            ()
            if all(posting.within_tolerance for posting in postings)
            else terms.policy.required_roles(postings[0].kind, total)
        )
        resolutions = tuple(
            domain.build_resolution(self.routed, posting, approvals=(), now=now) for posting in postings
        )
        self.pending = PendingPostings(
            resolutions, proposal.explanation, tuple(required), terms.policy.version
        )
        self.approvals, self.refusals = (), ()
        if not required:
            return self._issue(resolutions, now, terms)
        self.state = ResolutionState.AWAITING_APPROVAL
        what = (
            "it is"
            if len(postings) == 1
            else f"these {len(postings)} postings (together {_total(postings)}) are"
        )
        message = (
            f"{proposal.explanation} Before {what} posted, approval is needed by "
            f"{approvals.describe_roles(required)} (policy {terms.policy.version})."
        )
        return [self._status(RequestStatus.AWAITING_APPROVAL, message, now)]

    def _issue(self, resolutions: Sequence[ErpResolution], now: datetime, terms: Terms) -> list[Effect]:
        """Send the postings: once per resolution id, ever (one already issued is not sent again)."""
        assert self.pending is not None
        ids = tuple(resolution.resolution_id for resolution in resolutions)
        self.state, self.resolution_ids = ResolutionState.RESOLVED, ids
        effects: list[Effect] = []
        for resolution in resolutions:
            if resolution.resolution_id in self.postings:
                log.info("resolution.already_issued", resolution_id=resolution.resolution_id)
                continue
            self.postings[resolution.resolution_id] = IssuedPosting(
                resolution=resolution,
                status=PostingStatus.ISSUED,
                issued_at=now,
                ack_due_at=now + terms.ack_timeout,
            )
            effects.append(resolution)
        sent = ids[0] if len(ids) == 1 else ", ".join(ids)
        message = f"{self.pending.explanation} It has been sent for posting as {sent}."
        return [*effects, self._status(RequestStatus.RESOLVED, message, now)]

    def _status(
        self,
        status: RequestStatus,
        message: str,
        at: datetime,
        *,
        reason: str | None = None,
        occurrence: str = "",
    ) -> RequestStatusChanged:
        about = self.about
        return status_changed(
            request_id=self.request_id,
            channel=about.channel,
            source_id=about.source_id,
            customer_id=about.customer_id,
            status=status,
            reason=reason,
            message=message,
            queue=about.queue,
            priority=about.priority,
            sla_due_at=about.sla_due_at,
            at=at,
            occurrence=occurrence,
        )


def _total(postings: Sequence[strategies.Posting]) -> str:
    currency = postings[0].amount.currency
    return str(
        Money(amount=sum((posting.amount.amount for posting in postings), Decimal(0)), currency=currency)
    )
