"""Intake against the real broker and database: capture, redelivery, poison messages."""

from __future__ import annotations

import json

import pytest

from crs.io import producer, publish_json
from services.intake.app import build_app
from services.intake.domain import crm_request_id, email_request_id
from services.intake.settings import IntakeSettings
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


async def test_a_reply_to_a_request_email_is_added_to_that_request_not_opened_anew(servers: Servers) -> None:
    settings = isolated_settings(IntakeSettings)
    first_id = f"<{unique('first').lower()}@acme.example>"
    reply_id = f"<{unique('reply').lower()}@acme.example>"
    email = {
        "message_id": first_id,
        "from": "Jane Doe <jane@acme.example>",
        "to": ["ar@billing.example"],
        "subject": "Overcharged on INV-2026-000123",
        "body_text": "We were overcharged.",
        "received_at": "2026-11-22T10:00:00Z",
    }
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
