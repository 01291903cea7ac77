"""Validation's part of asking instead of refusing, and of cases that change (issue 9 items 4, 5),
transition by transition: answers, updates, withdrawals, questions from the workspace, reminders,
no response, reopening."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.validation.domain import DuplicateRule
from services.validation.lifecycle import AnswerWait, RequestValidation, Rules, ValidationState
from shared.contract import RequestStatus, RequestStatusChanged, RequestType
from shared.events import CaseUpdated, EmailReplyAdded, RequestValidated
from shared.lifecycle import TransitionRefused
from tests.unit.test_validation_lifecycle import NOW, decided, new, said
from tests.unit.test_validation_rules import details, invoice, numbered, refs

RULES = Rules(
    hold_limit=timedelta(hours=24),
    duplicates=DuplicateRule(window=timedelta(days=30)),
    answer_wait=AnswerWait(seconds=100),
)


def reply(**understood: Any) -> EmailReplyAdded:
    return EmailReplyAdded(
        event_id="EVT-REPLY",
        request_id="REQ-1",
        correlation_id="CASE-1",
        occurred_at=NOW,
        message_id="reply@x.example",
        sender="jane@x.example",
        subject="Re: price",
        received_at=NOW,
        understood=details(invoice_ids=(), **understood),
    )


def case_update(*, withdrawn: bool = False, **change: Any) -> CaseUpdated:
    return CaseUpdated(
        event_id="EVT-UPDATE",
        request_id="REQ-1",
        correlation_id="CASE-1",
        occurred_at=NOW,
        details=details(**change),
        changed=("invoice_ids",),
        fingerprint="f2",
        withdrawn=withdrawn,
    )


def asked_for_invoice() -> RequestValidation:
    request = new(invoice_ids=())
    assert said(decided(request))[-1] == ("status", "on_hold", "awaiting_customer")
    return request


def statuses(effects: list[Any]) -> list[tuple[str, str | None]]:
    return [(e.status.value, e.reason) for e in effects if isinstance(e, RequestStatusChanged)]


def only_status(effects: list[Any]) -> RequestStatusChanged:
    (status,) = [effect for effect in effects if isinstance(effect, RequestStatusChanged)]
    return status


def test_a_reply_naming_the_invoice_resumes_the_request_as_a_new_round() -> None:
    request = asked_for_invoice()
    assert request.answer(reply(invoice_candidates=("INV-1",)), now=NOW) == []
    assert request.state is ValidationState.NEW
    effects = decided(request, refs(), now=NOW + timedelta(minutes=1))
    assert said(effects) == [("validated", "CUST-1", None), ("status", "validated", None)]
    validated = effects[0]
    assert isinstance(validated, RequestValidated)
    assert validated.details.invoice_ids == ("INV-1",)
    # A round of its own: routing does not drop it as a repeat of an earlier validation.
    first = new()
    first_validated = decided(first)[0]
    assert isinstance(first_validated, RequestValidated)
    assert first_validated.event_id != validated.event_id


def test_an_automatic_reply_answers_nothing() -> None:
    request = asked_for_invoice()
    out_of_office = reply(invoice_candidates=("INV-1",)).model_copy(update={"automatic": True})
    assert request.answer(out_of_office, now=NOW) == []
    assert request.state is ValidationState.ON_HOLD


def test_the_answer_picks_one_of_two_invoices_a_number_matched() -> None:
    request = new(invoice_ids=(), invoice_candidates=("4711",))
    documents = numbered(invoice(invoice_id="RE-4711"), invoice(invoice_id="INV-0004711"))
    assert said(decided(request, documents))[-1] == ("status", "on_hold", "awaiting_customer")
    request.answer(reply(invoice_candidates=("INV-0004711", "RE-4711")), now=NOW)
    assert request.captured is not None
    assert request.captured.details.invoice_candidates == ("INV-0004711",)


def test_a_reply_to_a_request_being_handled_is_only_recorded() -> None:
    request = new()
    decided(request)
    assert request.answer(reply(invoice_candidates=("INV-2",)), now=NOW) == []
    assert request.state is ValidationState.VALIDATED


def test_a_reply_to_a_closed_request_reopens_it_and_it_is_decided_again() -> None:
    request = new()
    decided(request)
    request.finish(RequestStatus.CLOSED, NOW + timedelta(hours=1))
    later = NOW + timedelta(days=2)
    effects = request.answer(reply(), now=later)
    assert statuses(effects) == [("reopened", None)]
    assert request.state is ValidationState.NEW
    assert said(decided(request, now=later))[-1] == ("status", "validated", None)
    assert request.open


def test_a_reply_intake_saw_reopen_reopens_a_request_validation_still_thinks_open() -> None:
    request = new()
    decided(request)
    effects = request.answer(reply().model_copy(update={"reopens": True}), now=NOW + timedelta(hours=1))
    assert statuses(effects) == [("reopened", None)]


def test_an_update_of_a_case_on_hold_or_rejected_is_decided_again_on_what_it_says_now() -> None:
    request = asked_for_invoice()
    request.update(case_update(invoice_ids=("INV-1",)), now=NOW)
    assert said(decided(request))[-1] == ("status", "validated", None)
    rejected = new(disputed_amount=None, request_type=RequestType.BILLING_DISPUTE)
    rejected.state = ValidationState.REJECTED
    rejected.update(case_update(), now=NOW)
    assert rejected.state is ValidationState.NEW


def test_an_update_of_a_request_passed_on_leaves_it_with_its_team() -> None:
    request = new()
    decided(request)
    assert request.update(case_update(invoice_ids=("INV-9",)), now=NOW) == []
    assert request.state is ValidationState.VALIDATED


@pytest.mark.parametrize("passed_on", [False, True])
def test_a_withdrawal_closes_what_validation_holds_and_leaves_the_rest_to_resolution(passed_on: bool) -> None:
    request = new() if passed_on else asked_for_invoice()
    if passed_on:
        decided(request)
    effects = request.update(case_update(withdrawn=True), now=NOW)
    if passed_on:
        assert effects == []
        assert request.state is ValidationState.VALIDATED
    else:
        assert statuses(effects) == [("closed", "withdrawn")]
        assert (request.state, request.hold) == (ValidationState.CLOSED, None)


def test_an_unanswered_question_is_reminded_once_then_closed_for_no_response() -> None:
    request = asked_for_invoice()
    assert request.chase(now=NOW + timedelta(seconds=10), rules=RULES) == []
    reminder = request.chase(now=NOW + timedelta(seconds=50), rules=RULES)
    assert statuses(reminder) == [("on_hold", "awaiting_customer")]
    assert "reminder" in only_status(reminder).message.lower()
    assert request.chase(now=NOW + timedelta(seconds=60), rules=RULES) == []
    closed = request.chase(now=NOW + timedelta(seconds=100), rules=RULES)
    assert statuses(closed) == [("closed", "no_response")]
    assert request.state is ValidationState.CLOSED
    assert only_status(reminder).event_id != only_status(closed).event_id


def test_a_hold_for_reference_data_is_not_chased() -> None:
    request = new()
    decided(request, refs(invoices={"INV-1": None}))
    assert request.chase(now=NOW + timedelta(days=30), rules=RULES) == []


def test_a_question_from_the_workspace_holds_a_request_even_one_with_its_team() -> None:
    request = new()
    decided(request)
    effects = request.ask("Which delivery do you mean?", action_id="A1", now=NOW, rules=RULES)
    assert statuses(effects) == [("on_hold", "awaiting_customer")]
    assert only_status(effects).message == "Which delivery do you mean?"
    assert request.waits_only_for_the_customer
    request.answer(reply(), now=NOW + timedelta(minutes=5))
    again = decided(request, now=NOW + timedelta(minutes=5))
    assert said(again)[-1] == ("status", "validated", None)


def test_a_closed_request_takes_no_question() -> None:
    request = new()
    decided(request)
    request.finish(RequestStatus.CLOSED, NOW + timedelta(hours=1))
    with pytest.raises(TransitionRefused):
        request.ask("Anything else?", action_id="A2", now=NOW, rules=RULES)


def test_business_days_skip_the_calendar_s_days_off() -> None:
    from zoneinfo import ZoneInfo

    from shared.business_time import BusinessCalendar

    calendar = BusinessCalendar(
        time_zone=ZoneInfo("Europe/Zurich"),
        working_days=frozenset(range(5)),
        opens=NOW.time().replace(hour=8),
        closes=NOW.time().replace(hour=18),
    )
    wait = AnswerWait(business_days=10, calendar=calendar)
    monday = NOW  # 2026-11-23 is a Monday
    assert wait.deadline(monday).date().isoformat() == "2026-12-07"
    assert wait.reminder_at(monday).date().isoformat() == "2026-11-30"


def test_a_reply_read_before_a_closing_published_before_it_reopens_the_request() -> None:
    request = new()
    decided(request)
    reply_at = NOW + timedelta(hours=1, seconds=2)
    assert request.answer(reply().model_copy(update={"occurred_at": reply_at}), now=reply_at) == []
    effects = request.finish(RequestStatus.CLOSED, NOW + timedelta(hours=1))
    assert statuses(effects) == [("reopened", None)]
    assert request.state is ValidationState.NEW


def test_a_reply_that_came_before_the_closing_reopens_nothing() -> None:
    request = new()
    decided(request)
    request.answer(reply().model_copy(update={"occurred_at": NOW + timedelta(minutes=5)}), now=NOW)
    assert request.finish(RequestStatus.CLOSED, NOW + timedelta(hours=1)) == []
    assert request.state is ValidationState.CLOSED


def test_a_changed_case_answers_a_question_asked_while_the_request_was_with_its_team() -> None:
    request = new()
    decided(request)
    request.ask("Which delivery do you mean?", action_id="A3", now=NOW, rules=RULES)
    request.update(case_update(description="The delivery of 3 November."), now=NOW)
    assert request.state is ValidationState.NEW
    assert said(decided(request))[-1] == ("status", "validated", None)
