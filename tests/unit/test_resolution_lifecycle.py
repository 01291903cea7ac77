"""Resolution's lifecycle, transition by transition: what the strategy's proposal, an approval, the
ERP's answer and the ack timer do to a request, and what each causes (statuses, postings)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.resolution.lifecycle import (
    Approvers,
    PostingStatus,
    RequestResolution,
    ResolutionState,
    Terms,
)
from services.resolution.strategies import Facts
from shared.contract import (
    ApprovalDecision,
    ErpAck,
    ErpResolution,
    RequestStatus,
    RequestStatusChanged,
    RequestType,
)
from shared.lifecycle import Effect, TransitionRefused
from tests.unit.test_resolution_strategies import (
    NOW,
    POLICY,
    contract,
    customer,
    facts,
    invoice,
    payment,
    person,
    routed,
    second_invoice,
    usd,
)

TERMS = Terms(policy=POLICY, ack_timeout=timedelta(hours=1), reference_wait=timedelta(minutes=15))
LATER = NOW + timedelta(minutes=1)


def said(effects: list[Effect]) -> list[tuple[str, str | None]]:
    """What the effects are: statuses as (status, reason), postings as ("posting", kind)."""
    return [
        (effect.status.value, effect.reason)
        if isinstance(effect, RequestStatusChanged)
        else ("posting", effect.kind.value)
        if isinstance(effect, ErpResolution)
        else (type(effect).__name__, None)
        for effect in effects
    ]


def request(
    request_type: RequestType | None = RequestType.BILLING_DISPUTE, **details: Any
) -> RequestResolution:
    return RequestResolution.from_routed(routed(request_type, **details), now=NOW, terms=TERMS)


OVERCHARGED = facts((invoice(),), (contract(),))
AT_CONTRACT_PRICE = facts(
    (invoice(lines=[{"sku": "CLD", "quantity": "2", "unit_price": "500.00"}], total=usd("1000.00")),),
    (contract(),),
)
TWO_PAYMENTS_ALIKE = facts(
    (invoice(),),
    (contract(),),
    (payment("PAY-1", "1299.99", "2026-10-20"), payment("PAY-2", "1299.99", "2026-10-21")),
)


@pytest.mark.parametrize(
    ("the_request", "known", "state", "effects"),
    [
        pytest.param(
            request(),
            OVERCHARGED,
            ResolutionState.RESOLVED,
            [("posting", "credit_memo"), ("resolved", None)],
            id="a credit memo within the automatic tier: sent",
        ),
        pytest.param(
            request(RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=(), requested_credit_limit=usd("80000.00")),
            facts(the_customer=customer()),
            ResolutionState.AWAITING_APPROVAL,
            [("awaiting_approval", None), ("ApprovalRequested", None)],
            id="a credit limit update: approvals first",
        ),
        pytest.param(
            request(),
            AT_CONTRACT_PRICE,
            ResolutionState.CLOSED,
            [("resolved", "claim_not_supported"), ("closed", "claim_not_supported")],
            id="a claim the documents do not support: resolved, nothing posted, closed",
        ),
        pytest.param(
            request(RequestType.PAYMENT_QUERY, invoice_ids=("INV-1",)),
            TWO_PAYMENTS_ALIKE,
            ResolutionState.WITH_PERSON,
            [("routed", "several_payments_match"), ("PaymentCandidatesFound", None)],
            id="several candidate payments: a person chooses",
        ),
        pytest.param(
            request(),
            facts(),
            ResolutionState.AWAITING_REFERENCE_DATA,
            [("on_hold", "awaiting_reference_data")],
            id="the invoice has not come yet: on hold for it",
        ),
        pytest.param(
            request(RequestType.ACCOUNT_UPDATE),
            facts(),
            ResolutionState.ROUTED,
            [],
            id="no strategy: stays with its queue",
        ),
    ],
)
def test_a_routed_request_follows_its_proposal(
    the_request: RequestResolution,
    known: Facts,
    state: ResolutionState,
    effects: list[tuple[str, str | None]],
) -> None:
    assert said(the_request.consider(known, now=NOW, terms=TERMS)) == effects
    assert the_request.state is state


def test_a_posting_sent_is_kept_with_its_due_time_and_its_status_says_what_was_sent() -> None:
    the_request = request()
    posting, resolved = the_request.consider(OVERCHARGED, now=NOW, terms=TERMS)
    assert isinstance(posting, ErpResolution)
    assert the_request.resolution_ids == (posting.resolution_id,)
    kept = the_request.postings[posting.resolution_id]
    assert (kept.status, kept.issued_at, kept.ack_due_at) == (
        PostingStatus.ISSUED,
        NOW,
        NOW + TERMS.ack_timeout,
    )
    assert isinstance(resolved, RequestStatusChanged)
    assert resolved.message.endswith(f"It has been sent for posting as {posting.resolution_id}.")
    assert (resolved.queue, resolved.priority, resolved.customer_id) == (
        "accounts_receivable",
        "normal",
        "CUST-1",
    )


def test_a_request_waits_for_its_data_says_so_once_and_goes_to_a_person_when_the_wait_is_over() -> None:
    the_request = request()
    the_request.consider(facts(), now=NOW, terms=TERMS)
    assert the_request.waits_for_reference_data
    assert the_request.consider(facts(), now=LATER, terms=TERMS) == []  # still waiting: nothing new
    too_late = NOW + TERMS.reference_wait
    assert said(the_request.consider(facts(), now=too_late, terms=TERMS)) == [
        ("routed", "reference_data_missing")
    ]
    assert the_request.state is ResolutionState.WITH_PERSON


def test_a_request_whose_data_came_while_it_waited_is_resolved() -> None:
    the_request = request()
    the_request.consider(facts(), now=NOW, terms=TERMS)
    assert said(the_request.consider(OVERCHARGED, now=LATER, terms=TERMS)) == [
        ("posting", "credit_memo"),
        ("resolved", None),
    ]


def decision(approver: str, role: str, verdict: str = "approve") -> ApprovalDecision:
    return ApprovalDecision(
        request_id="REQ-1", decision=verdict, approver=approver, role=role, comment="fine", decided_at=LATER
    )


def awaiting_approval() -> RequestResolution:
    the_request = request(
        RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=(), requested_credit_limit=usd("80000.00")
    )
    the_request.consider(facts(the_customer=customer()), now=NOW, terms=TERMS)
    return the_request


LEAD = person("lena.lead", "team_lead")
FINANCE = person("fred.finance", "finance_manager")


def test_the_last_approval_needed_sends_the_postings_with_every_approval_on_them() -> None:
    the_request = awaiting_approval()
    counted = the_request.decide(decision("lena.lead", "team_lead"), Approvers(LEAD), now=LATER, terms=TERMS)
    assert said(counted) == [("awaiting_approval", "approval_recorded"), ("ApprovalEvaluated", None)]
    effects = the_request.decide(
        decision("fred", "finance_manager"), Approvers(FINANCE), now=LATER, terms=TERMS
    )
    assert said(effects) == [
        ("approved", None),
        ("posting", "credit_limit_update"),
        ("resolved", None),
        ("ApprovalEvaluated", None),
    ]
    posting = effects[1]
    assert isinstance(posting, ErpResolution)
    assert [(approval.approver, approval.role) for approval in posting.approvals] == [
        ("lena.lead", "team_lead"),
        ("fred.finance", "finance_manager"),  # the directory's id, not the name the decision gave
    ]
    assert the_request.state is ResolutionState.RESOLVED


@pytest.mark.parametrize(
    ("the_decision", "approvers", "state", "effects"),
    [
        pytest.param(
            decision("jane@acme.example", "team_lead"),
            Approvers(None),
            ResolutionState.AWAITING_APPROVAL,
            [("awaiting_approval", "segregation_of_duties"), ("ApprovalEvaluated", None)],
            id="the requester is refused",
        ),
        pytest.param(
            decision("nobody", "team_lead"),
            Approvers(None),
            ResolutionState.AWAITING_APPROVAL,
            [("awaiting_approval", "unknown_approver"), ("ApprovalEvaluated", None)],
            id="nobody the directory knows is refused",
        ),
        pytest.param(
            decision("lena.lead", "team_lead", "reject"),
            Approvers(LEAD),
            ResolutionState.REJECTED,
            [("rejected", "approval_rejected"), ("ApprovalEvaluated", None)],
            id="a rejection ends it: nothing posted",
        ),
    ],
)
def test_an_approval_decision_is_refused_counted_or_rejects(
    the_decision: ApprovalDecision,
    approvers: Approvers,
    state: ResolutionState,
    effects: list[tuple[str, str | None]],
) -> None:
    the_request = awaiting_approval()
    assert said(the_request.decide(the_decision, approvers, now=LATER, terms=TERMS)) == effects
    assert the_request.state is state
    assert the_request.postings == {}


def test_a_refusal_is_recorded_and_counts_for_nothing() -> None:
    the_request = awaiting_approval()
    the_request.decide(decision("nobody", "team_lead"), Approvers(None), now=LATER, terms=TERMS)
    assert [(refusal.approver, refusal.reason) for refusal in the_request.refusals] == [
        ("nobody", "unknown_approver")
    ]
    assert the_request.approvals == ()


def resolved(*invoices: Any) -> tuple[RequestResolution, list[str]]:
    """A request whose postings were sent: one per invoice named."""
    the_request = request(invoice_ids=tuple(one.invoice_id for one in invoices))
    effects = the_request.consider(facts(tuple(invoices), (contract(),)), now=NOW, terms=TERMS)
    return the_request, [effect.resolution_id for effect in effects if isinstance(effect, ErpResolution)]


def ack(resolution_id: str, status: str = "posted", document: str | None = "ERP-1") -> ErpAck:
    return ErpAck(
        resolution_id=resolution_id,
        request_id="REQ-1",
        status=status,
        erp_document_id=document if status == "posted" else None,
        error="period closed" if status == "failed" else None,
    )


def test_the_erp_posting_it_closes_the_request() -> None:
    the_request, (resolution_id,) = resolved(invoice())
    effects = the_request.acknowledge(ack(resolution_id), now=LATER)
    assert said(effects) == [("closed", None)]
    assert the_request.state is ResolutionState.CLOSED
    assert the_request.postings[resolution_id].status is PostingStatus.POSTED
    assert the_request.postings[resolution_id].erp_document_id == "ERP-1"


def test_the_erp_failing_it_returns_the_request_to_a_person() -> None:
    the_request, (resolution_id,) = resolved(invoice())
    effects = the_request.acknowledge(ack(resolution_id, "failed"), now=LATER)
    assert said(effects) == [("routed", "erp_posting_failed")]
    assert (the_request.state, the_request.reason) == (ResolutionState.WITH_PERSON, "erp_posting_failed")
    assert the_request.postings[resolution_id].erp_error == "period closed"


def test_a_request_of_several_postings_closes_when_the_last_is_posted() -> None:
    the_request, ids = resolved(invoice(), second_invoice())
    assert len(ids) == 2
    assert the_request.acknowledge(ack(ids[0], document="ERP-1"), now=LATER) == []
    assert the_request.state is ResolutionState.RESOLVED
    (closed,) = the_request.acknowledge(ack(ids[1], document="ERP-2"), now=LATER)
    assert isinstance(closed, RequestStatusChanged)
    assert closed.status is RequestStatus.CLOSED
    assert "All 2 postings of this request have been posted as documents ERP-1, ERP-2." in closed.message


def test_a_posting_not_acknowledged_in_time_is_escalated_once() -> None:
    the_request, (resolution_id,) = resolved(invoice())
    assert the_request.escalate_overdue(now=NOW + timedelta(minutes=59), terms=TERMS) == []
    late = NOW + TERMS.ack_timeout + timedelta(seconds=1)
    (escalated,) = the_request.escalate_overdue(now=late, terms=TERMS)
    assert isinstance(escalated, RequestStatusChanged)
    assert (escalated.status, escalated.reason) == (RequestStatus.ESCALATED, "erp_ack_overdue")
    assert f"credit memo {resolution_id} within 3600 seconds" in escalated.message
    assert the_request.escalate_overdue(now=late + timedelta(hours=1), terms=TERMS) == []
    assert the_request.state is ResolutionState.RESOLVED


@pytest.mark.parametrize(
    ("transition", "reason"),
    [
        pytest.param(
            lambda r: r.decide(decision("lena.lead", "team_lead"), Approvers(LEAD), now=LATER, terms=TERMS),
            "not_awaiting_approval",
            id="an approval for a request not awaiting one",
        ),
        pytest.param(
            lambda r: r.acknowledge(ack("RES-NEVER-SENT"), now=LATER),
            "unknown_resolution",
            id="an ack for a posting never sent",
        ),
        pytest.param(
            lambda r: r.consider(OVERCHARGED, now=LATER, terms=TERMS),
            "not_awaiting_a_proposal",
            id="a proposal for a request already resolved",
        ),
    ],
)
def test_transitions_the_state_does_not_allow_are_refused(transition: Any, reason: str) -> None:
    the_request, _ = resolved(invoice())
    with pytest.raises(TransitionRefused) as refused:
        transition(the_request)
    assert refused.value.reason == reason


# -- Withdrawn by the customer (issue 9 item 5) ---------------------------------------------------


def test_a_withdrawal_after_the_posting_was_sent_closes_it_and_says_the_posting_stands() -> None:
    the_request, (resolution_id,) = resolved(invoice())
    (closed,) = the_request.withdraw(now=LATER)
    assert said([closed]) == [("closed", "withdrawn")]
    assert isinstance(closed, RequestStatusChanged)
    assert "not undone" in closed.message
    assert resolution_id in closed.message
    assert the_request.withdrawn
    # The ERP's answer that comes afterwards is recorded, and closes nothing a second time.
    assert the_request.acknowledge_after_withdrawal(ack(resolution_id), now=LATER) == []
    assert the_request.postings[resolution_id].status is PostingStatus.POSTED
    assert the_request.state is ResolutionState.CLOSED


def test_a_withdrawal_while_awaiting_approval_drops_the_postings_proposed() -> None:
    the_request = awaiting_approval()
    assert the_request.state is ResolutionState.AWAITING_APPROVAL
    (closed,) = the_request.withdraw(now=LATER)
    assert said([closed]) == [("closed", "withdrawn")]
    assert the_request.pending is None
    assert isinstance(closed, RequestStatusChanged)
    assert "nothing has been posted" in closed.message


def test_a_request_closed_already_is_not_closed_again_by_a_withdrawal() -> None:
    the_request, (resolution_id,) = resolved(invoice())
    the_request.acknowledge(ack(resolution_id), now=LATER)
    assert the_request.withdraw(now=LATER) == []


def test_a_request_withdrawn_before_it_was_routed_here_is_closed_when_it_arrives() -> None:
    from shared.events import CaseUpdated

    event = routed(RequestType.BILLING_DISPUTE)
    withdrawal = CaseUpdated(
        event_id="EVT-W",
        request_id="REQ-1",
        correlation_id="CASE-1",
        occurred_at=NOW,
        details=event.details,
        changed=("withdrawn",),
        fingerprint="w",
        withdrawn=True,
    )
    kept = RequestResolution.withdrawn_before_routing(withdrawal, now=NOW)
    assert kept.awaits_its_routing_to_close
    assert kept.withdraw(now=NOW) == []  # closed already, silently: validation may close it
    effects = kept.routed_after_withdrawal(event, now=LATER, terms=TERMS)
    assert said(effects) == [("closed", "withdrawn")]
    assert kept.withdrawn
    assert kept.routed_after_withdrawal(event, now=LATER, terms=TERMS) == []
