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

from services.resolution import approvals, decisions, domain, strategies
from services.resolution.approvals import Outcome, RecordedApproval
from services.resolution.policy import ApprovalPolicy
from shared.actions import ClosureRequested, PostingRetryRequested, ResolutionDecided
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
from shared.identity import event_id_for
from shared.lifecycle import Effect, TransitionRefused
from shared.messages import status_changed
from shared.money import Money
from shared.resolution_events import (
    ApprovalEvaluated,
    ApprovalRequested,
    CandidatePayment,
    PaymentCandidatesFound,
)

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


_DECIDABLE = frozenset(
    {ResolutionState.ROUTED, ResolutionState.AWAITING_REFERENCE_DATA, ResolutionState.WITH_PERSON}
)
"""Where a person may decide a resolution: nothing pending approval, sent or finished."""
_CLOSABLE = frozenset({*_DECIDABLE, ResolutionState.AWAITING_APPROVAL})
"""Where a person may close a request: not while a posting waits for the ERP, not when finished."""

CLOSURE_SENTENCES = {
    "answered": "Your request has been answered.",
    "resolved_outside_system": "Your request has been dealt with.",
    "withdrawn_by_customer": "Your request has been withdrawn as you asked.",
    "no_response": "We have not heard back from you, so this request is closed.",
    "duplicate": "This request repeats another one, which we are handling.",
    "not_a_finance_request": "This request is not one for our finance teams.",
}
"""What the customer reads when a person closes the request, by ``ClosureRequested.reason_code``."""


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
    decided_by: tuple[str, ...] = ()
    """The directory ids of the people who decided a resolution of it: they may not approve it."""

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
        proposal = strategies.propose(
            self.routed, facts, write_off_tolerance=terms.policy.write_off_tolerance
        )
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
            return [
                self._status(RequestStatus.ROUTED, proposal.explanation, now, reason=proposal.reason),
                *self._candidates_found(proposal, facts, now),
            ]
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
            deciders=frozenset(self.decided_by),
        )
        log.info(
            "approval.evaluated",
            approver=decision.approver,
            verdict=outcome.verdict.value,
            why=outcome.reason,
        )
        who = f"{decision.approver} ({decision.role})"
        occurrence = f"{decision.approver}:{decision.decision}:{decision.decided_at.isoformat()}"
        evaluated = self._evaluated(decision, approvers, outcome, occurrence, now)
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
                ),
                evaluated,
            ]
        if outcome.verdict is approvals.Verdict.REJECTED:
            self.state, self.reason, self.rejected_by = (
                ResolutionState.REJECTED,
                "approval_rejected",
                decision.approver,
            )
            message = f"Rejected by {who}: {outcome.explanation}. Nothing has been posted."
            return [self._status(RequestStatus.REJECTED, message, now, reason="approval_rejected"), evaluated]
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
                ),
                evaluated,
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
            evaluated,
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
            # The request's current postings: one refused and sent again under a new id is replaced.
            current = [self.postings[one] for one in self.resolution_ids if one in self.postings]
            siblings = [other for other in current if other.resolution_id != ack.resolution_id]
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

    # -- What people decide in the workspace (requests.actions.v1) ------------------------

    def carry_out_decision(
        self, decision: ResolutionDecided, facts: strategies.Facts, *, now: datetime, terms: Terms
    ) -> list[Effect]:
        """A person's resolution, checked against ``facts`` and posted through the approval policy.

        From a request no posting is pending or sent for (routed, waiting for reference data, with
        a person). The person who decided is recorded: segregation of duties keeps them from
        approving it (:meth:`decide`). A decision the documents do not allow is refused with why.
        """
        self._allow(
            _DECIDABLE,
            "not_decidable_now",
            "A decision is taken only while no posting of the request is waiting or sent.",
        )
        if self.routed is None or self.about.customer_id is None:
            raise TransitionRefused("no_routed_event", f"request {self.request_id} was stored without it")
        posting = decisions.posting_for(
            decision,
            customer_id=self.about.customer_id,
            request_invoice_ids=self.routed.details.invoice_ids,
            facts=facts,
            tolerance=terms.policy.write_off_tolerance,
        )
        if decision.actor not in self.decided_by:
            self.decided_by = (*self.decided_by, decision.actor)
        self.reason = "decided_by_person"
        return self._propose_postings(posting, now, terms)

    def follow_route(self, event: RequestRouted) -> list[Effect]:
        """Routing routed the request again (a person re-routed or reclassified it): keep its new
        queue, priority, SLA and type, so the statuses resolution publishes from now on say them.

        Nothing is decided again: what was proposed, approved or posted stays (a replay of the
        first routing changes nothing). While nothing is proposed the new details are kept for a
        person's decision.
        """
        details = event.details
        if (event.queue, event.priority, event.sla_due_at) == (
            self.about.queue,
            self.about.priority,
            self.about.sla_due_at,
        ) and details == (self.routed.details if self.routed else None):
            return []  # the same routing again
        self.about = replace(
            self.about,
            queue=event.queue,
            priority=event.priority,
            sla_due_at=event.sla_due_at,
            request_type=details.request_type.value if details.request_type else None,
        )
        if self.state in _DECIDABLE:
            self.routed = event
        return []

    def retry_failed_postings(
        self, retry: PostingRetryRequested, *, now: datetime, terms: Terms
    ) -> list[Effect]:
        """Send again the postings the ERP refused (``erp.acks.v1`` status failed), each under a new id.

        The ERP keys postings by ``resolution_id``: the same id again would be answered as the
        one it already refused (an idempotent ERP replays its answer; ``crs erp`` answers by the
        id alone). Nothing of a failed posting was posted, so a new id posts it once; it is
        derived from the failed id and the retry's own event id, so a retry delivered twice is
        one posting. The approvals given travel with it (the posting is the same).
        """
        self._allow(
            frozenset({ResolutionState.WITH_PERSON}),
            "no_failed_posting",
            "No posting of this request was refused by the ERP: there is nothing to send again.",
        )
        failed = [
            resolution_id
            for resolution_id in self.resolution_ids
            if resolution_id in self.postings and self.postings[resolution_id].status is PostingStatus.FAILED
        ]
        if retry.resolution_id is not None:
            if retry.resolution_id not in failed:
                raise TransitionRefused(
                    "no_failed_posting", f"{retry.resolution_id} is not a failed posting of {self.request_id}"
                )
            failed = [retry.resolution_id]
        if not failed:
            raise TransitionRefused("no_failed_posting", f"request {self.request_id} has no failed posting")
        effects: list[Effect] = []
        renamed: dict[str, str] = {}
        for old_id in failed:
            new_id = domain.retry_resolution_id(old_id, retry.event_id)
            renamed[old_id] = new_id
            if new_id in self.postings:
                continue  # sent already
            resolution = self.postings[old_id].resolution.model_copy(
                update={"resolution_id": new_id, "effective_on": now.date(), "created_at": now}
            )
            self.postings[new_id] = IssuedPosting(
                resolution=resolution,
                status=PostingStatus.ISSUED,
                issued_at=now,
                ack_due_at=now + terms.ack_timeout,
            )
            effects.append(resolution)
        self.resolution_ids = tuple(renamed.get(one, one) for one in self.resolution_ids)
        self.state, self.reason = ResolutionState.RESOLVED, "posting_retried"
        sent = ", ".join(f"{old} as {new}" for old, new in renamed.items())
        message = (
            f"The posting refused by the ERP has been sent again ({sent}) by {retry.actor}: {retry.reason}."
        )
        return [
            *effects,
            self._status(
                RequestStatus.RESOLVED, message, now, reason="posting_retried", occurrence=retry.event_id
            ),
        ]

    def close_by_person(self, closure: ClosureRequested, *, now: datetime) -> list[Effect]:
        """A person closes the request with a reason: ``closed``.

        Approvals still pending are cancelled (nothing of them is posted); what was posted stays
        posted. Refused while a posting waits for the ERP's answer (close after it comes) and for a
        request already closed or rejected.
        """
        self._allow(
            _CLOSABLE,
            "not_closable_now",
            "A posting waits for the ERP's answer: close the request once it has come.",
        )
        cancelled = self.pending is not None and self.state is ResolutionState.AWAITING_APPROVAL
        if cancelled:
            self.pending = None
        self.state, self.reason = ResolutionState.CLOSED, closure.reason_code
        message = CLOSURE_SENTENCES[closure.reason_code]
        if cancelled:
            message += " The approvals it waited for are no longer needed; nothing has been posted."
        comment = f": {closure.comment}" if closure.comment else ""
        message += f" Closed by {closure.actor}{comment}."
        return [
            self._status(
                RequestStatus.CLOSED, message, now, reason=closure.reason_code, occurrence=closure.event_id
            )
        ]

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

    @property
    def _correlation_id(self) -> str:
        return self.routed.correlation_id if self.routed is not None else self.about.source_id

    def _pending_ids(self) -> tuple[str, ...]:
        return tuple(r.resolution_id for r in self.pending.resolutions) if self.pending else ()

    def _candidates_found(
        self, proposal: strategies.ForPerson, facts: strategies.Facts, now: datetime
    ) -> list[Effect]:
        """The payments a person chooses from, as data for the workspace (none: nothing to say)."""
        payments = [facts.payments[one] for one in proposal.candidates if one in facts.payments]
        if not payments:
            return []
        return [
            PaymentCandidatesFound(
                event_id=event_id_for(self.request_id, "PaymentCandidatesFound", *proposal.candidates),
                request_id=self.request_id,
                correlation_id=self._correlation_id,
                occurred_at=now,
                reason=proposal.reason,
                invoice_ids=self.routed.details.invoice_ids if self.routed else (),
                candidates=tuple(
                    CandidatePayment(
                        payment_id=payment.payment_id,
                        amount=payment.amount,
                        unapplied=Money(
                            amount=strategies.remaining_of(payment), currency=payment.amount.currency
                        ),
                        received_on=payment.received_on,
                        reference=payment.reference,
                    )
                    for payment in payments
                ),
            )
        ]

    def _evaluated(
        self,
        decision: ApprovalDecision,
        approvers: Approvers,
        outcome: Outcome,
        occurrence: str,
        now: datetime,
    ) -> ApprovalEvaluated:
        """An approval decision as resolution counted it, as data for the workspace."""
        return ApprovalEvaluated(
            event_id=event_id_for(self.request_id, "ApprovalEvaluated", occurrence),
            request_id=self.request_id,
            correlation_id=self._correlation_id,
            occurred_at=now,
            approver=decision.approver,
            approver_id=approvers.approver.id if approvers.approver is not None else None,
            role=decision.role,
            decision=decision.decision,
            decided_at=decision.decided_at,
            verdict=outcome.verdict.value,
            reason=outcome.reason if outcome.verdict is approvals.Verdict.REFUSED else None,
            explanation=outcome.explanation,
            still_needed=outcome.still_needed,
        )

    def _allow(self, states: frozenset[ResolutionState], reason: str, why: str) -> None:
        """Refuse a person's action the state does not allow: ``request_closed`` once it is finished.

        The detail is read by the person who acted (the workspace shows it): ``why`` in their
        words first, then the states for whoever looks into it.
        """
        if self.state in states:
            return
        if self.state in (ResolutionState.CLOSED, ResolutionState.REJECTED):
            reason, why = "request_closed", "The request is closed already."
        allowed = " or ".join(sorted(states))
        raise TransitionRefused(reason, f"{why} (request {self.request_id} is {self.state}, not {allowed})")

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
        totals = _totals(postings)
        requirement = (
            None
            if all(posting.within_tolerance for posting in postings)
            else terms.policy.requirement_for_sum(postings[0].kind, [posting.amount for posting in postings])
        )
        required = requirement.roles if requirement is not None else ()
        resolutions = tuple(
            domain.build_resolution(self.routed, posting, approvals=(), now=now) for posting in postings
        )
        self.pending = PendingPostings(
            resolutions, proposal.explanation, tuple(required), terms.policy.version
        )
        self.approvals, self.refusals = (), ()
        if requirement is None or not requirement.roles:
            return self._issue(resolutions, now, terms)
        self.state = ResolutionState.AWAITING_APPROVAL
        what = (
            "it is"
            if len(postings) == 1
            else f"these {len(postings)} postings (together {' + '.join(map(str, totals))}) are"
        )
        message = (
            f"{proposal.explanation} Before {what} posted, approval is needed by "
            f"{approvals.describe_roles(required)} (policy {terms.policy.version}), "
            f"because {requirement.basis}."
        )
        requested = ApprovalRequested(
            event_id=event_id_for(self.request_id, "ApprovalRequested", *self._pending_ids()),
            request_id=self.request_id,
            correlation_id=self._correlation_id,
            occurred_at=now,
            kind=postings[0].kind,
            amount=terms.policy.measured_total(totals),
            amounts=totals,
            required_roles=tuple(required),
            policy_version=terms.policy.version,
            explanation=message,
            prepared_by=self.decided_by,
        )
        return [self._status(RequestStatus.AWAITING_APPROVAL, message, now), requested]

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


def _totals(postings: Sequence[strategies.Posting]) -> tuple[Money, ...]:
    """The postings' totals, one per currency (never one sum of amounts in different currencies),
    in the order the currencies first come."""
    sums: dict[str, Decimal] = {}
    for posting in postings:
        currency = posting.amount.currency
        sums[currency] = sums.get(currency, Decimal(0)) + posting.amount.amount
    return tuple(Money(amount=amount, currency=currency) for currency, amount in sums.items())
