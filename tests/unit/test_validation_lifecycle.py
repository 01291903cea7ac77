"""Validation's lifecycle, transition by transition: what each verdict does to a request, and what it
causes (statuses, events for routing and the audit); holds, duplicates, closing, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.validation.domain import DuplicateRule, References
from services.validation.duplicates import Claim, claim_keys_of
from services.validation.lifecycle import (
    Facts,
    Hold,
    OpenRequest,
    RequestValidation,
    Rules,
    ValidationState,
)
from shared.contract import Customer, RequestStatus, RequestStatusChanged, RequestType
from shared.events import RequestCaptured, RequestSetAside, RequestValidated
from shared.lifecycle import Effect, TransitionRefused
from tests.unit.test_validation_rules import customer, details, invoice, refs

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULES = Rules(hold_limit=timedelta(hours=24), duplicates=DuplicateRule(window=timedelta(days=30)))


def captured(request_id: str = "REQ-1", **change: Any) -> RequestCaptured:
    return RequestCaptured(
        event_id=f"EVT-{request_id}",
        request_id=request_id,
        correlation_id="CASE-1",
        occurred_at=NOW,
        details=details(**change),
    )


def new(request_id: str = "REQ-1", **change: Any) -> RequestValidation:
    request = RequestValidation(request_id)
    request.capture(captured(request_id, **change))
    return request


def decided(
    request: RequestValidation,
    references: References | None = None,
    *,
    customers: tuple[Customer, ...] | None = None,
    claimed: tuple[Claim, ...] = (),
    now: datetime = NOW,
) -> list[Effect]:
    """Check the request against these views and conclude, as the handlers do."""
    facts = Facts(
        (customer(),) if customers is None else customers, refs() if references is None else references
    )
    verdict = request.check(facts, now=now)
    assert verdict is not None
    return request.conclude(verdict, claimed, now=now, rules=RULES)


def said(effects: list[Effect]) -> list[tuple[str, str, str | None]]:
    """What the effects are: (kind, status or verdict, reason)."""
    summary: list[tuple[str, str, str | None]] = []
    for effect in effects:
        if isinstance(effect, RequestStatusChanged):
            summary.append(("status", effect.status.value, effect.reason))
        elif isinstance(effect, RequestSetAside):
            summary.append(("set_aside", effect.verdict.value, effect.reason))
        elif isinstance(effect, RequestValidated):
            summary.append(("validated", effect.customer_id, None))
    return summary


UNKNOWN_INVOICE = refs(invoices={"INV-1": None})


@pytest.mark.parametrize(
    ("change", "customers", "references", "state", "effects"),
    [
        pytest.param(
            {},
            None,
            None,
            ValidationState.VALIDATED,
            [("validated", "CUST-1", None), ("status", "validated", None)],
            id="in order: passed on",
        ),
        pytest.param(
            {"customer_id": "CUST-9"},
            (),
            None,
            ValidationState.REJECTED,
            [("set_aside", "rejected", "unknown_customer"), ("status", "rejected", "unknown_customer")],
            id="unknown customer: rejected",
        ),
        pytest.param(
            {},
            None,
            UNKNOWN_INVOICE,
            ValidationState.ON_HOLD,
            [
                ("set_aside", "on_hold", "awaiting_reference_data"),
                ("status", "on_hold", "awaiting_reference_data"),
            ],
            id="invoice not known yet: held",
        ),
        pytest.param(
            {"invoice_ids": (), "invoice_candidates": ()},
            None,
            None,
            ValidationState.ON_HOLD,
            [("set_aside", "on_hold", "awaiting_customer"), ("status", "on_hold", "awaiting_customer")],
            id="no invoice named: the customer is asked",
        ),
    ],
)
def test_a_new_request_is_decided_and_says_so(
    change: dict[str, Any],
    customers: tuple[Customer, ...] | None,
    references: References | None,
    state: ValidationState,
    effects: list[tuple[str, str, str | None]],
) -> None:
    request = new(**change)
    assert said(decided(request, references, customers=customers)) == effects
    assert request.state is state
    assert request.outcome is not None
    assert request.outcome.outcome.value == state.value
    assert request.open is (state is ValidationState.VALIDATED)
    assert (request.hold is not None) is (state is ValidationState.ON_HOLD)


def test_a_request_passed_on_is_open_with_its_claims_and_the_events_carry_what_was_understood() -> None:
    request = new()
    validated, status = decided(request)
    assert isinstance(validated, RequestValidated)
    assert validated.details.invoice_ids == ("INV-1",)
    assert [snapshot.invoice_id for snapshot in validated.invoices] == ["INV-1"]
    assert isinstance(status, RequestStatusChanged)
    assert status.message == "Your request has been checked and is being assigned to a team."
    assert request.opened == OpenRequest("REQ-1", "CUST-1", RequestType.BILLING_DISPUTE, ("INV-1",), (), NOW)
    assert request.claims == claim_keys_of("CUST-1", validated.details, RULES.duplicates.criteria)
    assert request.claims


def held() -> RequestValidation:
    request = new()
    decided(request, UNKNOWN_INVOICE)
    return request


def test_a_hold_has_its_time_limit_and_its_captured_request() -> None:
    request = held()
    assert request.hold == Hold(
        "REQ-1", "CUST-1", "awaiting_reference_data", ("invoice:INV-1",), NOW, NOW + RULES.hold_limit
    )
    assert request.captured is not None
    assert request.held


def test_a_hold_still_waiting_for_the_same_things_says_nothing_new() -> None:
    request = held()
    outcome = request.outcome
    assert decided(request, UNKNOWN_INVOICE, now=NOW + timedelta(minutes=5)) == []
    assert (request.state, request.outcome) == (ValidationState.ON_HOLD, outcome)


def test_a_hold_whose_invoice_arrived_is_passed_on_and_let_go() -> None:
    request = held()
    effects = decided(request, now=NOW + timedelta(minutes=5))
    assert said(effects) == [("validated", "CUST-1", None), ("status", "validated", None)]
    assert (request.state, request.hold, request.open) == (ValidationState.VALIDATED, None, True)


def test_a_hold_past_its_limit_rejects_what_is_still_unknown() -> None:
    request = held()
    effects = decided(request, UNKNOWN_INVOICE, now=NOW + RULES.hold_limit)
    assert said(effects) == [
        ("set_aside", "rejected", "unknown_invoice"),
        ("status", "rejected", "unknown_invoice"),
    ]
    assert (request.state, request.hold) == (ValidationState.REJECTED, None)


def test_a_hold_waiting_for_something_else_keeps_its_clock() -> None:
    request = held()
    also_payment = refs(invoices={"INV-1": None}, payments={"PAY-1": None})
    later = NOW + timedelta(hours=1)
    request.capture(captured(payment_ids=("PAY-1",)))  # captured again, naming a payment too
    effects = decided(request, also_payment, now=later)
    assert said(effects)[0] == ("set_aside", "on_hold", "awaiting_reference_data")
    assert request.hold is not None
    assert request.hold.waiting_for == ("invoice:INV-1", "payment:PAY-1")
    assert (request.hold.held_at, request.hold.reject_after) == (NOW, NOW + RULES.hold_limit)


def test_a_held_request_is_decided_again_for_the_customer_it_was_held_for_or_not_at_all() -> None:
    request = held()
    assert request.lookup().customer_id == "CUST-1"
    assert request.lookup().sender_email is None
    gone = Facts((), refs())
    assert request.check(gone, now=NOW) is None


TWO_INVOICES = refs(invoices={"INV-1": invoice(), "INV-2": invoice(invoice_id="INV-2")})


@pytest.mark.parametrize(
    ("earlier", "repeat", "criteria", "is_duplicate"),
    [
        pytest.param({}, {}, ("type", "invoice"), True, id="same customer, type and invoice"),
        pytest.param(
            {},
            {"channel": "email", "customer_id": None, "sender_email": "jane@acme.example"},
            ("type", "invoice"),
            True,
            id="across channels",
        ),
        pytest.param({"customer_id": "CUST-2"}, {}, ("type", "invoice"), False, id="another customer"),
        pytest.param(
            {"request_type": RequestType.INVOICE_CORRECTION},
            {},
            ("type", "invoice"),
            False,
            id="another type",
        ),
        pytest.param({"invoice_ids": ("INV-2",)}, {}, ("type", "invoice"), False, id="another invoice"),
        pytest.param(
            {"invoice_ids": ("INV-2", "INV-1")}, {}, ("type", "invoice"), True, id="one invoice in common"
        ),
        pytest.param(
            {"request_type": RequestType.INVOICE_CORRECTION},
            {},
            ("invoice",),
            True,
            id="configured to ignore the type",
        ),
    ],
)
def test_a_request_repeating_an_open_one_is_its_duplicate(
    earlier: dict[str, Any], repeat: dict[str, Any], criteria: tuple[Any, ...], is_duplicate: bool
) -> None:
    rules = Rules(RULES.hold_limit, DuplicateRule(window=timedelta(days=30), criteria=criteria))
    other = new("REQ-EARLIER", **earlier)
    verdict = other.check(
        Facts((customer(customer_id=earlier.get("customer_id", "CUST-1")),), TWO_INVOICES), now=NOW
    )
    assert verdict is not None
    other.conclude(verdict, (), now=NOW - timedelta(days=2), rules=rules)
    held_by_other = {key: Claim(key, "REQ-EARLIER", NOW - timedelta(days=2)) for key in other.claims}

    request = new(**repeat)
    verdict = request.check(Facts((customer(),), TWO_INVOICES), now=NOW)
    assert verdict is not None
    claimed = [held_by_other[key] for key in request.claims_for(verdict, rules) if key in held_by_other]
    effects = request.conclude(verdict, claimed, now=NOW, rules=rules)

    if is_duplicate:
        assert said(effects) == [
            ("set_aside", "duplicate_of", "duplicate"),
            ("status", "duplicate_of", "duplicate"),
        ]
        assert (request.state, request.duplicate_of, request.open) == (
            ValidationState.DUPLICATE,
            "REQ-EARLIER",
            False,
        )
        status = effects[1]
        assert isinstance(status, RequestStatusChanged)
        assert status.duplicate_of == "REQ-EARLIER"
        assert "REQ-EARLIER" in status.message
    else:
        assert request.state is ValidationState.VALIDATED


@pytest.mark.parametrize(
    ("holder", "opened", "is_duplicate"),
    [
        pytest.param("REQ-EARLIER", NOW - timedelta(days=29), True, id="within the window"),
        pytest.param("REQ-EARLIER", NOW - timedelta(days=31), False, id="outside the window"),
        pytest.param("REQ-1", NOW - timedelta(days=2), False, id="never itself"),
    ],
)
def test_only_another_request_opened_within_the_window_makes_a_duplicate(
    holder: str, opened: datetime, is_duplicate: bool
) -> None:
    request = new()
    verdict = request.check(Facts((customer(),), refs()), now=NOW)
    assert verdict is not None
    claimed = [Claim(key, holder, opened) for key in request.claims_for(verdict, RULES)]
    request.conclude(verdict, claimed, now=NOW, rules=RULES)
    assert (request.state is ValidationState.DUPLICATE) is is_duplicate


def test_a_request_naming_nothing_the_rule_compares_claims_nothing() -> None:
    request = new(request_type=RequestType.ACCOUNT_UPDATE, invoice_ids=())
    verdict = request.check(Facts((customer(),), refs()), now=NOW)
    assert verdict is not None
    assert request.claims_for(verdict, RULES) == ()


def opened_request() -> RequestValidation:
    request = new()
    decided(request)
    return request


@pytest.mark.parametrize(
    ("status", "at", "still_open"),
    [
        pytest.param(RequestStatus.CLOSED, NOW + timedelta(hours=1), False, id="closed after opening"),
        pytest.param(RequestStatus.REJECTED, NOW + timedelta(hours=1), False, id="rejected downstream"),
        pytest.param(
            RequestStatus.REJECTED, NOW - timedelta(days=1), True, id="a rejection of an earlier life"
        ),
        pytest.param(RequestStatus.RESOLVED, NOW + timedelta(hours=1), True, id="not a closing"),
    ],
)
def test_an_open_request_is_finished_only_by_a_newer_closing(
    status: RequestStatus, at: datetime, still_open: bool
) -> None:
    request = opened_request()
    assert request.finish(status, at) == []
    assert request.open is still_open
    assert request.state is (ValidationState.VALIDATED if still_open else ValidationState.CLOSED)


def test_a_closed_request_stays_closed() -> None:
    request = opened_request()
    request.finish(RequestStatus.CLOSED, NOW + timedelta(hours=1))
    request.finish(RequestStatus.CLOSED, NOW + timedelta(hours=2))
    assert (request.open, request.closed_at) == (False, NOW + timedelta(hours=1))


def test_transitions_the_state_does_not_allow_are_refused() -> None:
    request = opened_request()
    verdict = request.check(Facts((customer(),), refs()), now=NOW)
    assert verdict is not None
    with pytest.raises(TransitionRefused) as decided_twice:
        request.conclude(verdict, (), now=NOW, rules=RULES)
    assert decided_twice.value.reason == "already_decided"
    with pytest.raises(TransitionRefused) as another:
        request.capture(captured("REQ-2"))
    assert another.value.reason == "another_request"
    with pytest.raises(TransitionRefused) as uncaptured:
        RequestValidation("REQ-3").lookup()
    assert uncaptured.value.reason == "not_captured"


def test_captured_again_after_it_was_passed_on_it_is_decided_again_and_stays_open() -> None:
    request = opened_request()
    request.capture(captured())
    assert request.state is ValidationState.NEW
    effects = decided(request, UNKNOWN_INVOICE, now=NOW + timedelta(hours=1))
    assert said(effects)[1] == ("status", "on_hold", "awaiting_reference_data")
    assert (request.state, request.open) == (ValidationState.ON_HOLD, True)


def test_every_status_is_about_the_request_as_captured() -> None:
    request = new(channel="email", customer_id=None, sender_email="jane@acme.example", source_id="<m@x>")
    effects = decided(request)
    status = effects[-1]
    assert isinstance(status, RequestStatusChanged)
    assert (status.channel.value, status.source_id, status.customer_id) == ("email", "<m@x>", "CUST-1")
