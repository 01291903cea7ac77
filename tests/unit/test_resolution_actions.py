"""What people decide in the workspace, carried out by resolution's lifecycle and handlers: a
resolution decided (checked against resolution's documents, through the approval policy and
segregation of duties), a failed posting sent again, a request closed with a reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.resolution.app import ResolutionHandlers
from services.resolution.lifecycle import (
    Approvers,
    PostingStatus,
    RequestResolution,
    ResolutionState,
)
from shared.actions import (
    ClosureRequested,
    NoteAdded,
    PostingRetryRequested,
    ResolutionDecided,
    WorkspaceActionMessage,
)
from shared.contract import (
    ApprovalDecision,
    ErpAck,
    ErpResolution,
    Priority,
    RequestStatusChanged,
    RequestType,
)
from shared.delivery import MessageOrigin
from shared.directory import FileUserDirectory
from shared.lifecycle import TransitionRefused
from shared.money import Money
from shared.resolution_events import ApprovalEvaluated, ApprovalRequested, PaymentCandidatesFound
from shared.topics import ERP_RESOLUTIONS, REQUEST_STATUS
from tests.unit.fakes import FakeLedger, FakeResolutionStore, FakeTransaction
from tests.unit.test_resolution_lifecycle import (
    LATER,
    OVERCHARGED,
    TERMS,
    TWO_PAYMENTS_ALIKE,
    request,
    said,
)
from tests.unit.test_resolution_strategies import NOW, contract, facts, invoice, payment, person, routed, usd

ORIGIN = MessageOrigin(topic="requests.actions.v1", partition=0, offset=0, key="REQ-1")


def decided(**change: Any) -> ResolutionDecided:
    values: dict[str, Any] = {
        "event_id": "act-1",
        "request_id": "REQ-1",
        "correlation_id": "CASE-1",
        "occurred_at": LATER,
        "actor": "ada.agent",
        "actor_role": "agent",
        "kind": "payment_allocation",
        "payment_id": "PAY-2",
        "reason": "the bank reference names the invoice",
        **change,
    }
    return ResolutionDecided.model_validate(values)


def retry(**change: Any) -> PostingRetryRequested:
    values: dict[str, Any] = {
        "event_id": "act-2",
        "request_id": "REQ-1",
        "correlation_id": "CASE-1",
        "occurred_at": LATER,
        "actor": "ada.agent",
        "actor_role": "agent",
        "reason": "the ERP is back",
        **change,
    }
    return PostingRetryRequested.model_validate(values)


def closure(**change: Any) -> ClosureRequested:
    values: dict[str, Any] = {
        "event_id": "act-3",
        "request_id": "REQ-1",
        "correlation_id": "CASE-1",
        "occurred_at": LATER,
        "actor": "ada.agent",
        "actor_role": "agent",
        "reason_code": "answered",
        "comment": "told by phone",
        **change,
    }
    return ClosureRequested.model_validate(values)


def with_two_candidates() -> RequestResolution:
    the_request = request(RequestType.PAYMENT_QUERY)
    the_request.consider(TWO_PAYMENTS_ALIKE, now=NOW, terms=TERMS)
    assert the_request.state is ResolutionState.WITH_PERSON
    return the_request


def test_the_candidate_payments_are_told_as_data_beside_the_status() -> None:
    the_request = request(RequestType.PAYMENT_QUERY)
    _, found = the_request.consider(TWO_PAYMENTS_ALIKE, now=NOW, terms=TERMS)
    assert isinstance(found, PaymentCandidatesFound)
    assert found.reason == "several_payments_match"
    assert [(c.payment_id, str(c.unapplied), c.received_on.isoformat()) for c in found.candidates] == [
        ("PAY-1", "1,299.99 USD", "2026-10-20"),
        ("PAY-2", "1,299.99 USD", "2026-10-21"),
    ]


# --- A resolution decided ------------------------------------------------------------------


def test_a_chosen_candidate_payment_is_allocated_and_posted() -> None:
    the_request = with_two_candidates()
    effects = the_request.carry_out_decision(decided(), TWO_PAYMENTS_ALIKE, now=LATER, terms=TERMS)
    assert said(effects) == [("posting", "payment_allocation"), ("resolved", None)]
    posting = effects[0]
    assert isinstance(posting, ErpResolution)
    assert (posting.payment_id, posting.invoice_id, posting.amount) == (
        "PAY-2",
        "INV-1",
        Money(amount="1299.99", currency="USD"),
    )
    assert posting.corrected_amount == Money(amount="0.00", currency="USD")
    assert the_request.state is ResolutionState.RESOLVED
    assert the_request.decided_by == ("ada.agent",)
    # The same decision delivered again is the same posting (its resolution id comes from the action).
    again = with_two_candidates()
    repeat = again.carry_out_decision(decided(), TWO_PAYMENTS_ALIKE, now=LATER, terms=TERMS)[0]
    assert isinstance(repeat, ErpResolution)
    assert repeat.resolution_id == posting.resolution_id


OTHER_CUSTOMERS = facts(
    (invoice(),),
    (contract(),),
    (payment("PAY-9", "100.00", "2026-10-20", customer_id="CUST-2"),),
)


@pytest.mark.parametrize(
    ("decision", "known", "reason"),
    [
        pytest.param(
            decided(payment_id="PAY-9"), OTHER_CUSTOMERS, "payment_of_another_customer", id="another's"
        ),
        pytest.param(
            decided(payment_id="PAY-7"), TWO_PAYMENTS_ALIKE, "unknown_payment", id="unknown payment"
        ),
        pytest.param(
            decided(payment_id="PAY-1"),
            facts((invoice(),), (), (payment("PAY-1", "1299.99", "2026-10-20", status="applied"),)),
            "payment_already_applied",
            id="applied already",
        ),
        pytest.param(
            decided(amount={"amount": "1299.99", "currency": "EUR"}),
            TWO_PAYMENTS_ALIKE,
            "currency_mismatch",
            id="another currency",
        ),
        pytest.param(
            decided(amount=usd("2000.00")), TWO_PAYMENTS_ALIKE, "amount_above_payment", id="more than paid"
        ),
        pytest.param(
            decided(kind="credit_memo", payment_id=None, amount=usd("0")),
            OVERCHARGED,
            "amount_not_positive",
            id="a zero credit memo",
        ),
        pytest.param(
            decided(kind="credit_memo", payment_id=None, amount=None),
            OVERCHARGED,
            "amount_missing",
            id="a credit memo without amount",
        ),
        pytest.param(
            decided(kind="write_off", payment_id=None, amount=usd("5000.00")),
            OVERCHARGED,
            "amount_above_open",
            id="a write-off above the open amount",
        ),
        pytest.param(
            decided(kind="refund", payment_id=None, amount=usd("10.00")),
            OVERCHARGED,
            "refund_source_not_named",
            id="a refund of nothing",
        ),
        pytest.param(
            decided(kind="invoice_correction", payment_id=None, corrected_amount=usd("1500.00")),
            OVERCHARGED,
            "correction_not_a_reduction",
            id="a correction upwards",
        ),
        pytest.param(
            decided(kind="credit_memo", payment_id=None, invoice_id="INV-X", amount=usd("10.00")),
            OVERCHARGED,
            "unknown_invoice",
            id="an unknown invoice",
        ),
    ],
)
def test_a_decision_the_documents_do_not_allow_is_refused_and_changes_nothing(
    decision: ResolutionDecided, known: Any, reason: str
) -> None:
    the_request = with_two_candidates()
    with pytest.raises(TransitionRefused) as refused:
        the_request.carry_out_decision(decision, known, now=LATER, terms=TERMS)
    assert refused.value.reason == reason
    assert (the_request.state, the_request.decided_by, the_request.pending) == (
        ResolutionState.WITH_PERSON,
        (),
        None,
    )


def test_a_large_credit_memo_decided_waits_for_approval_and_its_decider_cannot_approve_it() -> None:
    the_request = request(RequestType.SERVICE_REQUEST)
    big = invoice(total=usd("20000.00"), open_amount=usd("20000.00"))
    decision = decided(kind="credit_memo", payment_id=None, amount=usd("5000.00"), actor="lena.lead")
    effects = the_request.carry_out_decision(decision, facts((big,)), now=LATER, terms=TERMS)
    assert said(effects) == [("awaiting_approval", None), ("ApprovalRequested", None)]
    requested = effects[1]
    assert isinstance(requested, ApprovalRequested)
    assert (requested.required_roles, requested.prepared_by) == (("team_lead",), ("lena.lead",))
    assert the_request.pending is not None
    assert the_request.pending.required_roles == ("team_lead",)

    own = ApprovalDecision(
        request_id="REQ-1", decision="approve", approver="Lena.Lead", role="team_lead", decided_at=LATER
    )
    refused = the_request.decide(
        own, Approvers(approver=person("lena.lead", "team_lead")), now=LATER, terms=TERMS
    )
    assert said(refused) == [("awaiting_approval", "segregation_of_duties"), ("ApprovalEvaluated", None)]
    evaluated = refused[1]
    assert isinstance(evaluated, ApprovalEvaluated)
    assert (evaluated.verdict, evaluated.reason, evaluated.still_needed) == (
        "refused",
        "segregation_of_duties",
        ("team_lead",),
    )
    status = refused[0]
    assert isinstance(status, RequestStatusChanged)
    assert "decided this resolution" in status.message
    other = ApprovalDecision(
        request_id="REQ-1", decision="approve", approver="tom.lead", role="team_lead", decided_at=LATER
    )
    approved = the_request.decide(
        other, Approvers(approver=person("tom.lead", "team_lead")), now=LATER, terms=TERMS
    )
    assert said(approved) == [
        ("approved", None),
        ("posting", "credit_memo"),
        ("resolved", None),
        ("ApprovalEvaluated", None),
    ]


def test_a_decision_is_refused_while_a_posting_is_pending_sent_or_the_request_is_closed() -> None:
    sent = request()
    sent.consider(OVERCHARGED, now=NOW, terms=TERMS)
    with pytest.raises(TransitionRefused) as refused:
        sent.carry_out_decision(
            decided(kind="credit_memo", amount=usd("1.00")), OVERCHARGED, now=LATER, terms=TERMS
        )
    assert refused.value.reason == "not_decidable_now"
    closed = with_two_candidates()
    closed.close_by_person(closure(), now=LATER)
    with pytest.raises(TransitionRefused) as refused:
        closed.carry_out_decision(decided(), TWO_PAYMENTS_ALIKE, now=LATER, terms=TERMS)
    assert refused.value.reason == "request_closed"


# --- A failed posting sent again ------------------------------------------------------------


def failed_once() -> tuple[RequestResolution, str]:
    the_request = request()
    posting = the_request.consider(OVERCHARGED, now=NOW, terms=TERMS)[0]
    assert isinstance(posting, ErpResolution)
    ack = ErpAck(
        resolution_id=posting.resolution_id, request_id="REQ-1", status="failed", error="period closed"
    )
    the_request.acknowledge(ack, now=NOW)
    assert the_request.state is ResolutionState.WITH_PERSON
    return the_request, posting.resolution_id


def test_a_failed_posting_is_sent_again_under_a_new_id_and_its_posting_closes_the_request() -> None:
    the_request, failed_id = failed_once()
    effects = the_request.retry_failed_postings(retry(), now=LATER, terms=TERMS)
    assert said(effects) == [("posting", "credit_memo"), ("resolved", "posting_retried")]
    again = effects[0]
    assert isinstance(again, ErpResolution)
    assert again.resolution_id != failed_id
    assert (again.amount, again.invoice_id) == (the_request.postings[failed_id].resolution.amount, "INV-1")
    assert the_request.resolution_ids == (again.resolution_id,)
    assert the_request.postings[failed_id].status is PostingStatus.FAILED  # kept, as the ERP answered

    # Sent again: a second retry finds nothing failed to send.
    with pytest.raises(TransitionRefused):
        the_request.retry_failed_postings(retry(event_id="act-5"), now=LATER, terms=TERMS)
    posted = ErpAck(
        resolution_id=again.resolution_id, request_id="REQ-1", status="posted", erp_document_id="D-1"
    )
    assert said(the_request.acknowledge(posted, now=LATER)) == [("closed", None)]
    assert the_request.state is ResolutionState.CLOSED


def test_a_retry_is_refused_without_a_failed_posting() -> None:
    the_request = request()
    the_request.consider(OVERCHARGED, now=NOW, terms=TERMS)  # sent, no answer yet
    with pytest.raises(TransitionRefused) as refused:
        the_request.retry_failed_postings(retry(), now=LATER, terms=TERMS)
    assert refused.value.reason == "no_failed_posting"
    failed, _ = failed_once()
    with pytest.raises(TransitionRefused) as refused:
        failed.retry_failed_postings(retry(resolution_id="RES-NOT-THIS"), now=LATER, terms=TERMS)
    assert refused.value.reason == "no_failed_posting"


# --- Closed by a person ----------------------------------------------------------------------


def test_a_person_closes_a_request_with_their_reason() -> None:
    the_request = with_two_candidates()
    (closed,) = the_request.close_by_person(closure(), now=LATER)
    assert isinstance(closed, RequestStatusChanged)
    assert (closed.status.value, closed.reason) == ("closed", "answered")
    assert "ada.agent" in closed.message
    assert "told by phone" in closed.message
    assert the_request.state is ResolutionState.CLOSED
    with pytest.raises(TransitionRefused) as refused:
        the_request.close_by_person(closure(event_id="act-4"), now=LATER)
    assert refused.value.reason == "request_closed"


def test_closing_a_request_awaiting_approval_cancels_the_approvals() -> None:
    the_request = request(RequestType.SERVICE_REQUEST)
    big = invoice(total=usd("20000.00"), open_amount=usd("20000.00"))
    the_request.carry_out_decision(
        decided(kind="credit_memo", payment_id=None, amount=usd("5000.00")),
        facts((big,)),
        now=LATER,
        terms=TERMS,
    )
    (closed,) = the_request.close_by_person(closure(reason_code="resolved_outside_system"), now=LATER)
    assert isinstance(closed, RequestStatusChanged)
    assert "no longer needed" in closed.message
    assert (the_request.state, the_request.pending, the_request.postings) == (
        ResolutionState.CLOSED,
        None,
        {},
    )


def test_a_request_whose_posting_waits_for_the_erp_is_not_closed() -> None:
    the_request = request()
    the_request.consider(OVERCHARGED, now=NOW, terms=TERMS)
    with pytest.raises(TransitionRefused) as refused:
        the_request.close_by_person(closure(), now=LATER)
    assert refused.value.reason == "not_closable_now"


# --- The handler -----------------------------------------------------------------------------


DIRECTORY = FileUserDirectory([person("lena.lead", "team_lead")])


def handlers(store: FakeResolutionStore) -> ResolutionHandlers:
    return ResolutionHandlers(store, TERMS, clock=lambda: LATER + timedelta(seconds=1), directory=DIRECTORY)


async def test_the_handler_carries_out_a_decision_and_ignores_actions_it_does_not_own() -> None:
    store = FakeResolutionStore(facts_now=TWO_PAYMENTS_ALIKE)
    store.saved["REQ-1"] = with_two_candidates()
    resolution = handlers(store)
    tx = FakeTransaction(FakeLedger())
    await resolution.carry_out(WorkspaceActionMessage(decided()), tx, ORIGIN)
    assert [message.topic for message in tx.emitted] == [ERP_RESOLUTIONS, REQUEST_STATUS]
    assert store.saved["REQ-1"].state is ResolutionState.RESOLVED

    note = NoteAdded.model_validate(
        {**decided().model_dump(), "event_type": "NoteAdded", "event_id": "act-9", "text": "hello"}
    )
    ignored = FakeTransaction(FakeLedger())
    await resolution.carry_out(WorkspaceActionMessage(note), ignored, ORIGIN)
    assert ignored.emitted == []


async def test_the_handler_refuses_an_action_on_a_request_resolution_does_not_know() -> None:
    resolution = handlers(FakeResolutionStore())
    with pytest.raises(TransitionRefused) as refused:
        await resolution.carry_out(WorkspaceActionMessage(closure()), FakeTransaction(FakeLedger()), ORIGIN)
    assert refused.value.reason == "unknown_request"


def test_a_request_routed_again_keeps_its_decision_and_takes_its_new_queue() -> None:
    the_request = with_two_candidates()
    again = routed(RequestType.PAYMENT_QUERY).model_copy(
        update={"event_id": "e2", "queue": "collections", "priority": Priority.URGENT}
    )
    assert the_request.follow_route(again) == []
    assert (
        the_request.about.queue,
        the_request.about.priority.value if the_request.about.priority else None,
    ) == (
        "collections",
        "urgent",
    )
    assert the_request.state is ResolutionState.WITH_PERSON
    (closed,) = the_request.close_by_person(closure(), now=LATER)
    assert isinstance(closed, RequestStatusChanged)
    assert closed.queue == "collections"


async def test_the_handler_keeps_the_new_queue_of_a_request_routed_again_and_posts_nothing() -> None:
    store = FakeResolutionStore(facts_now=TWO_PAYMENTS_ALIKE)
    store.saved["REQ-1"] = with_two_candidates()
    resolution = handlers(store)
    again = routed(RequestType.PAYMENT_QUERY).model_copy(update={"event_id": "e2", "queue": "collections"})
    tx = FakeTransaction(FakeLedger())
    await resolution.resolve(again, tx, ORIGIN)
    assert tx.emitted == []
    assert store.saved["REQ-1"].about.queue == "collections"
