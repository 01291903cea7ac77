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

What comes next (a question for the customer that puts the request ``on_hold`` as
``awaiting_customer``, the answer that resumes it, reminders and ``no_response``, withdrawals,
updates of a case, reopening a closed request) is a transition more on this object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from services.validation import domain, duplicates
from services.validation.domain import DuplicateCriterion, DuplicateRule, References, Verdict
from services.validation.duplicates import Claim
from shared.contract import Customer, RequestStatus, RequestStatusChanged, RequestType
from shared.events import (
    CheckResult,
    CustomerSnapshot,
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
class Rules:
    """What the service's configuration says for every request."""

    hold_limit: timedelta
    """How long a hold waits for a document the ERP sends before it turns into a rejection."""
    duplicates: DuplicateRule


@dataclass(frozen=True)
class Hold:
    """A request on hold: what it waits for, since when, and until when for documents."""

    request_id: str
    customer_id: str
    reason: str
    waiting_for: tuple[str, ...]
    held_at: datetime
    reject_after: datetime

    def due(self, customers: dict[str, Customer], known: References, *, now: datetime) -> bool:
        """Worth deciding again: its time is up, or something it waits for has come or changed."""
        return domain.hold_expired(self.waiting_for, self.reject_after, now=now) or domain.wait_may_be_over(
            self.waiting_for, customers, known, customer_id=self.customer_id
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
        if self.state is ValidationState.VALIDATED:
            self.state = ValidationState.CLOSED
        return []

    # -- Inside the transitions -------------------------------------------------------------

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
            event_id=event_id_for(self.request_id, "RequestValidated"),
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
                self.request_id, "RequestSetAside", verdict.outcome.value, reason, occurrence
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
            occurrence=",".join(verdict.waiting_for),
            at=now,
        )
