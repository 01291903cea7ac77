"""Validation's handlers against a fake store: a message in, one transition, the request saved, its
events in the transaction's outbox (on their topics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.validation.app import ValidationHandlers
from services.validation.domain import DuplicateRule
from services.validation.lifecycle import Rules, ValidationState
from shared.contract import Channel, RequestStatus, RequestStatusChanged
from shared.delivery import MessageOrigin
from shared.events import RequestCaptured
from shared.topics import REQUEST_SET_ASIDE, REQUEST_STATUS, REQUEST_VALIDATED
from tests.unit.fakes import FakeLedger, FakeTransaction, FakeValidationStore
from tests.unit.test_validation_rules import contract, customer, details, invoice

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULES = Rules(hold_limit=timedelta(hours=24), duplicates=DuplicateRule(window=timedelta(days=30)))
ORIGIN = MessageOrigin(topic="requests.captured.v1", partition=0, offset=0, key=None)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def world(*, with_invoice: bool = True) -> FakeValidationStore:
    store = FakeValidationStore(customers={"CUST-1": customer()}, contracts={"CTR-1": contract()})
    if with_invoice:
        store.invoices["INV-1"] = invoice()
    return store


def captured(request_id: str) -> RequestCaptured:
    return RequestCaptured(
        event_id=f"EVT-{request_id}",
        request_id=request_id,
        correlation_id="CASE",
        occurred_at=NOW,
        details=details(),
    )


def sent(tx: FakeTransaction) -> list[tuple[str, str]]:
    """(topic, request id) of every message the handler put in the outbox, in order."""
    return [(message.topic, message.key) for message in tx.emitted]


async def test_a_captured_request_in_order_is_passed_on_to_routing_and_saved_as_validated() -> None:
    store = world()
    handlers = ValidationHandlers(store, RULES, Clock())
    tx = FakeTransaction(FakeLedger())
    await handlers.validate(captured("REQ-1"), tx, ORIGIN)
    assert sent(tx) == [(REQUEST_VALIDATED, "REQ-1"), (REQUEST_STATUS, "REQ-1")]
    assert store.saved["REQ-1"].state is ValidationState.VALIDATED
    assert store.saved["REQ-1"].open


async def test_a_hold_is_decided_again_by_the_timer_once_its_invoice_arrives() -> None:
    store, clock = world(with_invoice=False), Clock()
    handlers = ValidationHandlers(store, RULES, clock)
    tx = FakeTransaction(FakeLedger())
    await handlers.validate(captured("REQ-1"), tx, ORIGIN)
    assert sent(tx) == [(REQUEST_SET_ASIDE, "REQ-1"), (REQUEST_STATUS, "REQ-1")]
    assert await handlers.holds_to_recheck() == []  # nothing it waits for has come

    store.invoices["INV-1"] = invoice()
    clock.now = NOW + timedelta(minutes=1)
    assert await handlers.holds_to_recheck() == ["REQ-1"]
    recheck = FakeTransaction(FakeLedger())
    await handlers.recheck("REQ-1", recheck)
    assert sent(recheck) == [(REQUEST_VALIDATED, "REQ-1"), (REQUEST_STATUS, "REQ-1")]
    assert (store.saved["REQ-1"].state, store.saved["REQ-1"].hold) == (ValidationState.VALIDATED, None)
    assert await handlers.holds_to_recheck() == []


async def test_a_hold_past_its_limit_is_rejected_by_the_timer() -> None:
    store, clock = world(with_invoice=False), Clock()
    handlers = ValidationHandlers(store, RULES, clock)
    await handlers.validate(captured("REQ-1"), FakeTransaction(FakeLedger()), ORIGIN)
    clock.now = NOW + RULES.hold_limit
    assert await handlers.holds_to_recheck() == ["REQ-1"]
    tx = FakeTransaction(FakeLedger())
    await handlers.recheck("REQ-1", tx)
    assert sent(tx) == [(REQUEST_SET_ASIDE, "REQ-1"), (REQUEST_STATUS, "REQ-1")]
    assert store.saved["REQ-1"].state is ValidationState.REJECTED


async def test_a_hold_the_timer_finds_released_meanwhile_is_left_alone() -> None:
    store = world()
    handlers = ValidationHandlers(store, RULES, Clock())
    await handlers.validate(captured("REQ-1"), FakeTransaction(FakeLedger()), ORIGIN)
    saves, tx = store.saves, FakeTransaction(FakeLedger())
    await handlers.recheck("REQ-1", tx)  # validated, not held: another replica decided it
    await handlers.recheck("REQ-UNKNOWN", tx)
    assert (tx.emitted, store.saves) == ([], saves)


def status(request_id: str, value: RequestStatus, at: datetime) -> RequestStatusChanged:
    return RequestStatusChanged(
        event_id=f"{request_id}-{value}",
        request_id=request_id,
        channel=Channel.CRM,
        source_id="CASE",
        status=value,
        message="...",
        at=at,
    )


async def test_a_repeat_while_the_first_is_open_is_its_duplicate_and_after_it_closes_is_not() -> None:
    store = world()
    handlers = ValidationHandlers(store, RULES, Clock())
    await handlers.validate(captured("REQ-1"), FakeTransaction(FakeLedger()), ORIGIN)
    tx = FakeTransaction(FakeLedger())
    await handlers.validate(captured("REQ-2"), tx, ORIGIN)
    assert sent(tx) == [(REQUEST_SET_ASIDE, "REQ-2"), (REQUEST_STATUS, "REQ-2")]
    assert (store.saved["REQ-2"].state, store.saved["REQ-2"].duplicate_of) == (
        ValidationState.DUPLICATE,
        "REQ-1",
    )

    closing = FakeTransaction(FakeLedger())
    await handlers.follow_status(
        status("REQ-1", RequestStatus.CLOSED, NOW + timedelta(hours=1)), closing, ORIGIN
    )
    assert closing.emitted == []
    assert (store.saved["REQ-1"].state, store.saved["REQ-1"].open) == (ValidationState.CLOSED, False)
    assert store.claims == {}

    tx = FakeTransaction(FakeLedger())
    await handlers.validate(captured("REQ-3"), tx, ORIGIN)
    assert sent(tx) == [(REQUEST_VALIDATED, "REQ-3"), (REQUEST_STATUS, "REQ-3")]


async def test_statuses_that_close_nothing_are_not_even_looked_up() -> None:
    store = world()
    handlers = ValidationHandlers(store, RULES, Clock())
    await handlers.validate(captured("REQ-1"), FakeTransaction(FakeLedger()), ORIGIN)
    saves = store.saves
    for value in (RequestStatus.ROUTED, RequestStatus.RESOLVED, RequestStatus.SLA_WARNING):
        await handlers.follow_status(
            status("REQ-1", value, NOW + timedelta(hours=1)), FakeTransaction(FakeLedger()), ORIGIN
        )
    await handlers.follow_status(
        status("REQ-NOT-HERE", RequestStatus.CLOSED, NOW), FakeTransaction(FakeLedger()), ORIGIN
    )
    assert store.saves == saves
    assert store.saved["REQ-1"].open


# -- Asking instead of refusing (issue 9 items 4, 5) ----------------------------------------------


def asked(request_id: str) -> RequestCaptured:
    return captured(request_id).model_copy(update={"details": details(invoice_ids=())})


async def test_a_reply_answering_the_question_resumes_the_request_and_it_is_passed_on() -> None:
    from shared.events import EmailReplyAdded, RequestUpdateMessage

    store = world()
    handlers = ValidationHandlers(store, RULES, Clock())
    tx = FakeTransaction(FakeLedger())
    await handlers.validate(asked("REQ-1"), tx, ORIGIN)
    assert store.saved["REQ-1"].held
    reply = EmailReplyAdded(
        event_id="EVT-R",
        request_id="REQ-1",
        correlation_id="CASE",
        occurred_at=NOW,
        message_id="r@x.example",
        sender="jane@x.example",
        subject="Re",
        received_at=NOW,
        understood=details(invoice_ids=(), invoice_candidates=("INV-1",)),
    )
    answered = FakeTransaction(FakeLedger())
    await handlers.take_update(RequestUpdateMessage(reply), answered, ORIGIN)
    assert sent(answered) == [(REQUEST_VALIDATED, "REQ-1"), (REQUEST_STATUS, "REQ-1")]
    assert store.saved["REQ-1"].state is ValidationState.VALIDATED


async def test_an_unanswered_question_is_chased_by_the_timer_without_deciding_it_again() -> None:
    from services.validation.lifecycle import AnswerWait

    store, clock = world(), Clock()
    rules = Rules(
        hold_limit=timedelta(hours=24),
        duplicates=DuplicateRule(window=timedelta(days=30)),
        answer_wait=AnswerWait(seconds=60),
    )
    handlers = ValidationHandlers(store, rules, clock)
    await handlers.validate(asked("REQ-1"), FakeTransaction(FakeLedger()), ORIGIN)
    assert await handlers.holds_to_recheck() == []
    clock.now = NOW + timedelta(seconds=31)
    assert await handlers.holds_to_recheck() == ["REQ-1"]
    reminded = FakeTransaction(FakeLedger())
    await handlers.recheck("REQ-1", reminded)
    assert sent(reminded) == [(REQUEST_STATUS, "REQ-1")]
    assert await handlers.holds_to_recheck() == []
    clock.now = NOW + timedelta(seconds=61)
    closed = FakeTransaction(FakeLedger())
    await handlers.recheck("REQ-1", closed)
    assert sent(closed) == [(REQUEST_STATUS, "REQ-1")]
    assert store.saved["REQ-1"].state is ValidationState.CLOSED
    assert await handlers.holds_to_recheck() == []


async def test_a_withdrawal_that_overtakes_its_capture_closes_the_request_and_the_capture_does_nothing() -> (
    None
):
    from shared.events import CaseUpdated, RequestUpdateMessage

    store = world()
    handlers = ValidationHandlers(store, RULES, Clock())
    withdrawn = CaseUpdated(
        event_id="EVT-W",
        request_id="REQ-1",
        correlation_id="CASE",
        occurred_at=NOW,
        details=details(),
        changed=("withdrawn",),
        fingerprint="w",
        withdrawn=True,
    )
    closing = FakeTransaction(FakeLedger())
    await handlers.take_update(RequestUpdateMessage(withdrawn), closing, ORIGIN)
    assert sent(closing) == [(REQUEST_STATUS, "REQ-1")]
    assert store.saved["REQ-1"].withdrawn
    late = FakeTransaction(FakeLedger())
    await handlers.validate(captured("REQ-1"), late, ORIGIN)
    assert sent(late) == []
    assert store.saved["REQ-1"].state is ValidationState.CLOSED
