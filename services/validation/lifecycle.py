"""A request's life in validation, as a typed object: states, and transitions that say what they cause.

Pure: no I/O. The handlers load a :class:`RequestValidation` from the store, ask it what it needs
to know (:meth:`RequestValidation.lookup`, :meth:`RequestValidation.claims_for`), call one
transition with what the store found, save it, and emit what the transition returned: the
statuses for the customer and the events for routing and the audit. A transition the state does
not allow raises :class:`shared.lifecycle.TransitionRefused`.

The states (:class:`ValidationState`) and how a request moves between them::

    new ─capture/conclude─┬─ on_hold ─conclude (re-checked when what it waits for may have come,
                          │            or its time is up)─▶ any of these
                          ├─ validated (passed on to routing: open for duplicate matching)
                          ├─ duplicate_of (repeats an open request: linked to it)
                          └─ rejected
    validated ─finish (closed or rejected downstream)─▶ closed

Being *open* (passed on, not closed or rejected downstream since) is kept beside the state: a
request captured again after it was passed on is decided again, and stays open while it is.

The customer's part::

    new/on_hold ─conclude (something only the customer can give is missing)─▶ on_hold (awaiting_customer)
    any but closed ─ask (a person's question from the workspace)─▶ on_hold (awaiting_customer)
    on_hold (awaiting_customer) ─answer (a reply in the thread)─▶ new (decided again from where it stands)
    new/on_hold/rejected/duplicate_of ─update (the CRM case with other content)─▶ new (decided again)
    on_hold (awaiting_customer) ─chase (timer)─▶ itself, reminded once halfway | closed (no_response)
    not passed on ─withdraw─▶ closed (withdrawn)   (passed on: resolution closes it)
    closed ─reopen (a reply in the thread, within the window)─▶ new (reopened, decided again)

Each decision after the first round (an answer, an update, a question, a reopening) is a new
*round*: its events and statuses have ids of their own, so routing and the customer see the
request validated (and routed) again rather than a repeat they drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from services.validation import domain, duplicates
from services.validation.domain import DuplicateCriterion, DuplicateRule, References, Verdict
from services.validation.duplicates import Claim
from shared.business_time import BusinessCalendar
from shared.contract import Customer, RequestStatus, RequestStatusChanged, RequestType
from shared.events import (
    CaseUpdated,
    CheckResult,
    CustomerSnapshot,
    EmailReplyAdded,
    RequestCaptured,
    RequestDetails,
    RequestSetAside,
    RequestValidated,
)
from shared.identity import event_id_for
from shared.lifecycle import Effect, TransitionRefused
from shared.messages import status_changed
from shared.status_order import StatusPosition, at_storage_precision, position_of, rank_of

log = structlog.get_logger(__name__)

FINISHING_STATUSES = frozenset({RequestStatus.CLOSED, RequestStatus.REJECTED})
"""A request stops being open for duplicate matching once one of these is published for it."""
OPENING_RANK = rank_of(RequestStatus.VALIDATED)
"""An open request was opened by validation's own ``validated`` status, at its ``opened_at``."""


def finishing(status: RequestStatus) -> bool:
    """Whether ``status`` published downstream may end an open request (:meth:`RequestValidation.finish`)."""
    return status in FINISHING_STATUSES


class ValidationState(StrEnum):
    """Where a request stands in validation (stored as ``state`` beside the last ``outcome``)."""

    NEW = "new"
    """Captured (or captured again), not decided yet: never stored."""
    ON_HOLD = "on_hold"
    """Waiting for a document the ERP has not sent, a KYC check, or the customer's answer."""
    VALIDATED = "validated"
    """Passed on to routing."""
    DUPLICATE = "duplicate_of"
    """Repeats a request that is still open: linked to it, not passed on."""
    REJECTED = "rejected"
    CLOSED = "closed"
    """Passed on, then closed or rejected downstream."""


@dataclass(frozen=True)
class AnswerWait:
    """How long a question waits for the customer's answer: business days of a calendar, or (tests,
    demos) plain seconds. One reminder halfway, then the request is closed (``no_response``)."""

    business_days: int = 10
    calendar: BusinessCalendar | None = None
    seconds: float | None = None

    def reminder_at(self, asked_at: datetime) -> datetime:
        if self.seconds is not None or self.calendar is None:
            return asked_at + self._plain() / 2
        return _after_business_days(self.calendar, asked_at, max(1, self.business_days // 2))

    def deadline(self, asked_at: datetime) -> datetime:
        if self.seconds is not None or self.calendar is None:
            return asked_at + self._plain()
        return _after_business_days(self.calendar, asked_at, self.business_days)

    def _plain(self) -> timedelta:
        return (
            timedelta(seconds=self.seconds)
            if self.seconds is not None
            else timedelta(days=self.business_days)
        )


def _after_business_days(calendar: BusinessCalendar, start: datetime, days: int) -> datetime:
    """The same local time ``days`` working days of ``calendar`` after ``start``."""
    local = start.astimezone(calendar.time_zone)
    day, counted = local.date(), 0
    for _ in range(days * 7 + 3660):  # a calendar without working days is refused when built
        day += timedelta(days=1)
        if calendar.window(day) is not None:
            counted += 1
            if counted == days:
                break
    return datetime.combine(day, local.timetz()).astimezone(start.tzinfo)


@dataclass(frozen=True)
class Rules:
    """What the service's configuration says for every request."""

    hold_limit: timedelta
    """How long a hold waits for a document the ERP sends before it turns into a rejection."""
    duplicates: DuplicateRule
    answer_wait: AnswerWait = field(default_factory=AnswerWait)
    """How long a question waits for the customer's answer (a reminder halfway, then no_response)."""


@dataclass(frozen=True)
class Hold:
    """A request on hold: what it waits for, since when, and until when for documents."""

    request_id: str
    customer_id: str
    reason: str
    waiting_for: tuple[str, ...]
    held_at: datetime
    reject_after: datetime
    reminded_at: datetime | None = None
    """When the customer was reminded of the question (once, halfway to the deadline)."""

    @property
    def awaits_customer(self) -> bool:
        """Waiting for the customer's answer to a question."""
        return self.reason == domain.AWAITING_CUSTOMER

    def due(self, customers: dict[str, Customer], known: References, *, now: datetime) -> bool:
        """Worth deciding again: its time is up, or something it waits for has come or changed."""
        return domain.hold_expired(self.waiting_for, self.reject_after, now=now) or domain.wait_may_be_over(
            self.waiting_for, customers, known, customer_id=self.customer_id
        )

    def chase_due(self, wait: AnswerWait, *, now: datetime) -> bool:
        """A question whose reminder or deadline has come."""
        if not self.awaits_customer:
            return False
        return now >= wait.deadline(self.held_at) or (
            self.reminded_at is None and now >= wait.reminder_at(self.held_at)
        )


@dataclass(frozen=True)
class OpenRequest:
    """A request validation passed on: who, what and since when (its duplicate claims aside)."""

    request_id: str
    customer_id: str
    request_type: RequestType | None
    invoice_ids: tuple[str, ...]
    payment_ids: tuple[str, ...]
    opened_at: datetime


@dataclass(frozen=True)
class Outcome:
    """The last decision, as the audit and operators read it: every check that ran."""

    outcome: RequestStatus
    reason: str | None
    customer_id: str | None
    waiting_for: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    decided_at: datetime


@dataclass(frozen=True)
class Lookup:
    """What the views must be asked to decide the request: its customer, and the documents it names."""

    customer_id: str | None
    sender_email: str | None
    invoice_ids: tuple[str, ...]
    payment_ids: tuple[str, ...]
    contract_ids: tuple[str, ...]
    invoice_numbers: tuple[str, ...]
    payment_numbers: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    """What the views answered: the customers the request may be about, and the documents found."""

    customers: Sequence[Customer]
    references: References


@dataclass(eq=False)  # one object per request and load: the store tells loaded ones apart by identity
class RequestValidation:
    """One captured request in validation: its state, its hold, whether it is open, its last outcome."""

    request_id: str
    captured: RequestCaptured | None = None
    """The request as captured (kept while it is held; not stored otherwise)."""
    state: ValidationState = ValidationState.NEW
    hold: Hold | None = None
    opened: OpenRequest | None = None
    """As passed on to routing, the last time it was."""
    claims: tuple[str, ...] = ()
    """The duplicate claims it holds while open (:mod:`services.validation.duplicates`)."""
    claim_criteria: tuple[DuplicateCriterion, ...] = ()
    """The duplicate rule its claims were made under."""
    open: bool = False
    """Passed on, and not closed or rejected downstream since."""
    closed_at: datetime | None = None
    duplicate_of: str | None = None
    outcome: Outcome | None = field(default=None)
    round: int = 0
    """How many times it was opened to a new decision (an answer, an update, a question, a reopening)."""
    reply_while_open: RequestDetails | None = None
    """The last reply that came while the request was with a team (what it said)."""
    reply_while_open_at: datetime | None = None
    """When it came: a closing older than it (published before the reply, seen after) reopens."""

    @property
    def held(self) -> bool:
        """On hold: decided again when what it waits for may have come, or its time is up."""
        return self.state is ValidationState.ON_HOLD and self.hold is not None

    # -- What to look up --------------------------------------------------------------------

    def lookup(self) -> Lookup:
        """The customer and documents to read: a held request keeps the customer it was held for."""
        details = self._captured().details
        held = self.hold if self.state is ValidationState.ON_HOLD else None
        return Lookup(
            customer_id=held.customer_id if held else details.customer_id,
            sender_email=None if held else details.sender_email,
            invoice_ids=details.invoice_ids,
            payment_ids=details.payment_ids,
            contract_ids=(details.contract_id,) if details.contract_id else (),
            invoice_numbers=(*details.invoice_candidates, *details.loose_candidates),
            payment_numbers=details.payment_candidates,
        )

    def check(self, facts: Facts, *, now: datetime) -> Verdict | None:
        """The verdict on the request as it stands, from what the views know now.

        A new (or newly captured) request finds its customer; a held one is decided again for the
        customer it was held for (None: that customer is gone from the master data, so there is
        nothing to decide until it is back), and once its time is up, documents still unknown are
        rejections.
        """
        details = self._captured().details
        if self.state is not ValidationState.ON_HOLD or self.hold is None:
            return domain.decide(details, facts.customers, facts.references, today=now.date())
        customer = next((c for c in facts.customers if c.customer_id == self.hold.customer_id), None)
        if customer is None:
            return None
        expired = now >= self.hold.reject_after
        return domain.validate_request(
            details, customer, facts.references, today=now.date(), hold_expired=expired
        )

    def claims_for(self, verdict: Verdict, rules: Rules) -> tuple[str, ...]:
        """The duplicate claims the request makes if ``verdict`` passes it on (none otherwise)."""
        if verdict.outcome is not RequestStatus.VALIDATED or verdict.customer is None:
            return ()
        details = verdict.details or self._captured().details
        return duplicates.claim_keys_of(verdict.customer.customer_id, details, rules.duplicates.criteria)

    # -- Transitions ------------------------------------------------------------------------

    def capture(self, event: RequestCaptured) -> None:
        """Captured (or captured again): it is decided from what it says now; a hold keeps its clock."""
        if event.request_id != self.request_id:
            raise TransitionRefused("another_request", f"{event.request_id} is not {self.request_id}")
        self.captured, self.state = event, ValidationState.NEW

    def conclude(
        self, verdict: Verdict, claimed: Sequence[Claim], *, now: datetime, rules: Rules
    ) -> list[Effect]:
        """Record ``verdict`` and say what it is to routing, the audit and the customer.

        ``claimed``: which of the request's claims (:meth:`claims_for`) other requests hold; one
        held by an earlier open request within the window makes this one its duplicate. A hold
        still waiting for the same things says nothing new; a hold's time limit is set once.
        """
        if self.state not in (ValidationState.NEW, ValidationState.ON_HOLD):
            raise TransitionRefused("already_decided", f"request {self.request_id} is {self.state}")
        captured = self._captured()
        if self.state is ValidationState.ON_HOLD:
            log.info("hold.decided_again", outcome=verdict.outcome.value, reason=verdict.reason)
        customer_id = verdict.customer.customer_id if verdict.customer else captured.details.customer_id
        held = self.hold
        effects: list[Effect] = []
        if verdict.outcome is RequestStatus.ON_HOLD:
            if held is not None and (held.reason, held.waiting_for) == (verdict.reason, verdict.waiting_for):
                self.state = ValidationState.ON_HOLD
                return []  # still waiting for the same things: nothing new to say
            self.hold = Hold(
                request_id=self.request_id,
                customer_id=customer_id or "",
                reason=verdict.reason or domain.AWAITING_REFERENCE_DATA,
                waiting_for=verdict.waiting_for,
                held_at=held.held_at if held else now,
                reject_after=held.reject_after if held else now + rules.hold_limit,
            )
            self.state, self.duplicate_of = ValidationState.ON_HOLD, None
            effects += self._set_aside(verdict, now, customer_id, reject_after=self.hold.reject_after)
        else:
            self.hold = None
        outcome = verdict.outcome
        if verdict.outcome is RequestStatus.VALIDATED and verdict.customer is not None:
            effects += self._pass_on(verdict, verdict.customer, claimed, now, rules)
            outcome = RequestStatus(self.state.value)  # validated, or duplicate_of
        elif verdict.outcome is RequestStatus.REJECTED:
            self.state, self.duplicate_of = ValidationState.REJECTED, None
            effects += self._set_aside(verdict, now, customer_id)
        self.outcome = Outcome(
            outcome=outcome,
            reason=verdict.reason,
            customer_id=customer_id,
            waiting_for=verdict.waiting_for,
            checks=verdict.checks,
            decided_at=now,
        )
        return effects

    def finish(self, status: RequestStatus, at: datetime) -> list[Effect]:
        """A status published downstream: closed or rejected, an open request is open no longer.

        Only a closing newer than the request's opening counts (statuses are applied in the order
        they happened: a ``rejected`` of an earlier life of the request, arriving late, closes
        nothing); and nothing here reopens a closed request. It causes no event: its claims go.
        """
        if status not in FINISHING_STATUSES or not self.open or self.opened is None:
            return []
        closing = position_of(status, at)
        if closing <= StatusPosition(at_storage_precision(self.opened.opened_at), OPENING_RANK):
            log.info("status.older_than_opening_ignored", request_id=self.request_id, closing_at=closing.at)
            return []
        self.open, self.closed_at = False, closing.at
        if self.state in (ValidationState.VALIDATED, ValidationState.ON_HOLD):
            # On hold, passed on: a question a person asked while it was with a team; closed
            # downstream, it waits for nothing any more.
            self.state, self.hold = ValidationState.CLOSED, None
        reply, reply_at = self.reply_while_open, self.reply_while_open_at
        self.reply_while_open = self.reply_while_open_at = None
        if reply is not None and reply_at is not None and reply_at > closing.at:
            # The reply came after the request was closed, but was read here before the closing:
            # it reopens the request, as it would have had they come in order.
            return self._reopen(reply, reply_at)
        return []

    def answer(self, reply: EmailReplyAdded, *, now: datetime) -> list[Effect]:
        """A reply in the request's email thread.

        Waiting for the customer: the reply's content is added to the request
        (:func:`domain.with_answer`) and it is decided again from where it stands. Closed: the
        reply reopens it (``reopened``, then decided again; intake opens a new request instead
        when the reply comes after its window). Otherwise (being checked, with a team) the reply
        is only recorded (audit, workspace). An automatic reply answers nothing.
        """
        if reply.automatic or reply.understood is None:
            return []
        # Intake saw the request closed; validation may not have seen the closing status yet.
        closed_downstream = reply.reopens and self.state is ValidationState.VALIDATED
        if self.state is ValidationState.CLOSED or closed_downstream:
            return self._reopen(reply.understood, now)
        hold = self.hold
        if self.state is ValidationState.VALIDATED and self.open:
            self.reply_while_open, self.reply_while_open_at = reply.understood, reply.occurred_at
            return []
        if self.state is not ValidationState.ON_HOLD or hold is None or not hold.awaits_customer:
            return []
        details = domain.with_answer(self._captured().details, reply.understood, hold.waiting_for)
        self._next_round(details, reply.event_id, now)
        return []

    def update(self, case: CaseUpdated, *, now: datetime) -> list[Effect]:
        """The CRM case published again with other content.

        Withdrawn: closed (:meth:`withdraw`). Not passed on (on hold, rejected, a duplicate), or
        waiting for the answer to a person's question: decided again on what the case says now.
        Passed on or closed: the update is recorded (audit, the workspace) and the request stays
        where it is; a team has it.
        """
        if case.withdrawn:
            return self.withdraw(now=now)
        hold = self.hold
        asked = self.state is ValidationState.ON_HOLD and hold is not None and hold.awaits_customer
        if not asked and (self.state in (ValidationState.VALIDATED, ValidationState.CLOSED) or self.open):
            if self.captured is not None:
                self.captured = self.captured.model_copy(update={"details": case.details})
            return []
        self._next_round(case.details, case.event_id, now, correlation_id=case.correlation_id)
        return []

    def withdraw(self, *, now: datetime) -> list[Effect]:
        """The customer withdrew the case: closed (``withdrawn``) if validation holds the request.

        A request passed on is with resolution, which closes it (exactly one service does); one
        closed already stays as it is.
        """
        if self.state is ValidationState.CLOSED or self.open:
            return []
        if self.captured is None:
            raise TransitionRefused("not_captured", f"validation keeps no capture of {self.request_id}")
        return self._close("withdrawn", "You withdrew this request; it is closed.", now)

    def ask(self, question: str, *, action_id: str, now: datetime, rules: Rules) -> list[Effect]:
        """A person's question for the customer (the workspace): on hold, ``awaiting_customer``,
        the question as the message; the answer resumes it like any other."""
        if self.state is ValidationState.CLOSED:
            raise TransitionRefused("closed", f"request {self.request_id} is closed")
        captured = self._captured()
        self.round += 1
        customer_id = (self.outcome.customer_id if self.outcome else None) or captured.details.customer_id
        self.hold = Hold(
            request_id=self.request_id,
            customer_id=customer_id or "",
            reason=domain.AWAITING_CUSTOMER,
            waiting_for=(domain.awaited("customer", "question"),),
            held_at=now,
            reject_after=now + rules.hold_limit,
        )
        self.state = ValidationState.ON_HOLD
        verdict = Verdict(
            RequestStatus.ON_HOLD,
            (),
            reason=domain.AWAITING_CUSTOMER,
            message=question,
            waiting_for=self.hold.waiting_for,
        )
        self.outcome = Outcome(
            outcome=RequestStatus.ON_HOLD,
            reason=domain.AWAITING_CUSTOMER,
            customer_id=customer_id,
            waiting_for=self.hold.waiting_for,
            checks=(),
            decided_at=now,
        )
        log.info("question.asked", action_id=action_id)
        return self._set_aside(verdict, now, customer_id, reject_after=self.hold.reject_after)

    def chase(self, *, now: datetime, rules: Rules) -> list[Effect]:
        """A question unanswered: a reminder once halfway, then closed with reason ``no_response``."""
        hold = self.hold
        if self.state is not ValidationState.ON_HOLD or hold is None or not hold.awaits_customer:
            return []
        wait = rules.answer_wait
        if now >= wait.deadline(hold.held_at):
            message = (
                "We did not hear back from you about our question, so we have closed this request. "
                "Reply to this message or write to us again whenever you are ready."
            )
            return self._close("no_response", message, now)
        if hold.reminded_at is not None or now < wait.reminder_at(hold.held_at):
            return []
        self.hold = replace(hold, reminded_at=now)
        question = self.outcome.checks if self.outcome else ()
        asked = " ".join(check.detail for check in question if not check.passed) or "our question"
        deadline = wait.deadline(hold.held_at).date().isoformat()
        message = (
            f"A reminder: we are still waiting for your answer to our question, without which we "
            f"cannot go on with your request. If we do not hear from you by {deadline}, we will close it."
        )
        log.info("question.reminded", asked=asked)
        details = self._captured().details
        return [
            status_changed(
                request_id=self.request_id,
                channel=details.channel,
                source_id=details.source_id,
                customer_id=hold.customer_id or None,
                status=RequestStatus.ON_HOLD,
                reason=domain.AWAITING_CUSTOMER,
                message=message,
                occurrence=f"reminder|round-{self.round}",
                at=now,
            )
        ]

    @property
    def withdrawn(self) -> bool:
        """Closed by validation because the customer withdrew the case."""
        return (
            self.state is ValidationState.CLOSED
            and self.outcome is not None
            and (self.outcome.outcome, self.outcome.reason) == (RequestStatus.CLOSED, "withdrawn")
        )

    @property
    def waits_only_for_the_customer(self) -> bool:
        """On hold for the customer's answer and nothing else: the timer only chases it."""
        return (
            self.held and self.hold is not None and domain.waits_only_for_the_customer(self.hold.waiting_for)
        )

    # -- Inside the transitions -------------------------------------------------------------

    def _reopen(self, answer: RequestDetails, now: datetime) -> list[Effect]:
        """A closed request reopened by a reply: ``reopened``, then decided again with the reply."""
        captured = self._captured()
        details = domain.with_answer(captured.details, answer, ())
        self._next_round(details, f"reopened-{self.round + 1}", now)
        self.open, self.closed_at = False, None
        return [
            status_changed(
                request_id=self.request_id,
                channel=details.channel,
                source_id=details.source_id,
                customer_id=(self.outcome.customer_id if self.outcome else None) or details.customer_id,
                status=RequestStatus.REOPENED,
                message="Thank you for your reply: we have reopened your request and will check it again.",
                occurrence=f"round-{self.round}",
                at=now,
            )
        ]

    def _next_round(
        self, details: RequestDetails, cause: str, now: datetime, *, correlation_id: str | None = None
    ) -> None:
        """Open the request to a new decision on ``details`` (a hold keeps its clock)."""
        captured = self._captured()
        self.round += 1
        self.captured = RequestCaptured(
            event_id=event_id_for(self.request_id, "RequestCaptured", f"round-{self.round}", cause),
            request_id=self.request_id,
            correlation_id=correlation_id or captured.correlation_id,
            occurred_at=now,
            details=details,
            follows_up=captured.follows_up,
        )
        self.state = ValidationState.NEW

    def _close(self, reason: str, message: str, now: datetime) -> list[Effect]:
        """Closed by validation itself (withdrawn, no response): it waits for nothing any more."""
        captured = self._captured()
        customer_id = (self.outcome.customer_id if self.outcome else None) or captured.details.customer_id
        self.state, self.hold, self.closed_at = ValidationState.CLOSED, None, now
        self.outcome = Outcome(
            outcome=RequestStatus.CLOSED,
            reason=reason,
            customer_id=customer_id,
            waiting_for=(),
            checks=self.outcome.checks if self.outcome else (),
            decided_at=now,
        )
        details = captured.details
        return [
            status_changed(
                request_id=self.request_id,
                channel=details.channel,
                source_id=details.source_id,
                customer_id=customer_id,
                status=RequestStatus.CLOSED,
                reason=reason,
                message=message,
                occurrence=f"round-{self.round}",
                at=now,
            )
        ]

    def _round_parts(self) -> tuple[str, ...]:
        """What sets this round's event ids apart from the first round's (which keep theirs)."""
        return (f"round-{self.round}",) if self.round else ()

    def _captured(self) -> RequestCaptured:
        if self.captured is None:
            raise TransitionRefused("not_captured", f"validation keeps no capture of {self.request_id}")
        return self.captured

    def _pass_on(
        self, verdict: Verdict, customer: Customer, claimed: Sequence[Claim], now: datetime, rules: Rules
    ) -> list[Effect]:
        """A valid request goes to routing, unless it repeats one that is still open.

        What goes on is the request as validation understood it: the documents it names by their
        ERP ids (whatever format the customer wrote them in), amounts from the text in their
        currency. It claims what a repeat would share with it; a claim another open request holds
        makes it that request's duplicate. The store reads the claims and writes them in one
        transaction: two copies validated at once cannot both pass.
        """
        captured = self._captured()
        details = verdict.details or captured.details
        earlier = duplicates.earliest_holder(claimed, self.request_id, since=now - rules.duplicates.window)
        if earlier is not None:
            self.state, self.duplicate_of = ValidationState.DUPLICATE, earlier.request_id
            duplicate = Verdict(
                RequestStatus.DUPLICATE_OF,
                verdict.checks,
                customer,
                reason="duplicate",
                message=domain.duplicate_message(earlier.request_id),
                details=details,
            )
            return self._set_aside(duplicate, now, customer.customer_id, duplicate_of=earlier.request_id)
        self.state, self.duplicate_of, self.open, self.closed_at = ValidationState.VALIDATED, None, True, None
        self.opened = OpenRequest(
            request_id=self.request_id,
            customer_id=customer.customer_id,
            request_type=details.request_type,
            invoice_ids=details.invoice_ids,
            payment_ids=details.payment_ids,
            opened_at=now,
        )
        self.claims, self.claim_criteria = self.claims_for(verdict, rules), rules.duplicates.criteria
        validated = RequestValidated(
            event_id=event_id_for(self.request_id, "RequestValidated", *self._round_parts()),
            request_id=self.request_id,
            correlation_id=captured.correlation_id,
            occurred_at=now,
            details=details,
            customer_id=customer.customer_id,
            customer_tier=customer.tier,
            customer=CustomerSnapshot.of(customer),
            invoices=verdict.invoices,
            checks=verdict.checks,
        )
        return [validated, self._status(verdict, now, customer.customer_id)]

    def _set_aside(
        self,
        verdict: Verdict,
        now: datetime,
        customer_id: str | None,
        *,
        reject_after: datetime | None = None,
        duplicate_of: str | None = None,
    ) -> list[Effect]:
        """A held, rejected or duplicate request: its checks for the audit, its status for the customer."""
        captured = self._captured()
        occurrence = ",".join(verdict.waiting_for)
        reason = verdict.reason or ""
        set_aside = RequestSetAside(
            event_id=event_id_for(
                self.request_id,
                "RequestSetAside",
                verdict.outcome.value,
                reason,
                occurrence,
                *self._round_parts(),
            ),
            request_id=self.request_id,
            correlation_id=captured.correlation_id,
            occurred_at=now,
            details=verdict.details or captured.details,
            customer_id=customer_id,
            customer=CustomerSnapshot.of(verdict.customer) if verdict.customer else None,
            verdict=verdict.outcome,
            reason=reason,
            message=verdict.message,
            checks=verdict.checks,
            waiting_for=verdict.waiting_for,
            reject_after=reject_after,
            duplicate_of=duplicate_of,
        )
        return [set_aside, self._status(verdict, now, customer_id, duplicate_of=duplicate_of)]

    def _status(
        self, verdict: Verdict, now: datetime, customer_id: str | None, *, duplicate_of: str | None = None
    ) -> RequestStatusChanged:
        details: RequestDetails = self._captured().details
        return status_changed(
            request_id=self.request_id,
            channel=details.channel,
            source_id=details.source_id,
            customer_id=customer_id,
            status=verdict.outcome,
            reason=verdict.reason,
            message=verdict.message,
            duplicate_of=duplicate_of,
            occurrence="|".join([",".join(verdict.waiting_for), *self._round_parts()]),
            at=now,
        )
