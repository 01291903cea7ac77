"""Helpers of the finance resolution scenarios: reference data, routed requests, approvals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crs.commands.requests import Decision, approval_decision
from services.resolution.settings import ResolutionSettings
from shared.contract import Contact, RequestType
from shared.events import RequestDetails, RequestRouted
from shared.topics import APPROVALS, ERP_RESOLUTIONS, PAYMENTS, REQUEST_ROUTED, REQUEST_STATUS
from tests.e2e.scenario import World
from tests.support import (
    MovableClock,
    Servers,
    mongo,
    publish,
    records_now,
    unique,
    wait_for_records,
    wait_until,
)


@dataclass
class Resolution:
    settings: ResolutionSettings
    clock: MovableClock
    servers: Servers

    async def knows(self, collection: str, *keys: str) -> None:
        view = mongo(self.servers)[self.settings.database][collection]

        async def stored() -> bool:
            return await view.count_documents({"_id": {"$in": list(keys)}}) == len(keys)

        await wait_until(stored)


async def world_known(resolution: Resolution, world: World, *extra: tuple[str, str, Any]) -> None:
    """Publish the world's reference data (and ``extra``) and wait until resolution's views have it."""
    await publish(resolution.servers, *world.reference_records(), *extra)
    await resolution.knows("customers", world.customer_id)
    await resolution.knows("contracts", world.contract_id)
    await resolution.knows("invoices", world.invoice_id)
    payment_ids = [key for topic, key, _ in extra if topic == PAYMENTS]
    if payment_ids:
        await resolution.knows("payments", *payment_ids)


def routed(world: World, request_type: RequestType, **details: Any) -> RequestRouted:
    now = datetime.now(UTC)
    case_id = unique("CASE")
    values: dict[str, Any] = {
        "channel": "portal",
        "source_id": case_id,
        "customer_id": world.customer_id,
        "request_type": request_type,
        "subject": f"{request_type.value} about {world.invoice_id}",
        "invoice_ids": (world.invoice_id,),
        "contact": Contact(name="Jane Doe", email=world.contact_email),
        "submitted_at": now,
        **details,
    }
    return RequestRouted(
        event_id=unique("evt"),
        request_id=unique("REQ"),
        correlation_id=case_id,
        occurred_at=now,
        details=RequestDetails.model_validate(values),
        customer_id=world.customer_id,
        customer_tier="key",
        queue="accounts_receivable",
        priority="normal",
        sla_due_at=now + timedelta(hours=24),
        rule_version="test",
    )


async def send(servers: Servers, event: RequestRouted) -> None:
    await publish(servers, (REQUEST_ROUTED, event.request_id, event.model_dump(mode="json")))


async def statuses(servers: Servers, request_id: str, *wanted: str) -> list[dict[str, Any]]:
    """The request's status changes up to the last of ``wanted`` (those statuses only), in order."""
    records = await wait_for_records(
        servers,
        [REQUEST_STATUS],
        lambda r: r.key == request_id and r.value["status"] in wanted,
        count=len(wanted),
    )
    return [record.value for record in records]


async def resolutions_of(servers: Servers, request_id: str) -> list[dict[str, Any]]:
    """The request's distinct postings on ``erp.resolutions.v1``.

    Publishing is at least once (the outbox may send a message again after a restart), so the
    same posting can appear twice; it must then be the very same posting, with the same
    ``resolution_id`` (the ERP's idempotency key). Two different postings must never appear.
    """
    by_id: dict[str, dict[str, Any]] = {}
    for record in await records_now(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id):
        first = by_id.setdefault(record.value["resolution_id"], record.value)
        assert record.value == first, "one resolution id published with different content"
    return list(by_id.values())


async def decide(
    servers: Servers, verb: str, request_id: str, approver: str, *, role: str, comment: str = ""
) -> None:
    """An approval tool's decision on ``requests.approvals.v1``, naming any approver.

    The contract lets approval tools publish decisions; resolution checks the approver against the
    directory and segregation of duties. (`crs approve` now decides through the workspace, under
    the token's user: tests/workspace/test_cli_approve.py.)
    """
    value = approval_decision(
        Decision(verb), request_id, approver=approver, role=role, comment=comment or None
    )
    await publish(servers, (APPROVALS, request_id, value))


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}
