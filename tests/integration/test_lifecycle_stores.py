"""The lifecycle stores on the real database server: documents written by earlier versions (before
the lifecycles, before some fields existed, events of version 1) load, move on and save as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.resolution.lifecycle import ResolutionState
from services.resolution.store import ResolutionStore, request_of
from services.validation.lifecycle import ValidationState
from services.validation.store import ValidationStore
from shared.contract import ErpAck, RequestStatus
from shared.mongo import Document, build_mongo_client
from tests.support import Servers, unique
from tests.unit.test_event_versions import as_version_1
from tests.unit.test_validation_lifecycle import captured

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def database(servers: Servers) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = build_mongo_client(servers.mongodb_uri)
    try:
        yield client[unique("lifecycle").lower().replace("-", "_")]
    finally:
        await client.close()


async def in_transaction(database: AsyncDatabase[Document], work: Any) -> Any:
    async with database.client.start_session() as session, await session.start_transaction():
        return await work(session)


RESOLUTION: dict[str, Any] = {
    "resolution_id": "RES-1",
    "request_id": "REQ-1",
    "customer_id": "CUST-1",
    "kind": "credit_memo",
    "invoice_id": "INV-1",
    "payment_id": None,
    "amount": {"amount": "200.00", "currency": "USD"},
    "original_amount": None,
    "corrected_amount": None,
    "reason_code": "price_above_contract",
    "approvals": [],
    "effective_on": "2026-11-23",
    "created_at": "2026-11-23T12:00:00Z",
}


def first_version_request() -> dict[str, Any]:
    """A request as resolution stored it before it kept the routed event, the wait for data, the
    requesters, a second posting or refusals (and before the lifecycle wrote every field)."""
    return {
        "_id": "REQ-1",
        "channel": "portal",
        "source_id": "CASE-1",
        "customer_id": "CUST-1",
        "request_type": "billing_dispute",
        "queue": "accounts_receivable",
        "priority": "high",
        "sla_due_at": NOW + timedelta(days=1),
        "state": "resolved",
        "reason": None,
        "resolution_id": "RES-1",
        "routed_at": NOW,
        "pending": RESOLUTION,
        "explanation": "Repriced at contract.",
        "required_roles": [],
        "approvals": [],
        "policy_version": "approvals-2026.11",
    }


async def test_a_request_resolution_stored_by_an_earlier_version_loads_and_closes_on_the_erps_answer(
    database: AsyncDatabase[Document],
) -> None:
    await database.requests.insert_one(first_version_request())
    issued = {
        **RESOLUTION,
        "_id": "RES-1",
        "status": "issued",
        "issued_at": NOW,
        "ack_due_at": NOW,
        "escalated_at": None,
    }
    await database.resolutions.insert_one(issued)
    store = ResolutionStore(database)

    async def acknowledge(session: Any) -> list[Any]:
        request = await store.load("REQ-1", session=session)
        assert request is not None
        assert (request.state, request.resolution_ids, request.routed) == (
            ResolutionState.RESOLVED,
            ("RES-1",),
            None,
        )
        assert request.about.requesters == ()
        posted = ErpAck(resolution_id="RES-1", request_id="REQ-1", status="posted", erp_document_id="ERP-7")
        effects = request.acknowledge(posted, now=NOW + timedelta(minutes=1))
        await store.save(request, session=session)
        return effects

    (closed,) = await in_transaction(database, acknowledge)
    assert (closed.status, closed.channel, closed.queue) == (
        RequestStatus.CLOSED,
        "portal",
        "accounts_receivable",
    )
    request = await database.requests.find_one({"_id": "REQ-1"})
    assert request is not None
    assert (request["state"], request["pending"], request["explanation"]) == (
        "closed",
        RESOLUTION,
        "Repriced at contract.",
    )
    resolution = await database.resolutions.find_one({"_id": "RES-1"})
    assert resolution is not None
    assert (resolution["status"], resolution["erp_document_id"]) == ("posted", "ERP-7")


async def test_a_posting_is_never_written_over_once_it_exists(database: AsyncDatabase[Document]) -> None:
    posted = {**RESOLUTION, "_id": "RES-1", "status": "posted", "issued_at": NOW, "ack_due_at": NOW}
    await database.resolutions.insert_one(posted)
    # A request that holds RES-1 as just issued, and a store that never loaded it: to the store the
    # posting is new, as it would be to a second, mistaken issue.
    issued = {**posted, "status": "issued", "erp_document_id": None}
    request = request_of({**first_version_request(), "resolution_ids": ["RES-1"]}, [issued])
    await in_transaction(database, lambda session: ResolutionStore(database).save(request, session=session))
    found = await database.resolutions.find_one({"_id": "RES-1"})
    assert found is not None
    assert found["status"] == "posted"


async def test_a_validation_stored_before_the_lifecycle_loads_open_and_closing_it_frees_its_claims(
    database: AsyncDatabase[Document],
) -> None:
    checks = [{"check": "customer_exists", "passed": True, "detail": "CUST-1"}]
    await database.validations.insert_one(
        {
            "_id": "REQ-1",
            "outcome": "validated",
            "reason": None,
            "customer_id": "CUST-1",
            "waiting_for": [],
            "checks": checks,
            "decided_at": NOW,
        }
    )
    await database.open_requests.insert_one(
        {
            "_id": "REQ-1",
            "customer_id": "CUST-1",
            "request_type": "billing_dispute",
            "invoice_ids": ["INV-1"],
            "payment_ids": [],
            "opened_at": NOW,
            "open": True,
            "duplicates": [],
            "claims": ["k1"],
            "claim_rule": "invoice+type",
        }
    )
    await database.duplicate_claims.insert_one({"_id": "k1", "request_id": "REQ-1", "opened_at": NOW})
    store = ValidationStore(database)

    async def close(session: Any) -> None:
        request = await store.load("REQ-1", session=session)
        assert request is not None
        assert (request.state, request.open, request.claims) == (ValidationState.VALIDATED, True, ("k1",))
        assert request.claim_criteria == ("type", "invoice")
        request.finish(RequestStatus.CLOSED, NOW + timedelta(hours=1))
        await store.save(request, session=session)

    await in_transaction(database, close)
    assert await database.duplicate_claims.count_documents({}) == 0
    opened = await database.open_requests.find_one({"_id": "REQ-1"})
    decided = await database.validations.find_one({"_id": "REQ-1"}, {"_id": 0})
    assert opened is not None
    assert decided is not None
    assert opened["open"] is False
    assert decided == {  # closing downstream is kept in open_requests: the decision is as it was
        "outcome": "validated", "reason": None, "customer_id": "CUST-1", "waiting_for": [], "checks": checks,
        "decided_at": NOW,
    }  # fmt: skip
    again = await store.load("REQ-1", session=None)
    assert again is not None
    assert (again.state, again.open) == (ValidationState.CLOSED, False)


async def test_a_hold_stored_with_a_version_1_event_loads_as_version_2(
    database: AsyncDatabase[Document],
) -> None:
    event = as_version_1(captured())
    await database.validations.insert_one(
        {
            "_id": "REQ-1",
            "outcome": "on_hold",
            "reason": "awaiting_reference_data",
            "customer_id": "CUST-1",
            "waiting_for": ["invoice:INV-1"],
            "checks": [],
            "decided_at": NOW,
        }
    )
    await database.holds.insert_one(
        {
            "_id": "REQ-1",
            "customer_id": "CUST-1",
            "reason": "awaiting_reference_data",
            "waiting_for": ["invoice:INV-1"],
            "event": event,
            "held_at": NOW,
            "reject_after": NOW + timedelta(days=1),
        }
    )
    store = ValidationStore(database)
    request = await store.load("REQ-1", session=None)
    assert request is not None
    assert request.held
    assert request.captured is not None
    assert request.captured.schema_version == 2
    assert request.captured.details.invoice_candidates == ()
    assert [hold.request_id for hold in await store.all_holds()] == ["REQ-1"]
