"""A CRM dispute and an email request through all five services on the real broker and database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from crs.io import producer, publish_json
from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from services.intake.app import build_app as build_intake
from services.intake.domain import crm_request_id, email_request_id
from services.intake.settings import IntakeSettings
from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from shared.topics import (
    CRM_REQUESTS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_STATUS,
)
from tests.e2e.scenario import World, new_world
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

pytestmark = pytest.mark.e2e


class FiveServices:
    def __init__(self) -> None:
        self.intake = isolated_settings(IntakeSettings)
        self.validation = isolated_settings(ValidationSettings)
        self.routing = isolated_settings(RoutingSettings)
        self.resolution = isolated_settings(ResolutionSettings)
        self.audit = isolated_settings(AuditSettings)


@pytest.fixture
async def services(servers: Servers) -> AsyncIterator[FiveServices]:
    five = FiveServices()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running_service(build_intake, five.intake, servers))
        await stack.enter_async_context(running_service(build_validation, five.validation, servers))
        await stack.enter_async_context(running_service(build_routing, five.routing, servers))
        await stack.enter_async_context(running_service(build_resolution, five.resolution, servers))
        await stack.enter_async_context(running_service(build_audit, five.audit, servers))
        yield five


async def publish_reference_data(servers: Servers, five: FiveServices, world: World) -> None:
    async with producer(servers.bootstrap_servers) as client:
        for topic, key, value in world.reference_records():
            await publish_json(client, topic, key, value)
    # Validation and resolution each keep their own views of the reference data.
    for database in (mongo(servers)[five.validation.database], mongo(servers)[five.resolution.database]):

        async def known(database: Any = database) -> bool:
            customer = await database.customers.find_one({"_id": world.customer_id})
            invoice = await database.invoices.find_one({"_id": world.invoice_id})
            contract = await database.contracts.find_one({"_id": world.contract_id})
            return None not in (customer, invoice, contract)

        await wait_until(known)


def statuses_of(records: list[Any]) -> list[str]:
    return [record.value["status"] for record in records]


async def test_a_portal_dispute_is_credited_posted_closed_and_audited(
    servers: Servers, services: FiveServices
) -> None:
    world = new_world()
    await publish_reference_data(servers, services, world)
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)

    async with producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, world.dispute(case_id))
        (resolution,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
        # The gateway delivers the case again: nothing new may come of it.
        await publish_json(client, CRM_REQUESTS, case_id, world.dispute(case_id))
        ack = {
            "resolution_id": resolution.value["resolution_id"],
            "request_id": request_id,
            "status": "posted",
            "erp_document_id": "CM-2026-0001",
            "posted_at": "2026-11-22T12:00:00Z",
        }
        await publish_json(client, ERP_ACKS, request_id, ack)
        await publish_json(client, ERP_ACKS, request_id, ack)
        await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["status"] == "closed"
        )

    assert resolution.value["kind"] == "credit_memo"
    assert resolution.value["customer_id"] == world.customer_id
    assert resolution.value["invoice_id"] == world.invoice_id
    assert resolution.value["amount"] == {"amount": "200.00", "currency": "USD"}
    assert resolution.value["original_amount"] == {"amount": "1200.00", "currency": "USD"}
    assert resolution.value["corrected_amount"] == {"amount": "1000.00", "currency": "USD"}

    resolutions = await records_now(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    assert len(resolutions) == 1
    statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == request_id)
    assert statuses_of(statuses) == ["received", "validated", "routed", "resolved", "closed"]
    routed = statuses[2].value
    assert routed["queue"] == "accounts_receivable"
    assert routed["channel"] == "portal"
    assert routed["source_id"] == case_id
    assert routed["sla_due_at"] is not None

    audit = mongo(servers)[services.audit.database]

    async def audit_trail() -> list[dict[str, Any]]:
        entries = [
            entry async for entry in audit.entries.find({"request_id": request_id}).sort("sequence", 1)
        ]
        return entries if len(entries) >= 13 else []

    trail = await wait_until(audit_trail)
    assert [entry["sequence"] for entry in trail] == list(range(1, len(trail) + 1))
    by_topic: dict[str, int] = {}
    for entry in trail:
        by_topic[entry["topic"]] = by_topic.get(entry["topic"], 0) + 1
        assert isinstance(entry["partition"], int)
        assert isinstance(entry["offset"], int)
    assert by_topic == {
        CRM_REQUESTS: 2,
        "requests.captured.v1": 1,
        "requests.validated.v1": 1,
        "requests.routed.v1": 1,
        ERP_RESOLUTIONS: 1,
        ERP_ACKS: 2,
        REQUEST_STATUS: 5,
    }
    audited_statuses = [entry["status"] for entry in trail if entry["topic"] == REQUEST_STATUS]
    assert audited_statuses == ["received", "validated", "routed", "resolved", "closed"]
    # The customer as the master data described it when the request was validated.
    (validated,) = [json.loads(entry["text"]) for entry in trail if entry["event_type"] == "RequestValidated"]
    assert validated["customer"]["name"] == world.customer["name"]
    assert validated["customer"]["kyc_status"] == "verified"
    assert validated["customer"]["credit_limit"] == world.customer["credit_limit"]


async def test_an_email_from_a_known_contact_is_matched_routed_and_audited(
    servers: Servers, services: FiveServices
) -> None:
    world = new_world()
    await publish_reference_data(servers, services, world)
    message_id = unique("msg").lower()
    request_id = email_request_id(f"{message_id}@mail.example")

    async with producer(servers.bootstrap_servers) as client:
        await publish_json(client, EMAIL_REQUESTS, message_id, world.email(message_id))
        await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["status"] == "resolved"
        )

    statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == request_id)
    assert statuses_of(statuses) == ["received", "validated", "routed", "resolved"]
    assert statuses[1].value["customer_id"] == world.customer_id
    assert statuses[2].value["queue"] == "accounts_receivable"
    # The email states no amount; the invoice is repriced against the contract all the same.
    (posting,) = await records_now(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id, settle=1.0)
    assert posting.value["kind"] == "credit_memo"
    assert posting.value["amount"] == {"amount": "200.00", "currency": "USD"}
    audit = mongo(servers)[services.audit.database]
    assert await wait_until(lambda: audit.entries.count_documents({"request_id": request_id})) >= 1


async def test_a_request_for_an_unknown_customer_is_rejected_with_a_readable_reason(
    servers: Servers, services: FiveServices
) -> None:
    world = new_world()  # never published: the customer does not exist
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    async with producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, world.dispute(case_id))
        (rejected,) = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["status"] == "rejected"
        )
    assert rejected.value["reason"] == "unknown_customer"
    assert world.customer_id in rejected.value["message"]


async def test_an_email_repeating_an_open_portal_case_is_linked_to_it_and_not_resolved_twice(
    servers: Servers, services: FiveServices
) -> None:
    world = new_world()
    await publish_reference_data(servers, services, world)
    case_id = unique("CASE")
    portal_request = crm_request_id(case_id)
    message_id = unique("msg").lower()
    email_request = email_request_id(f"{message_id}@mail.example")

    async with producer(servers.bootstrap_servers) as client:
        await publish_json(client, CRM_REQUESTS, case_id, world.dispute(case_id))
        await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == portal_request and r.value["status"] == "validated"
        )
        await publish_json(client, EMAIL_REQUESTS, message_id, world.email(message_id))
        (linked,) = await wait_for_records(
            servers,
            [REQUEST_STATUS],
            lambda r: r.key == email_request and r.value["status"] == "duplicate_of",
        )

    assert linked.value["duplicate_of"] == portal_request
    assert linked.value["customer_id"] == world.customer_id
    statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == email_request)
    assert statuses_of(statuses) == ["received", "duplicate_of"]
    audit = mongo(servers)[services.audit.database]

    async def set_aside_audited() -> dict[str, Any] | None:
        return await audit.entries.find_one({"request_id": email_request, "event_type": "RequestSetAside"})

    entry = await wait_until(set_aside_audited)
    assert '"verdict":"duplicate_of"' in entry["text"].replace(" ", "")
    assert '"check":"invoice_exists","passed":true' in entry["text"].replace(" ", "")
