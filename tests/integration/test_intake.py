"""Intake against the real broker and database: capture, redelivery, poison messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pymongo import monitoring

import shared.runtime
from crs.io import producer, publish_json
from services.intake.app import build_app
from services.intake.domain import crm_request_id, email_request_id
from services.intake.settings import IntakeSettings
from shared.mongo import build_mongo_client
from shared.topics import (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    REQUEST_CAPTURED,
    REQUEST_STATUS,
    REQUEST_UPDATED,
    dead_letter_topic,
)
from tests.support import (
    Servers,
    isolated_settings,
    mongo,
    records_now,
    running_service,
    unique,
    wait_consumed,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.integration


def crm_case(case_id: str, **fields: object) -> dict[str, object]:
    return {
        "case_id": case_id,
        "customer_id": "CUST-00001",
        "type": "billing_dispute",
        "subject": "Invoice overcharged",
        "invoice_ids": ["INV-2026-000001"],
        "expected_amount": {"amount": "900.00", "currency": "USD"},
        "submitted_at": "2026-11-22T10:15:00Z",
        **fields,
    }


def email_of_jane(message_id: str, subject: str = "Overcharged on INV-2026-000123") -> dict[str, object]:
    """A first email of a thread from a known contact (its replies are built from it)."""
    return {
        "message_id": message_id,
        "from": "Jane Doe <jane@acme.example>",
        "to": ["ar@billing.example"],
        "subject": subject,
        "body_text": "We were overcharged.",
        "received_at": "2026-11-22T10:00:00Z",
    }


async def test_a_case_delivered_twice_becomes_one_request(servers: Servers) -> None:
    settings = isolated_settings(IntakeSettings)
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id))
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id))
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
        captured = await records_now(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
        statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == request_id)

    assert len(captured) == 1
    assert [record.value["status"] for record in statuses] == ["received"]
    assert captured[0].value["details"]["expected_amount"] == {"amount": "900.00", "currency": "USD"}
    stored = await mongo(servers)[settings.database].requests.count_documents({"_id": request_id})
    assert stored == 1


FULL_PORTAL_CASE = {
    "channel": "portal",
    "description": "Line 2 is billed at 600.00; our contract CTR-2026-0001 says 500.00.",
    "payment_ids": ["PAY-2026-000009"],
    "contract_id": "CTR-2026-0001",
    "disputed_amount": {"amount": "200.00", "currency": "USD"},
    "requested_credit_limit": {"amount": "75000.00", "currency": "USD"},
    "priority": "high",
    "contact": {"name": "Zoë Ångström", "email": "zoe@acme.example"},
    "attachments": [
        {
            "filename": "Rechnung März.pdf",
            "content_type": "application/pdf",
            "size": 48213,
            "sha256": "9f" * 32,
            "uri": "s3://crm-attachments/CASE/1.pdf",
        }
    ],
}


async def test_every_optional_field_of_a_portal_case_is_kept_on_the_request(servers: Servers) -> None:
    settings = isolated_settings(IntakeSettings)
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id, **FULL_PORTAL_CASE))
        (captured,) = await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
    stored = await mongo(servers)[settings.database].requests.find_one({"_id": request_id})
    assert stored is not None
    for record in (stored, captured.value["details"]):
        assert record["channel"] == "portal"
        assert record["priority_hint"] == "high"
        assert record["contract_id"] == "CTR-2026-0001"
        assert record["payment_ids"] == ["PAY-2026-000009"]
        assert record["disputed_amount"] == {"amount": "200.00", "currency": "USD"}
        assert record["requested_credit_limit"] == {"amount": "75000.00", "currency": "USD"}
        assert record["contact"] == FULL_PORTAL_CASE["contact"]
        assert record["attachments"] == FULL_PORTAL_CASE["attachments"]
        assert record["description"] == FULL_PORTAL_CASE["description"]


async def test_poison_messages_go_to_the_dead_letter_topic_and_the_service_keeps_going(
    servers: Servers,
) -> None:
    settings = isolated_settings(IntakeSettings)
    bad_key, invalid_case, good_case = unique("BAD"), unique("CASE"), unique("CASE")
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await client.send_and_wait(CRM_REQUESTS, b"{this is not json", key=bad_key.encode())
        await publish_json(
            client,
            CRM_REQUESTS,
            invalid_case,
            crm_case(invalid_case, expected_amount={"amount": 9.99, "currency": "USD"}),
        )
        await publish_json(client, CRM_REQUESTS, good_case, crm_case(good_case))

        dead = await wait_for_records(
            servers, [dead_letter_topic(CRM_REQUESTS)], lambda r: r.key in {bad_key, invalid_case}, count=2
        )
        rejected = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == crm_request_id(invalid_case)
        )
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == crm_request_id(good_case))

    reasons = {record.key: record.headers["x-error-reason"] for record in dead}
    assert reasons == {bad_key: "malformed_json", invalid_case: "invalid_message"}
    malformed = next(record for record in dead if record.key == bad_key)
    assert malformed.raw == b"{this is not json"
    assert malformed.headers["x-original-topic"] == CRM_REQUESTS
    assert malformed.headers["x-original-offset"].isdigit()
    assert rejected[0].value["status"] == "rejected"
    assert rejected[0].value["reason"] == "invalid_request"
    assert "not JSON numbers" in rejected[0].value["message"]


async def test_a_huge_message_is_dead_lettered_not_stored(servers: Servers) -> None:
    settings = isolated_settings(IntakeSettings, max_message_bytes=10_000)
    case_id = unique("CASE")
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id, description="ü" * 20_000))
        dead = await wait_for_records(servers, [dead_letter_topic(CRM_REQUESTS)], lambda r: r.key == case_id)
    assert dead[0].headers["x-error-reason"] == "message_too_large"
    assert json.loads(dead[0].raw)["case_id"] == case_id


async def test_a_record_larger_than_the_fetch_size_is_still_read_and_so_is_the_next(servers: Servers) -> None:
    """The fetch size bounds only what waits in memory: a record above it comes whole."""
    settings = isolated_settings(IntakeSettings, max_partition_fetch_bytes=16 * 1024)
    long_case, next_case = unique("CASE"), unique("CASE")
    long_description = "Line 2 is billed at 600.00; our contract says 500.00. " + "ä" * 60_000
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, long_case, crm_case(long_case, description=long_description))
        await publish_json(client, CRM_REQUESTS, next_case, crm_case(next_case))
        wanted = {crm_request_id(long_case), crm_request_id(next_case)}
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key in wanted, count=2)
    stored = mongo(servers)[settings.database].requests
    assert await stored.count_documents({"_id": {"$in": sorted(wanted)}}) == 2


async def test_a_reply_to_a_request_email_is_added_to_that_request_not_opened_anew(servers: Servers) -> None:
    settings = isolated_settings(IntakeSettings)
    first_id = f"<{unique('first').lower()}@acme.example>"
    reply_id = f"<{unique('reply').lower()}@acme.example>"
    email = email_of_jane(first_id)
    reply = {
        **email,
        "message_id": reply_id,
        "subject": "RE: Overcharged on INV-2026-000123",
        "body_text": "Attached the contract page.\n\n> We were overcharged.",
        "in_reply_to": first_id,
        "references": [first_id],
        "attachments": [{"filename": "contract-p4.pdf", "content_type": "application/pdf", "size": 20480}],
    }
    request_id = email_request_id(first_id)
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, EMAIL_REQUESTS, first_id, email)
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
        await publish_json(client, EMAIL_REQUESTS, reply_id, reply)
        requests = mongo(servers)[settings.database].requests

        async def reply_kept() -> dict[str, object] | None:
            return await requests.find_one({"_id": request_id, "replies.message_id": reply_id.strip("<>")})

        stored = await wait_until(reply_kept)
    assert stored["replies"][0]["attachments"][0]["filename"] == "contract-p4.pdf"
    assert "contract page" in stored["replies"][0]["body_text"]
    assert await requests.count_documents({"_id": email_request_id(reply_id)}) == 0
    captured = await records_now(servers, [REQUEST_CAPTURED], lambda r: r.key == email_request_id(reply_id))
    assert captured == []
    (added,) = await wait_for_records(servers, [REQUEST_UPDATED], lambda r: r.key == request_id)
    assert added.value["event_type"] == "EmailReplyAdded"
    assert added.value["message_id"] == reply_id.strip("<>")
    assert added.value["correlation_id"] == first_id
    assert added.value["attachments"][0]["filename"] == "contract-p4.pdf"


async def test_a_changed_case_is_one_update_and_an_identical_redelivery_is_nothing(servers: Servers) -> None:
    """Issue 9 item 5: the same case_id with other content is an update of the same request."""
    settings = isolated_settings(IntakeSettings)
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    first = crm_case(case_id, invoice_ids=[], updated_at="2026-11-22T10:15:00Z")
    changed = crm_case(case_id, invoice_ids=["INV-2026-000777"], updated_at="2026-11-23T09:00:00Z")
    touched = {**changed, "updated_at": "2026-11-23T09:30:00Z"}  # the same content, touched again
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, first)
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
        await publish_json(client, CRM_REQUESTS, case_id, first)
        await publish_json(client, CRM_REQUESTS, case_id, changed)
        await publish_json(client, CRM_REQUESTS, case_id, changed)
        await publish_json(client, CRM_REQUESTS, case_id, touched)
        (update,) = await wait_for_records(servers, [REQUEST_UPDATED], lambda r: r.key == request_id)
        marker = unique("CASE")  # a later case through the same consumer: everything before is taken in
        await publish_json(client, CRM_REQUESTS, marker, crm_case(marker))
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == crm_request_id(marker))
        updates = await records_now(servers, [REQUEST_UPDATED], lambda r: r.key == request_id)
        captured = await records_now(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
        statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == request_id)

    assert len(updates) == 1
    assert len(captured) == 1
    assert [record.value["status"] for record in statuses] == ["received"]
    assert update.value["event_type"] == "CaseUpdated"
    assert update.value["changed"] == ["invoice_ids"]
    assert update.value["details"]["invoice_ids"] == ["INV-2026-000777"]
    assert update.value["withdrawn"] is False
    stored = await mongo(servers)[settings.database].requests.find_one({"_id": request_id})
    assert stored is not None
    assert stored["invoice_ids"] == ["INV-2026-000777"]


async def test_a_case_withdrawn_before_intake_saw_it_is_closed_at_once(servers: Servers) -> None:
    settings = isolated_settings(IntakeSettings)
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id, withdrawn=True))
        (status,) = await wait_for_records(servers, [REQUEST_STATUS], lambda r: r.key == request_id)
        captured = await records_now(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
    assert captured == []
    assert (status.value["status"], status.value["reason"]) == ("closed", "withdrawn")


async def test_a_reply_carries_what_it_says_and_a_late_one_opens_a_linked_request(servers: Servers) -> None:
    """A reply in the thread is understood like a new email (its own text, not its subject); after
    the reopening window, a reply to a closed request opens a new request linked to it."""
    settings = isolated_settings(IntakeSettings).model_copy(update={"reopen_window_days": 0})
    first_id = f"<{unique('first').lower()}@acme.example>"
    email = email_of_jane(first_id, subject="Overcharged on invoice 42")

    def reply(message_id: str, body: str) -> dict[str, object]:
        subject = "RE: Overcharged on invoice 42"
        return {**email, "message_id": message_id, "subject": subject, "body_text": body}

    answer_id = f"<{unique('answer').lower()}@acme.example>"
    late_id = f"<{unique('late').lower()}@acme.example>"
    request_id = email_request_id(first_id)
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, EMAIL_REQUESTS, first_id, email)
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
        answer = reply(answer_id, "It is invoice INV-2026-000555.") | {"in_reply_to": first_id}
        await publish_json(client, EMAIL_REQUESTS, answer_id, answer)
        (added,) = await wait_for_records(servers, [REQUEST_UPDATED], lambda r: r.key == request_id)
        closed = {
            "event_id": unique("EVT"),
            "request_id": request_id,
            "channel": "email",
            "source_id": first_id,
            "status": "closed",
            "message": "Closed.",
            "at": "2026-11-22T11:00:00Z",
        }
        await publish_json(client, REQUEST_STATUS, request_id, closed)
        requests = mongo(servers)[settings.database].requests

        async def closed_kept() -> dict[str, object] | None:
            return await requests.find_one({"_id": request_id, "closed_at": {"$exists": True}})

        await wait_until(closed_kept)
        late = reply(late_id, "Still wrong.") | {
            "in_reply_to": answer_id,
            "references": [first_id, answer_id],
        }
        await publish_json(client, EMAIL_REQUESTS, late_id, late)
        (opened,) = await wait_for_records(
            servers, [REQUEST_CAPTURED], lambda r: r.key == email_request_id(late_id)
        )
        (received,) = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == email_request_id(late_id)
        )
    understood = added.value["understood"]
    assert understood["invoice_candidates"] == ["INV-2026-000555"]
    assert added.value["automatic"] is False
    assert opened.value["follows_up"] == request_id
    assert request_id in received.value["message"]


async def test_a_closing_older_than_the_reopening_delivered_late_leaves_the_request_open(
    servers: Servers,
) -> None:
    # Intake records no processed keys for statuses: the latest closing and reopening are kept
    # apart by time, so a late older closing (another event) changes nothing.
    settings = isolated_settings(IntakeSettings)
    first_id = f"<{unique('first').lower()}@acme.example>"
    reply_id = f"<{unique('reply').lower()}@acme.example>"
    email = email_of_jane(first_id)
    reply = {**email, "message_id": reply_id, "subject": "RE: Overcharged", "in_reply_to": first_id}
    request_id = email_request_id(first_id)

    def status(name: str, at: str) -> dict[str, object]:
        return {
            "event_id": unique("EVT"),
            "request_id": request_id,
            "channel": "email",
            "source_id": first_id,
            "status": name,
            "message": name,
            "at": at,
        }

    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, EMAIL_REQUESTS, first_id, email)
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == request_id)
        for name, at in (
            ("closed", "2026-11-23T11:00:00Z"),
            ("reopened", "2026-11-24T11:00:00Z"),
            ("closed", "2026-11-23T11:00:00Z"),  # the first closing again, as another event: late
        ):
            await publish_json(client, REQUEST_STATUS, request_id, status(name, at))
        await wait_consumed(servers, settings, REQUEST_STATUS)
        await publish_json(client, EMAIL_REQUESTS, reply_id, reply)
        (added,) = await wait_for_records(servers, [REQUEST_UPDATED], lambda r: r.key == request_id)
    assert added.value["reopens"] is False


class RequestReads(monitoring.CommandListener):
    """How many ``find`` commands read intake's ``requests`` collection, and the most requests one
    of them asked for by id."""

    def __init__(self) -> None:
        self.finds = 0
        self.most_asked = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "requests":
            self.finds += 1
            wanted = (event.command.get("filter") or {}).get("_id")
            asked = len(wanted["$in"]) if isinstance(wanted, dict) and "$in" in wanted else 1
            self.most_asked = max(self.most_asked, asked)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_batch_of_new_cases_reads_their_requests_once_not_once_per_case(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = RequestReads()

    def monitored_client(uri: Any, *, listeners: Any = ()) -> Any:
        return build_mongo_client(uri, listeners=[*listeners, reads])

    monkeypatch.setattr(shared.runtime, "build_mongo_client", monitored_client)
    settings = isolated_settings(IntakeSettings)
    cases = [crm_case(unique("CASE")) for _ in range(40)]
    async with producer(servers.bootstrap_servers) as client:
        for case in cases:  # all waiting before intake starts: they come in a few batches
            await publish_json(client, CRM_REQUESTS, str(case["case_id"]), case)
    async with running_service(build_app, settings, servers):
        wanted = {crm_request_id(str(case["case_id"])) for case in cases}
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key in wanted, count=len(cases))
    # One $in per batch, not one read per case: the cases waiting together were read together
    # (how many batches they come in depends on the machine's load: 2 to 18 seen).
    assert reads.most_asked >= 5, (reads.finds, reads.most_asked)
    assert reads.finds < len(cases), (reads.finds, reads.most_asked)
