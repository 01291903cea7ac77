"""Validation on the real broker and database: holds that resume, holds that expire, duplicates.

One validation service runs for the whole module (its subscribers take a while to join); each
test uses a world of its own, so they do not see each other's requests. The service's clock can
be moved forward, which is how a hold's time limit is reached without waiting a day.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from services.intake.domain import capture_crm_request
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from shared.contract import CrmRequest
from shared.topics import (
    CUSTOMERS,
    INVOICES,
    REQUEST_CAPTURED,
    REQUEST_SET_ASIDE,
    REQUEST_STATUS,
    REQUEST_VALIDATED,
)
from tests.e2e.scenario import World, new_world
from tests.support import (
    MovableClock,
    Servers,
    isolated_settings,
    mongo,
    publish,
    running_service,
    unique,
    wait_consumed,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.integration

HOLD_LIMIT_SECONDS = 3600


@dataclass
class Validation:
    settings: ValidationSettings
    clock: MovableClock
    servers: Servers

    async def knows(self, collection: str, key: str, **expected: Any) -> None:
        """Wait until validation's view of a reference topic holds ``key`` (with these values)."""
        view = mongo(self.servers)[self.settings.database][collection]

        async def stored() -> bool:
            found = await view.find_one({"_id": key})
            return found is not None and all(found.get(name) == value for name, value in expected.items())

        await wait_until(stored)


@pytest.fixture(scope="module")
async def validation(servers: Servers) -> AsyncIterator[Validation]:
    settings = isolated_settings(
        ValidationSettings, hold_recheck_seconds=0.3, hold_reference_seconds=HOLD_LIMIT_SECONDS
    )
    clock = MovableClock()
    async with running_service(partial(build_validation, clock=clock), settings, servers):
        yield Validation(settings, clock, servers)


def captured(case: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    capture = capture_crm_request(CrmRequest.model_validate(case), now=datetime.now(UTC))
    return REQUEST_CAPTURED, capture.request_id, capture.captured.model_dump(mode="json")


async def statuses(servers: Servers, request_id: str, *wanted: str) -> list[dict[str, Any]]:
    """The request's status changes up to the last of ``wanted``, in order."""
    records = await wait_for_records(
        servers,
        [REQUEST_STATUS],
        lambda r: r.key == request_id and r.value["status"] in wanted,
        count=len(wanted),
    )
    return [record.value for record in records]


async def publish_master_data(validation: Validation, world: World, *, invoice: bool = True) -> None:
    records = [record for record in world.reference_records() if invoice or record[0] != INVOICES]
    await publish(validation.servers, *records)
    await validation.knows("customers", world.customer_id)
    await validation.knows("contracts", world.contract_id)
    if invoice:
        await validation.knows("invoices", world.invoice_id)


async def test_a_request_for_an_invoice_not_yet_known_waits_and_resumes_when_it_arrives(
    validation: Validation,
) -> None:
    world = new_world()
    await publish_master_data(validation, world, invoice=False)
    request = captured(world.dispute(unique("CASE")))
    request_id = request[1]
    await publish(validation.servers, request)
    (held,) = await statuses(validation.servers, request_id, "on_hold")
    assert held["reason"] == "awaiting_reference_data"
    assert world.invoice_id in held["message"]

    await publish(validation.servers, (INVOICES, world.invoice_id, world.invoice))
    (_, validated) = await statuses(validation.servers, request_id, "on_hold", "validated")
    assert validated["customer_id"] == world.customer_id
    (event,) = await wait_for_records(validation.servers, [REQUEST_VALIDATED], lambda r: r.key == request_id)
    assert [snapshot["invoice_id"] for snapshot in event.value["invoices"]] == [world.invoice_id]
    (set_aside,) = await wait_for_records(
        validation.servers, [REQUEST_SET_ASIDE], lambda r: r.key == request_id
    )
    assert set_aside.value["verdict"] == "on_hold"
    assert set_aside.value["waiting_for"] == [f"invoice:{world.invoice_id}"]
    assert {"check": "invoice_exists", "passed": False, "detail": f"{world.invoice_id} is not known"} in (
        set_aside.value["checks"]
    )
    holds = mongo(validation.servers)[validation.settings.database].holds
    assert await holds.count_documents({"_id": request_id}) == 0


async def test_a_refund_waits_for_kyc_and_resumes_when_master_data_verifies_the_customer(
    validation: Validation,
) -> None:
    world = new_world()
    pending = {**world.customer, "kyc_status": "pending"}
    await publish(validation.servers, (CUSTOMERS, world.customer_id, pending), *world.reference_records()[1:])
    await validation.knows("customers", world.customer_id, kyc_status="pending")
    await validation.knows("invoices", world.invoice_id)
    refund = {**world.dispute(unique("CASE")), "type": "refund"}
    request = captured(refund)
    await publish(validation.servers, request)
    (held,) = await statuses(validation.servers, request[1], "on_hold")
    assert held["reason"] == "kyc_pending"

    verified = {**world.customer, "kyc_status": "verified", "updated_at": "2026-11-20T09:00:00Z"}
    await publish(validation.servers, (CUSTOMERS, world.customer_id, verified))
    (_, validated) = await statuses(validation.servers, request[1], "on_hold", "validated")
    assert validated["reason"] is None


async def test_a_hold_past_its_time_limit_is_rejected_as_unknown(validation: Validation) -> None:
    world = new_world()
    await publish_master_data(validation, world, invoice=False)
    request = captured(world.dispute(unique("CASE")))
    await publish(validation.servers, request)
    await statuses(validation.servers, request[1], "on_hold")

    validation.clock.ahead = timedelta(seconds=HOLD_LIMIT_SECONDS + 60)
    try:
        (_, rejected) = await statuses(validation.servers, request[1], "on_hold", "rejected")
    finally:
        validation.clock.ahead = timedelta()
    assert rejected["reason"] == "unknown_invoice"
    assert rejected["message"] == f"We cannot find invoice {world.invoice_id}; please check the number."


async def test_a_repeat_of_an_open_request_is_linked_not_validated_twice_until_the_first_closes(
    validation: Validation,
) -> None:
    world = new_world()
    await publish_master_data(validation, world)
    first, repeat, after_stale, after_close = (captured(world.dispute(unique("CASE"))) for _ in range(4))
    await publish(validation.servers, first)
    await statuses(validation.servers, first[1], "validated")
    await publish(validation.servers, repeat)
    (duplicate,) = await statuses(validation.servers, repeat[1], "duplicate_of")
    assert duplicate["duplicate_of"] == first[1]
    assert first[1] in duplicate["message"]

    closed = {
        "event_id": unique("evt"),
        "request_id": first[1],
        "channel": "portal",
        "source_id": "CASE",
        "status": "closed",
        "message": "Closed.",
        "at": datetime.now(UTC).isoformat(),
    }
    # A closing status from before the request was opened (an earlier life of the request,
    # delivered late) closes nothing: the repeat is still a duplicate.
    stale = {**closed, "event_id": unique("evt"), "status": "rejected", "at": "2026-11-22T12:00:00Z"}
    await publish(validation.servers, (REQUEST_STATUS, first[1], stale))
    await wait_consumed(validation.servers, validation.settings, REQUEST_STATUS)
    await publish(validation.servers, after_stale)
    (still_duplicate,) = await statuses(validation.servers, after_stale[1], "duplicate_of")
    assert still_duplicate["duplicate_of"] == first[1]
    await publish(validation.servers, (REQUEST_STATUS, first[1], closed))
    opened = mongo(validation.servers)[validation.settings.database].open_requests

    async def first_closed() -> bool:
        found = await opened.find_one({"_id": first[1]})
        return (
            found is not None
            and found["open"] is False
            and found["duplicates"] == [repeat[1], after_stale[1]]
        )

    await wait_until(first_closed)
    await publish(validation.servers, after_close)
    (validated,) = await statuses(validation.servers, after_close[1], "validated")
    assert validated["duplicate_of"] is None
    validated_events = await wait_for_records(
        validation.servers, [REQUEST_VALIDATED], lambda r: r.key in {first[1], after_close[1]}, count=2
    )
    assert {record.key for record in validated_events} == {first[1], after_close[1]}


async def test_a_version_1_captured_event_on_the_broker_is_read_as_version_2(validation: Validation) -> None:
    """An event a version 1 intake published (no text readings in its details) is read as version 2:
    the held request keeps it as version 2, and it is validated when its invoice comes."""
    world = new_world()
    await publish_master_data(validation, world, invoice=False)
    topic, request_id, current = captured(world.dispute(unique("CASE")))
    first_version = {**current, "schema_version": 1}
    for added in ("invoice_candidates", "payment_candidates", "loose_candidates", "stated_amounts",
                  "paid_amount", "payment_date"):  # fmt: skip
        del first_version["details"][added]
    await publish(validation.servers, (topic, request_id, first_version))
    await statuses(validation.servers, request_id, "on_hold")
    holds = mongo(validation.servers)[validation.settings.database].holds
    held = await holds.find_one({"_id": request_id})
    assert held is not None
    assert held["event"]["schema_version"] == 2
    assert held["event"]["details"]["invoice_candidates"] == []

    await publish(validation.servers, (INVOICES, world.invoice_id, world.invoice))
    await statuses(validation.servers, request_id, "on_hold", "validated")


def is_about(request_id: str, record: Any) -> bool:
    return bool(record.key == request_id)


async def test_a_request_asked_for_its_invoice_resumes_on_the_reply_and_on_the_updated_case(
    validation: Validation,
) -> None:
    """Issue 9 item 4: what the customer can give by answering is asked, and the answer resumes it:
    a reply in the email thread, or the CRM case published again with the missing piece."""
    from shared.events import CaseUpdated, EmailReplyAdded
    from shared.topics import REQUEST_UPDATED

    # Two customers: two disputes of one customer about one invoice would be duplicates.
    world, other = new_world(), new_world()
    await publish_master_data(validation, world)
    await publish_master_data(validation, other)
    naming_nothing = {"invoice_ids": [], "subject": "Price above contract", "description": "Billed too high."}
    by_reply = captured(world.dispute(unique("CASE")) | naming_nothing)
    by_update = captured(other.dispute(unique("CASE")) | naming_nothing)
    await publish(validation.servers, by_reply, by_update)
    for request in (by_reply, by_update):
        (held,) = await statuses(validation.servers, request[1], "on_hold")
        assert held["reason"] == "awaiting_customer"
        assert "invoice" in held["message"].lower()

    details = by_reply[2]["details"]
    reply = EmailReplyAdded.model_validate(
        {
            "event_id": unique("EVT"),
            "request_id": by_reply[1],
            "correlation_id": by_reply[2]["correlation_id"],
            "occurred_at": datetime.now(UTC).isoformat(),
            "message_id": unique("reply"),
            "sender": "ap@example.com",
            "subject": "Reply",
            "received_at": datetime.now(UTC).isoformat(),
            "understood": {**details, "invoice_ids": [], "invoice_candidates": [world.invoice_id]},
        }
    )
    update = CaseUpdated.model_validate(
        {
            "event_id": unique("EVT"),
            "request_id": by_update[1],
            "correlation_id": by_update[2]["correlation_id"],
            "occurred_at": datetime.now(UTC).isoformat(),
            "details": {**by_update[2]["details"], "invoice_ids": [other.invoice_id]},
            "changed": ["invoice_ids"],
            "fingerprint": "changed",
        }
    )
    await publish(
        validation.servers,
        (REQUEST_UPDATED, by_reply[1], reply.model_dump(mode="json")),
        (REQUEST_UPDATED, by_update[1], update.model_dump(mode="json")),
    )
    for request, its_world in ((by_reply, world), (by_update, other)):
        (_, validated) = await statuses(validation.servers, request[1], "on_hold", "validated")
        assert validated["customer_id"] == its_world.customer_id
        (event,) = await wait_for_records(
            validation.servers, [REQUEST_VALIDATED], partial(is_about, request[1])
        )
        assert event.value["details"]["invoice_ids"] == [its_world.invoice_id]


async def test_a_question_from_the_workspace_holds_a_validated_request_until_the_answer(
    validation: Validation,
) -> None:
    """The workspace's CustomerQuestionRequested, carried out by validation: on hold awaiting the
    customer with the person's question; the reply resumes it and it is validated again."""
    from shared.actions import CustomerQuestionRequested, action_event_id
    from shared.events import EmailReplyAdded
    from shared.topics import REQUEST_ACTIONS, REQUEST_UPDATED

    world = new_world()
    await publish_master_data(validation, world)
    request = captured(world.dispute(unique("CASE")))
    request_id = request[1]
    await publish(validation.servers, request)
    await statuses(validation.servers, request_id, "validated")
    now = datetime.now(UTC).isoformat()
    question = CustomerQuestionRequested.model_validate(
        {
            "event_id": action_event_id(request_id, unique("action")),
            "request_id": request_id,
            "correlation_id": request[2]["correlation_id"],
            "occurred_at": now,
            "actor": "alice.agent",
            "actor_role": "agent",
            "question": "Which delivery note does the price difference concern?",
        }
    )
    await publish(validation.servers, (REQUEST_ACTIONS, request_id, question.model_dump(mode="json")))
    (_, held) = await statuses(validation.servers, request_id, "validated", "on_hold")
    assert (held["reason"], held["message"]) == ("awaiting_customer", question.question)

    reply = EmailReplyAdded.model_validate(
        {
            "event_id": unique("EVT"),
            "request_id": request_id,
            "correlation_id": request[2]["correlation_id"],
            "occurred_at": now,
            "message_id": unique("reply"),
            "sender": world.contact_email,
            "subject": "Reply",
            "received_at": now,
            "understood": {**request[2]["details"], "description": "Delivery note 4711."},
        }
    )
    await publish(validation.servers, (REQUEST_UPDATED, request_id, reply.model_dump(mode="json")))
    validated = await statuses(validation.servers, request_id, "validated", "on_hold", "validated")
    assert validated[0]["event_id"] != validated[2]["event_id"]
    events = await wait_for_records(
        validation.servers, [REQUEST_VALIDATED], partial(is_about, request_id), count=2
    )
    assert events[0].value["event_id"] != events[1].value["event_id"]
