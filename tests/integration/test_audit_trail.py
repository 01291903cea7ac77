"""The audit trail on the real broker and database: sealed by the service, checked by `crs`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crs.cli import main
from crs.io import producer, publish_json
from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from services.intake.domain import capture_crm_request
from shared.contract import CrmRequest
from shared.events import RequestRouted, RequestValidated
from shared.topics import (
    CRM_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_CAPTURED,
    REQUEST_ROUTED,
    REQUEST_STATUS,
    REQUEST_VALIDATED,
)
from tests.e2e.scenario import new_world
from tests.support import Servers, isolated_settings, mongo, running_service, unique, wait_until

pytestmark = pytest.mark.integration


def a_dispute_from_capture_to_erp_ack() -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
    """A dispute's whole life as records on the request topics: (request id, [(topic, key, value)])."""
    world = new_world()
    case = world.dispute(unique("CASE"))
    capture = capture_crm_request(CrmRequest.model_validate(case), now=datetime.now(UTC))
    request_id, captured = capture.request_id, capture.captured.model_dump(mode="json")
    checks = [
        {"check": "customer_exists", "passed": True, "detail": world.customer_id},
        {"check": "invoice_owned", "passed": True, "detail": world.invoice_id},
    ]
    validated = RequestValidated.model_validate(
        {
            **captured,
            "event_type": "RequestValidated",
            "event_id": unique("evt"),
            "customer_id": world.customer_id,
            "customer_tier": "key",
            "checks": checks,
        }
    ).model_dump(mode="json")
    routed = RequestRouted.model_validate(
        {
            **validated,
            "event_type": "RequestRouted",
            "event_id": unique("evt"),
            "queue": "accounts_receivable",
            "priority": "high",
            "sla_due_at": "2026-11-24T10:15:00Z",
            "rule_version": "routing-2026.11",
        }
    ).model_dump(mode="json")
    resolution_id = unique("RES")
    records = [
        (CRM_REQUESTS, case["case_id"], case),
        (REQUEST_CAPTURED, request_id, captured),
        *(
            (REQUEST_STATUS, request_id, {"request_id": request_id, "status": status, "at": at})
            for status, at in [("received", "2026-11-22T10:15:01Z"), ("validated", "2026-11-22T10:15:02Z")]
        ),
        (REQUEST_VALIDATED, request_id, validated),
        (REQUEST_ROUTED, request_id, routed),
        (
            ERP_RESOLUTIONS,
            request_id,
            {
                "resolution_id": resolution_id,
                "request_id": request_id,
                "customer_id": world.customer_id,
                "kind": "credit_memo",
                "invoice_id": world.invoice_id,
                "amount": {"amount": "200.00", "currency": "USD"},
                "reason_code": "pricing_dispute",
                "created_at": "2026-11-22T10:15:03Z",
            },
        ),
        (
            ERP_ACKS,
            request_id,
            {
                "resolution_id": resolution_id,
                "request_id": request_id,
                "status": "posted",
                "erp_document_id": "CM-1",
                "posted_at": "2026-11-22T10:16:00Z",
            },
        ),
    ]
    return request_id, records


async def crs(*argv: str) -> tuple[int, str]:
    """Run the `crs` command line and return its exit code and what it printed.

    In a thread, because it runs its own event loop. Not with capsys: a service built while
    capsys is active caches loggers writing to capsys's stream, which later tests find closed.
    """

    def run() -> tuple[int, str]:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = main(list(argv))
        return code, printed.getvalue()

    return await asyncio.to_thread(run)


async def test_verify_passes_on_what_audit_recorded_and_names_an_edited_or_deleted_entry(
    servers: Servers,
) -> None:
    settings = isolated_settings(AuditSettings)
    where = ("--mongodb-uri", servers.mongodb_uri, "--database", settings.database)
    dispute, records = a_dispute_from_capture_to_erp_ack()
    other = unique("REQ")
    records += [
        (REQUEST_STATUS, other, {"request_id": other, "status": status})
        for status in ("received", "rejected")
    ]
    entries = mongo(servers)[settings.database].entries
    async with running_service(build_audit, settings, servers), producer(servers.bootstrap_servers) as client:
        for topic, key, value in records:
            await publish_json(client, topic, key, value)
        await client.send_and_wait(REQUEST_STATUS, b"\xff not json", key=other.encode())
        # Audit reads every request topic from the beginning, so it also records what earlier
        # tests published: wait for this test's records, and count the rest from the database.
        ours = {"request_id": {"$in": [dispute, other]}}
        await wait_until(lambda: _count_is(entries, ours, len(records)), timeout=60)
        await wait_until(lambda: entries.find_one({"text": {"$regex": "not json$"}}), timeout=60)
    everything = await entries.count_documents({})
    chains = len(await entries.distinct("request_id"))
    unattributed = await entries.count_documents({"request_id": None})

    code, out = await crs("audit", "verify", dispute, *where)
    assert code == 0, out
    assert f"{dispute}: 8 entries, chain intact" in out
    code, out = await crs("audit", "verify", "--all", *where)
    assert code == 0, out
    assert f"{everything} entries in {chains} request chains" in out
    assert "result: INTACT" in out
    code, out = await crs("audit", "verify", "__unattributed__", *where)
    assert code == 0
    assert out.startswith(f"__unattributed__: {unattributed} entr")
    assert "chain intact" in out.splitlines()[0]

    # The record an auditor reads, from the audit store alone.
    code, out = await crs("record", dispute, "--json", *where)
    assert code == 0
    record = json.loads(out)
    assert record["received"][0]["message"]["case_id"] == records[0][2]["case_id"]
    assert [check["check"] for check in record["validations"][0]["checks"]] == [
        "customer_exists",
        "invoice_owned",
    ]
    assert (record["routing"]["queue"], record["routing"]["rule_version"]) == (
        "accounts_receivable",
        "routing-2026.11",
    )
    assert [change["status"] for change in record["status_changes"]] == ["received", "validated"]
    assert record["resolutions"][0]["message"]["kind"] == "credit_memo"
    assert record["erp_acks"][0]["message"]["status"] == "posted"
    assert record["chain_intact"] is True

    # Someone edits one entry's text behind the service's back.
    edited = await entries.find_one({"request_id": dispute, "topic": REQUEST_STATUS, "status": "received"})
    assert edited is not None
    number, forged = edited["sequence"], edited["text"].replace("received", "closed")
    assert forged != edited["text"]
    await entries.update_one({"_id": edited["_id"]}, {"$set": {"text": forged}})
    code, out = await crs("audit", "verify", dispute, *where)
    assert code == 1
    assert (
        f"first broken entry: {dispute} #{number} (request {dispute} #{number}, "
        f"global #{edited['global_sequence']}, {REQUEST_STATUS} partition {edited['partition']} "
        f"offset {edited['offset']}): content changed"
    ) in out
    code, out = await crs("audit", "verify", "--all", *where)
    assert code == 1
    assert f"global chain: BROKEN at global chain #{edited['global_sequence']} " in out
    assert f"  {dispute} #{number} (" in out
    assert f"request chains: {chains - 1} intact, 1 broken" in out
    code, out = await crs("record", dispute, *where)
    assert code == 0
    assert f"chain BROKEN: {dispute} #{number} (" in out

    # Put back exactly what was there: intact again, so it was the text that broke it.
    await entries.update_one({"_id": edited["_id"]}, {"$set": {"text": edited["text"]}})
    assert (await crs("audit", "verify", "--all", *where))[0] == 0

    # Someone deletes an entry.
    deleted = await entries.find_one_and_delete({"request_id": other, "sequence": 1})
    assert deleted is not None
    code, out = await crs("audit", "verify", other, *where)
    assert code == 1
    assert f"first broken entry: {other} #1 (missing; next is request {other} #2, " in out
    assert "gap in the sequence: expected #1, found #2: #1 missing" in out
    code, out = await crs("audit", "verify", "--all", *where)
    assert code == 1
    assert f"{everything - 1} entries in {chains} request chains" in out
    assert f"global chain #{deleted['global_sequence']} (" in out
    assert "gap in the sequence" in out


async def _count_is(collection: Any, query: dict[str, Any], expected: int) -> bool:
    return bool(await collection.count_documents(query) == expected)


async def test_verify_and_record_of_an_unknown_request_say_so(
    servers: Servers,
) -> None:
    where = ("--mongodb-uri", servers.mongodb_uri, "--database", isolated_settings(AuditSettings).database)
    code, out = await crs("audit", "verify", "REQ-NOBODY", *where)
    assert code == 2
    assert "REQ-NOBODY: no audit entries" in out
    assert (await crs("record", "REQ-NOBODY", *where))[0] == 2
