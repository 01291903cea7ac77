"""Validation, routing, resolution and audit, each alone against the real broker and database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crs.io import producer, publish_json
from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from services.intake.domain import capture_crm_request
from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from shared.contract import CrmRequest
from shared.events import RequestValidated
from shared.topics import (
    CUSTOMERS,
    ERP_ACKS,
    REQUEST_CAPTURED,
    REQUEST_ROUTED,
    REQUEST_STATUS,
    REQUEST_VALIDATED,
    dead_letter_topic,
)
from tests.e2e.scenario import new_world
from tests.support import (
    Servers,
    isolated_settings,
    mongo,
    running_service,
    unique,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.integration


def captured_event(case: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    capture = capture_crm_request(CrmRequest.model_validate(case), now=datetime.now(UTC))
    return capture.request_id, capture.captured.model_dump(mode="json")


async def test_validation_keeps_the_newest_customer_record_and_rejects_a_blocked_customer(
    servers: Servers,
) -> None:
    settings = isolated_settings(ValidationSettings)
    world = new_world()
    newer = {**world.customer, "status": "blocked", "updated_at": "2026-11-10T00:00:00Z"}
    older = {**world.customer, "status": "active", "updated_at": "2026-11-05T00:00:00Z"}
    request_id, event = captured_event(world.dispute(unique("CASE")))
    async with (
        running_service(build_validation, settings, servers),
        producer(servers.bootstrap_servers) as client,
    ):
        await publish_json(client, CUSTOMERS, world.customer_id, newer)
        await publish_json(client, CUSTOMERS, world.customer_id, older)  # late and stale
        customers = mongo(servers)[settings.database].customers

        async def both_seen() -> bool:
            stored = await customers.find_one({"_id": world.customer_id})
            processed = await mongo(servers)[settings.database].processed_messages.count_documents(
                {"_id": {"$regex": f"^{CUSTOMERS}:{world.customer_id}:"}}
            )
            return stored is not None and processed == 2

        await wait_until(both_seen)
        await publish_json(client, REQUEST_CAPTURED, request_id, event)
        (status,) = await wait_for_records(servers, [REQUEST_STATUS], lambda r: r.key == request_id)

    stored = await customers.find_one({"_id": world.customer_id})
    assert stored is not None
    assert stored["status"] == "blocked"
    assert (status.value["status"], status.value["reason"]) == ("rejected", "customer_blocked")
    outcome = await mongo(servers)[settings.database].validations.find_one({"_id": request_id})
    assert outcome is not None
    assert [check["check"] for check in outcome["checks"]] == ["customer_exists", "customer_active"]


async def test_routing_puts_a_validated_dispute_in_accounts_receivable_with_an_sla(servers: Servers) -> None:
    settings = isolated_settings(RoutingSettings)
    world = new_world()
    request_id, captured = captured_event(world.dispute(unique("CASE")))
    validated = RequestValidated.model_validate(
        {
            **captured,
            "event_type": "RequestValidated",
            "event_id": unique("evt"),
            "customer_id": world.customer_id,
            "customer_tier": "strategic",
        }
    ).model_dump(mode="json")
    async with (
        running_service(build_routing, settings, servers),
        producer(servers.bootstrap_servers) as client,
    ):
        await publish_json(client, REQUEST_VALIDATED, request_id, validated)
        await publish_json(client, REQUEST_VALIDATED, request_id, validated)
        (routed,) = await wait_for_records(servers, [REQUEST_ROUTED], lambda r: r.key == request_id)
        (status,) = await wait_for_records(servers, [REQUEST_STATUS], lambda r: r.key == request_id)
    assert routed.value["queue"] == "accounts_receivable"
    assert routed.value["priority"] == "high"  # a strategic customer
    assert status.value["sla_due_at"] == routed.value["sla_due_at"]
    assert await mongo(servers)[settings.database].routes.count_documents({"_id": request_id}) == 1


async def test_resolution_dead_letters_an_ack_for_a_resolution_it_never_issued(servers: Servers) -> None:
    settings = isolated_settings(ResolutionSettings)
    request_id = unique("REQ")
    ack = {"resolution_id": unique("RES"), "request_id": request_id, "status": "posted"}
    async with (
        running_service(build_resolution, settings, servers),
        producer(servers.bootstrap_servers) as client,
    ):
        await publish_json(client, ERP_ACKS, request_id, ack)
        (dead,) = await wait_for_records(
            servers, [dead_letter_topic(ERP_ACKS)], lambda r: r.key == request_id
        )
    assert dead.headers["x-error-reason"] == "unknown_resolution"
    assert dead.headers["x-failed-service"] == "resolution"


async def test_audit_records_every_record_in_order_even_the_unreadable_ones(servers: Servers) -> None:
    settings = isolated_settings(AuditSettings)
    request_id = unique("REQ")
    statuses = ["received", "validated", "routed"]
    async with running_service(build_audit, settings, servers), producer(servers.bootstrap_servers) as client:
        for status in statuses:
            await publish_json(
                client, REQUEST_STATUS, request_id, {"request_id": request_id, "status": status}
            )
        await client.send_and_wait(REQUEST_STATUS, b"\xff not json", key=request_id.encode())
        entries = mongo(servers)[settings.database].entries

        async def all_recorded() -> list[dict[str, Any]]:
            found = [entry async for entry in entries.find({"key": request_id}).sort("offset", 1)]
            return found if len(found) == 4 else []

        # A new audit group reads every request topic from the start, what earlier tests left included.
        recorded = await wait_until(all_recorded, timeout=180)
    assert [entry["status"] for entry in recorded[:3]] == statuses
    assert [entry["sequence"] for entry in recorded[:3]] == [1, 2, 3]
    assert recorded[3]["request_id"] is None
    assert recorded[3]["event_type"] == "unreadable"
    assert "not json" in recorded[3]["text"]


async def test_resolution_closes_a_withdrawn_request_and_says_its_posting_stands(servers: Servers) -> None:
    """Issue 9 item 5: a withdrawal stops a request resolution holds; a posting already sent to the
    ERP is not undone, the status says so, and the ERP's later answer closes nothing again."""
    from shared.events import CaseUpdated, RequestRouted
    from shared.topics import ERP_RESOLUTIONS, REQUEST_UPDATED
    from tests.support import publish, records_now

    settings = isolated_settings(ResolutionSettings)
    world = new_world()
    request_id, captured = captured_event(world.dispute(unique("CASE")))
    now = datetime.now(UTC).isoformat()
    routed = RequestRouted.model_validate(
        {
            **captured,
            "event_type": "RequestRouted",
            "event_id": unique("evt"),
            "customer_id": world.customer_id,
            "customer_tier": "standard",
            "queue": "accounts_receivable",
            "priority": "normal",
            "sla_due_at": now,
            "rule_version": "test",
        }
    ).model_dump(mode="json")
    withdrawn = CaseUpdated.model_validate(
        {
            **captured,
            "event_type": "CaseUpdated",
            "event_id": unique("evt"),
            "occurred_at": now,
            "changed": ["withdrawn"],
            "fingerprint": "withdrawn",
            "withdrawn": True,
        }
    ).model_dump(mode="json")
    async with running_service(build_resolution, settings, servers):
        await publish(servers, *world.reference_records())
        views = mongo(servers)[settings.database]

        async def knows_the_invoice() -> bool:
            return await views.invoices.find_one({"_id": world.invoice_id}) is not None

        await wait_until(knows_the_invoice)
        await publish(servers, (REQUEST_ROUTED, request_id, routed))
        (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
        await publish(servers, (REQUEST_UPDATED, request_id, withdrawn))
        (closed,) = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["status"] == "closed"
        )
        ack = {
            "resolution_id": posting.value["resolution_id"],
            "request_id": request_id,
            "status": "posted",
            "erp_document_id": "ERP-9",
        }
        await publish(servers, (ERP_ACKS, request_id, ack))

        async def acknowledged() -> bool:
            found = await views.resolutions.find_one({"_id": posting.value["resolution_id"]})
            return found is not None and found.get("status") == "posted"

        await wait_until(acknowledged)
    assert closed.value["reason"] == "withdrawn"
    assert "not undone" in closed.value["message"]
    assert posting.value["resolution_id"] in closed.value["message"]
    closes = [
        record
        for record in await records_now(servers, [REQUEST_STATUS], lambda r: r.key == request_id)
        if record.value["status"] == "closed"
    ]
    assert len(closes) == 1
