"""Resolution's handlers against a fake store: a message in, one transition, the request saved, its
statuses and postings in the transaction's outbox (on their topics), refusals for what cannot be."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.resolution.app import ResolutionHandlers
from services.resolution.lifecycle import ResolutionState, Terms
from shared.contract import ApprovalDecision, ErpAck, RequestType
from shared.delivery import MessageOrigin
from shared.directory import FileUserDirectory
from shared.lifecycle import TransitionRefused
from shared.topics import ERP_RESOLUTIONS, REQUEST_RESOLUTION, REQUEST_STATUS
from tests.unit.fakes import FakeLedger, FakeResolutionStore, FakeTransaction
from tests.unit.test_resolution_strategies import (
    NOW,
    POLICY,
    contract,
    customer,
    facts,
    invoice,
    person,
    routed,
    usd,
)

TERMS = Terms(policy=POLICY, ack_timeout=timedelta(hours=1), reference_wait=timedelta(minutes=15))
ORIGIN = MessageOrigin(topic="requests.routed.v1", partition=0, offset=0, key="REQ-1")
DIRECTORY = FileUserDirectory([person("lena.lead", "team_lead"), person("fred.finance", "finance_manager")])


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def handlers(store: FakeResolutionStore, clock: Clock | None = None) -> ResolutionHandlers:
    return ResolutionHandlers(store, TERMS, clock=clock or Clock(), directory=DIRECTORY)


def state_of(store: FakeResolutionStore) -> ResolutionState:
    return store.saved["REQ-1"].state


def sent(tx: FakeTransaction) -> list[str]:
    """The topic of every message the handler put in the outbox, in order."""
    return [message.topic for message in tx.emitted]


async def test_a_routed_dispute_is_credited_once_even_when_routed_again() -> None:
    store = FakeResolutionStore(facts_now=facts((invoice(),), (contract(),)))
    resolution = handlers(store)
    tx = FakeTransaction(FakeLedger())
    await resolution.resolve(routed(RequestType.BILLING_DISPUTE), tx, ORIGIN)
    assert sent(tx) == [ERP_RESOLUTIONS, REQUEST_STATUS]
    assert state_of(store) is ResolutionState.RESOLVED

    again = FakeTransaction(FakeLedger())
    await resolution.resolve(routed(RequestType.BILLING_DISPUTE), again, ORIGIN)
    assert (again.emitted, store.saves) == ([], 1)


async def test_a_request_waiting_for_its_invoice_is_resumed_by_the_timer_when_it_comes() -> None:
    store, clock = FakeResolutionStore(), Clock()
    resolution = handlers(store, clock)
    await resolution.resolve(routed(RequestType.BILLING_DISPUTE), FakeTransaction(FakeLedger()), ORIGIN)
    assert await resolution.waiting_for_data() == ["REQ-1"]

    store.facts_now = facts((invoice(),), (contract(),))
    clock.now = NOW + timedelta(minutes=1)
    tx = FakeTransaction(FakeLedger())
    await resolution.resume("REQ-1", tx)
    assert sent(tx) == [ERP_RESOLUTIONS, REQUEST_STATUS]
    assert await resolution.waiting_for_data() == []
    done = FakeTransaction(FakeLedger())
    await resolution.resume("REQ-1", done)  # decided meanwhile: nothing
    assert done.emitted == []


def approval(approver: str, role: str) -> ApprovalDecision:
    return ApprovalDecision(
        request_id="REQ-1", decision="approve", approver=approver, role=role, decided_at=NOW
    )


async def test_approvals_are_counted_under_the_directory_and_the_last_one_sends_the_posting() -> None:
    store = FakeResolutionStore(facts_now=facts(the_customer=customer()))
    resolution = handlers(store)
    event = routed(RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=(), requested_credit_limit=usd("80000.00"))
    await resolution.resolve(event, FakeTransaction(FakeLedger()), ORIGIN)
    assert state_of(store) is ResolutionState.AWAITING_APPROVAL

    first = FakeTransaction(FakeLedger())
    await resolution.decide(approval("lena.lead", "team_lead"), first, ORIGIN)
    assert sent(first) == [REQUEST_STATUS, REQUEST_RESOLUTION]  # the status, the approval as data
    last = FakeTransaction(FakeLedger())
    await resolution.decide(approval("fred.finance", "finance_manager"), last, ORIGIN)
    # Approved, the posting, resolved, and the approval as data for the workspace.
    assert sent(last) == [REQUEST_STATUS, ERP_RESOLUTIONS, REQUEST_STATUS, REQUEST_RESOLUTION]
    assert state_of(store) is ResolutionState.RESOLVED


async def test_the_erp_answer_closes_the_request_and_a_late_one_is_escalated_first() -> None:
    store, clock = FakeResolutionStore(facts_now=facts((invoice(),), (contract(),))), Clock()
    resolution = handlers(store, clock)
    await resolution.resolve(routed(RequestType.BILLING_DISPUTE), FakeTransaction(FakeLedger()), ORIGIN)
    (resolution_id,) = store.saved["REQ-1"].resolution_ids

    assert await resolution.with_overdue_postings() == []
    clock.now = NOW + TERMS.ack_timeout + timedelta(seconds=1)
    assert await resolution.with_overdue_postings() == ["REQ-1"]
    escalated = FakeTransaction(FakeLedger())
    await resolution.escalate("REQ-1", escalated)
    assert sent(escalated) == [REQUEST_STATUS]
    assert await resolution.with_overdue_postings() == []

    closing = FakeTransaction(FakeLedger())
    posted = ErpAck(resolution_id=resolution_id, request_id="REQ-1", status="posted", erp_document_id="ERP-1")
    await resolution.acknowledge(posted, closing, ORIGIN)
    assert sent(closing) == [REQUEST_STATUS]
    assert state_of(store) is ResolutionState.CLOSED


async def test_what_names_no_request_or_posting_of_it_is_refused() -> None:
    resolution = handlers(FakeResolutionStore())
    tx = FakeTransaction(FakeLedger())
    with pytest.raises(TransitionRefused) as unknown_request:
        await resolution.decide(approval("lena.lead", "team_lead"), tx, ORIGIN)
    assert unknown_request.value.reason == "unknown_request"
    never_sent = ErpAck(resolution_id="RES-NEVER", request_id="REQ-1", status="posted")
    with pytest.raises(TransitionRefused) as unknown_resolution:
        await resolution.acknowledge(never_sent, tx, ORIGIN)
    assert unknown_resolution.value.reason == "unknown_resolution"
    assert tx.emitted == []
