"""Intake's limits and refusals on the real broker and database.

- A message may only reject what it would have created: an invalid copy of a live case or email is
  dead-lettered, and the live request is left alone.
- Limits are refused with a reason that names them: too large a message, too long a field, an
  event too large for the broker. Nothing is left in the outbox that can never be published.
- A restart with an outbox row the broker will never take starts anyway, sets that row aside and
  publishes the rows behind it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from crs.io import producer, publish_json
from services.intake.app import build_app
from services.intake.domain import crm_request_id, email_request_id
from services.intake.settings import IntakeSettings
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_CAPTURED, REQUEST_STATUS, dead_letter_topic
from tests.integration.test_intake import crm_case
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


def email(message_id: str, **fields: object) -> dict[str, object]:
    return {
        "message_id": message_id,
        "from": "Jane Doe <jane@acme.example>",
        "to": ["ar@billing.example"],
        "subject": "Overcharged on INV-2026-000123",
        "body_text": "We were overcharged.",
        "received_at": "2026-11-22T10:00:00Z",
        **fields,
    }


async def test_an_invalid_copy_of_a_live_request_is_dead_lettered_without_rejecting_it(
    servers: Servers,
) -> None:
    settings = isolated_settings(IntakeSettings)
    live_case, new_case = unique("CASE"), unique("CASE")
    live_email = f"<{unique('live').lower()}@acme.example>"
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, live_case, crm_case(live_case))
        await publish_json(client, EMAIL_REQUESTS, live_email, email(live_email))
        live = {crm_request_id(live_case), email_request_id(live_email)}
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key in live, count=2)

        await publish_json(client, CRM_REQUESTS, live_case, {"case_id": live_case, "subject": 5})
        await publish_json(client, EMAIL_REQUESTS, live_email, {"message_id": live_email, "subject": 5})
        await publish_json(client, CRM_REQUESTS, new_case, {"case_id": new_case, "subject": 5})
        dead = await wait_for_records(
            servers,
            [dead_letter_topic(CRM_REQUESTS), dead_letter_topic(EMAIL_REQUESTS)],
            lambda r: r.key in {live_case, live_email, new_case},
            count=3,
        )
        (rejected,) = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == crm_request_id(new_case)
        )
        statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key in live)

    assert {record.headers["x-error-reason"] for record in dead} == {"invalid_message"}
    assert sorted(record.value["status"] for record in statuses) == ["received", "received"]
    assert rejected.value["status"] == "rejected"
    assert "subject" in rejected.value["message"]


async def test_a_message_or_field_over_its_limit_is_refused_with_a_reason_naming_the_limit(
    servers: Servers,
) -> None:
    settings = isolated_settings(IntakeSettings, max_message_bytes=10_000)
    big_case, long_subject = unique("CASE"), unique("CASE")
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, big_case, crm_case(big_case, description="x" * 20_000))
        await publish_json(client, CRM_REQUESTS, long_subject, crm_case(long_subject, subject="s" * 1_001))
        wanted = {crm_request_id(big_case), crm_request_id(long_subject)}
        rejections = await wait_for_records(servers, [REQUEST_STATUS], lambda r: r.key in wanted, count=2)
        dead = await wait_for_records(
            servers, [dead_letter_topic(CRM_REQUESTS)], lambda r: r.key in {big_case, long_subject}, count=2
        )

    messages = {record.key: record.value["message"] for record in rejections}
    assert "10000 bytes" in messages[crm_request_id(big_case)]
    assert "max_message_bytes" in messages[crm_request_id(big_case)]
    assert "1000 characters" in messages[crm_request_id(long_subject)]
    assert {record.value["status"] for record in rejections} == {"rejected"}
    reasons = {record.key: record.headers["x-error-reason"] for record in dead}
    assert reasons == {big_case: "message_too_large", long_subject: "invalid_message"}


async def test_a_long_text_of_amounts_is_read_only_up_to_its_limit_and_captured(servers: Servers) -> None:
    # 100 KB of "$1 " once became a 1.17 MB RequestCaptured (every amount listed) that the broker
    # refused for ever, holding up the partition and the outbox.
    settings = isolated_settings(IntakeSettings)
    case_id, after = unique("CASE"), unique("CASE")
    description = "$1 " * 33_000
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id, description=description))
        await publish_json(client, CRM_REQUESTS, after, crm_case(after))
        wanted = {crm_request_id(case_id), crm_request_id(after)}
        captured = await wait_for_records(
            servers, [REQUEST_CAPTURED], lambda r: r.key in wanted, count=2, timeout=90
        )
    details = next(record for record in captured if record.key == crm_request_id(case_id)).value["details"]
    assert details["description"] == description
    analysed = description[: settings.max_analysed_chars]
    assert len(details["mentioned_amounts"]) == len(analysed.split()) < len(description.split())
    assert len(next(record for record in captured if record.key == crm_request_id(case_id)).raw) < 1024 * 1024


async def test_an_event_too_large_for_the_broker_fails_its_message_for_good_and_tells_the_sender(
    servers: Servers,
) -> None:
    settings = isolated_settings(IntakeSettings, max_record_bytes=64 * 1024)
    case_id, after = unique("CASE"), unique("CASE")
    async with running_service(build_app, settings, servers), producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, crm_case(case_id, description="$1 " * 20_000))
        await publish_json(client, CRM_REQUESTS, after, crm_case(after))
        (dead,) = await wait_for_records(
            servers, [dead_letter_topic(CRM_REQUESTS)], lambda r: r.key == case_id
        )
        (rejected,) = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == crm_request_id(case_id)
        )
        await wait_for_records(servers, [REQUEST_CAPTURED], lambda r: r.key == crm_request_id(after))

    assert dead.headers["x-error-reason"] == "event_too_large"
    assert "65536 bytes (max_record_bytes)" in dead.headers["x-error"]
    assert rejected.value["status"] == "rejected"
    assert "max_record_bytes" in rejected.value["message"]
    database = mongo(servers)[settings.database]
    assert await database.outbox.count_documents({}) == 0
    assert await database.requests.count_documents({"_id": crm_request_id(case_id)}) == 0


async def test_a_restart_with_an_outbox_row_the_broker_refuses_starts_and_publishes_the_rows_behind_it(
    servers: Servers,
) -> None:
    settings = isolated_settings(IntakeSettings)
    database = mongo(servers)[settings.database]
    created = datetime.now(UTC) - timedelta(minutes=5)
    keys = {name: unique(name) for name in ("BEFORE", "HUGE", "AFTER")}
    rows = [
        ("BEFORE", json.dumps({"note": "before"})),
        ("HUGE", json.dumps({"note": "x" * 2_000_000})),  # committed by an older release
        ("AFTER", json.dumps({"note": "after"})),
    ]
    await database.outbox.insert_one(
        {
            "_id": f"batch-{keys['HUGE']}",
            "created_at": created,
            "keys": sorted(keys.values()),
            "source_keys": sorted(f"crm:{key}" for key in keys.values()),
            "events": [
                {
                    "id": f"evt-{keys[name]}",
                    "source_key": f"crm:{keys[name]}",
                    "topic": REQUEST_STATUS,
                    "key": keys[name],
                    "value": value,
                }
                for name, value in rows
            ],
        }
    )
    async with running_service(build_app, settings, servers):  # it starts: the flush did not stop it
        published = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key in {keys["BEFORE"], keys["AFTER"]}, count=2
        )

        async def quarantined() -> bool:
            return await database.outbox_refused.count_documents({"_id": f"evt-{keys['HUGE']}"}) == 1

        await wait_until(quarantined)
    assert sorted(record.value["note"] for record in published) == ["after", "before"]
    assert await database.outbox.count_documents({}) == 0
    stored = await database.outbox_refused.find_one({"_id": f"evt-{keys['HUGE']}"})
    assert stored is not None
    assert "max_record_bytes" in stored["reason"]
