"""Internal events of an older version are read as the current version, wherever they are read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.delivery import Inbound, LedgerTransaction, MessageOrigin, ReliableConsumer
from shared.events import (
    CaseUpdated,
    EmailReplyAdded,
    InternalEvent,
    RequestCaptured,
    RequestDetails,
    RequestRouted,
    RequestSetAside,
    RequestValidated,
    upcast,
)
from tests.unit.fakes import FakeLedger, RecordingPublisher

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DETAILS = RequestDetails(channel="crm", source_id="CASE-1", subject="Price", submitted_at=NOW)
COMMON: dict[str, Any] = {
    "event_id": "EVT-1",
    "request_id": "REQ-1",
    "correlation_id": "CASE-1",
    "occurred_at": NOW,
}
TEXT_READINGS = ("invoice_candidates", "payment_candidates", "loose_candidates", "stated_amounts",
                 "paid_amount", "payment_date")  # fmt: skip

CURRENT: list[InternalEvent] = [
    RequestCaptured(**COMMON, details=DETAILS),
    RequestValidated(**COMMON, details=DETAILS, customer_id="CUST-1", customer_tier="standard"),
    RequestSetAside(
        **COMMON,
        details=DETAILS,
        customer_id=None,
        verdict="rejected",
        reason="unknown_customer",
        message="No.",
    ),
    RequestRouted(
        **COMMON,
        details=DETAILS,
        customer_id="CUST-1",
        customer_tier="standard",
        queue="accounts_receivable",
        priority="normal",
        sla_due_at=NOW,
        rule_version="1",
    ),
]


def as_version_1(event: InternalEvent) -> dict[str, Any]:
    """The event as a version 1 writer sent it: its details without what version 2 added."""
    payload = event.model_dump(mode="json")
    for added in TEXT_READINGS:
        del payload["details"][added]
    return {**payload, "schema_version": 1}


@pytest.mark.parametrize("current", CURRENT, ids=lambda event: type(event).__name__)
def test_a_version_1_event_carrying_details_is_read_as_version_2(current: InternalEvent) -> None:
    read = type(current).model_validate(as_version_1(current))
    assert read.schema_version == 2
    assert read == current


def test_upcasting_fills_what_version_2_added_and_leaves_the_rest() -> None:
    payload = as_version_1(CURRENT[0])
    upcast_payload = upcast(payload)
    assert upcast_payload["schema_version"] == 2
    assert {name: upcast_payload["details"][name] for name in TEXT_READINGS} == {
        "invoice_candidates": [],
        "payment_candidates": [],
        "loose_candidates": [],
        "stated_amounts": [],
        "paid_amount": None,
        "payment_date": None,
    }
    assert upcast_payload["details"]["subject"] == "Price"
    assert payload["schema_version"] == 1  # the payload read is not changed


def test_a_current_event_and_one_of_a_newer_version_are_read_as_they_are() -> None:
    current = as_version_1(CURRENT[0]) | {"schema_version": 2}
    assert upcast(current) == current
    newer = {**CURRENT[0].model_dump(mode="json"), "schema_version": 3, "added_later": True}
    assert RequestCaptured.model_validate(newer).schema_version == 3


def test_an_event_type_still_at_version_1_has_nothing_to_upcast() -> None:
    case = CaseUpdated(
        **COMMON,
        details=RequestCaptured.model_validate(CURRENT[0].model_dump()).details,
        changed=("withdrawn",),
        fingerprint="f",
    )
    assert CaseUpdated.model_validate(case.model_dump(mode="json")) == case
    assert case.schema_version == 1


def test_a_version_1_reply_is_read_as_one_that_understood_nothing() -> None:
    reply = EmailReplyAdded(
        **COMMON, message_id="m@x", sender="a@x.example", subject="Re: Price", received_at=NOW
    )
    version_1 = {
        key: value
        for key, value in reply.model_dump(mode="json").items()
        if key not in ("understood", "automatic")
    } | {"schema_version": 1}
    read = EmailReplyAdded.model_validate(version_1)
    assert (read.schema_version, read.understood, read.automatic) == (2, None, False)


async def test_the_reliable_consumer_hands_a_version_1_event_over_as_version_2() -> None:
    consumer = ReliableConsumer(service="test", ledger=FakeLedger(), publish=RecordingPublisher())
    read: list[RequestCaptured] = []

    async def apply(event: RequestCaptured, tx: LedgerTransaction, origin: MessageOrigin) -> None:
        read.append(event)

    origin = MessageOrigin(topic="requests.captured.v1", partition=0, offset=0, key="REQ-1")
    await consumer.consume_batch(
        [Inbound(json.dumps(as_version_1(CURRENT[0])).encode(), origin)],
        model=RequestCaptured,
        idempotency_key=lambda event, _: event.event_id,
        apply=apply,
    )
    assert [event.schema_version for event in read] == [2]
