"""A service's view rebuilt from the topics: validation's reference views, on the real servers.

Validation runs with a database and consumer groups of its own and takes in several versions of
a customer, an invoice, a payment and a contract (an older version arriving after the newest), and
some requests. Then validation runs again with a new, empty database and new consumer groups, as
the README's rebuild procedure does: it reads every topic from the beginning, and its reference
views come out exactly as before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from crs.io import producer, publish_json
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from shared.topics import CONTRACTS, CUSTOMERS, INVOICES, PAYMENTS
from tests.e2e.scenario import World, new_world
from tests.integration.test_validation import captured, statuses
from tests.support import Servers, isolated_settings, mongo, running_service, unique, wait_until

pytestmark = pytest.mark.integration

REFERENCE_COLLECTIONS = {
    CUSTOMERS: "customers",
    INVOICES: "invoices",
    PAYMENTS: "payments",
    CONTRACTS: "contracts",
}
KEY_FIELDS = {
    CUSTOMERS: "customer_id",
    INVOICES: "invoice_id",
    PAYMENTS: "payment_id",
    CONTRACTS: "contract_id",
}
OLDEST, OLDER, NEWEST = "2026-09-01T08:00:00Z", "2026-11-01T08:00:00Z", "2026-11-20T09:30:00Z"


def versions(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    """Reference records in publishing order: two versions per key, then an older one late."""
    payment_id = f"PAY-{world.invoice_id.removeprefix('INV-')}"
    payment = {
        "payment_id": payment_id,
        "customer_id": world.customer_id,
        "amount": {"amount": "1200.00", "currency": "USD"},
        "received_on": "2026-11-10",
        "status": "unapplied",
        "updated_at": OLDER,
    }
    current = [
        (CUSTOMERS, world.customer_id, {**world.customer, "kyc_status": "pending", "updated_at": OLDER}),
        (CONTRACTS, world.contract_id, {**world.contract, "updated_at": OLDER}),
        (INVOICES, world.invoice_id, {**world.invoice, "updated_at": OLDER}),
        (PAYMENTS, payment_id, payment),
    ]
    newest = [
        (CUSTOMERS, world.customer_id, {**world.customer, "tier": "strategic", "updated_at": NEWEST}),
        (
            CONTRACTS,
            world.contract_id,
            {
                **world.contract,
                "prices": [{"sku": "SKU-CLD-100", "unit_price": "480.00"}],
                "updated_at": NEWEST,
            },
        ),
        (
            INVOICES,
            world.invoice_id,
            {
                **world.invoice,
                "open_amount": {"amount": "0.00", "currency": "USD"},
                "status": "paid",
                "updated_at": NEWEST,
            },
        ),
        (
            PAYMENTS,
            payment_id,
            {
                **payment,
                "status": "applied",
                "applied_to": [{"invoice_id": world.invoice_id, "amount": "1200.00"}],
                "updated_at": NEWEST,
            },
        ),
    ]
    # Versions older than what is stored, arriving last (a replay by the ERP): they must not win.
    late = [
        (CUSTOMERS, world.customer_id, {**world.customer, "status": "blocked", "updated_at": OLDEST}),
        (INVOICES, world.invoice_id, {**world.invoice, "status": "cancelled", "updated_at": OLDEST}),
    ]
    return current + newest + late


def processed_key(topic: str, key: str, value: dict[str, Any]) -> str:
    """The idempotency key validation records for a reference record (shared/reference_views.py)."""
    return f"{topic}:{key}:{datetime.fromisoformat(value['updated_at']).isoformat()}"


async def view_of(
    servers: Servers, database: str, records: list[tuple[str, str, dict[str, Any]]]
) -> dict[str, Any]:
    """Every stored document of the records' keys, by collection."""
    db = mongo(servers)[database]
    view: dict[str, Any] = {}
    for topic, collection in REFERENCE_COLLECTIONS.items():
        keys = sorted({key for record_topic, key, _ in records if record_topic == topic})
        view[collection] = [
            document async for document in db[collection].find({"_id": {"$in": keys}}).sort("_id")
        ]
    return view


async def decision(servers: Servers, database: str, request_id: str) -> dict[str, Any]:
    """Validation's recorded outcome of a request, without when it was decided."""
    found = await mongo(servers)[database].validations.find_one({"_id": request_id}, {"decided_at": 0})
    assert found is not None
    return found


async def take_in(
    servers: Servers, settings: ValidationSettings, records: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Wait until validation has handled every one of ``records`` (applied or found older)."""
    keys = [processed_key(*record) for record in records]
    processed = mongo(servers)[settings.database].processed_messages

    async def all_handled() -> bool:
        return await processed.count_documents({"_id": {"$in": keys}}) == len(keys)

    await wait_until(all_handled, timeout=90)


async def test_validation_reference_views_rebuilt_from_the_topics_equal_the_originals(
    servers: Servers,
) -> None:
    world = new_world()
    records = versions(world)
    requests = [
        captured(world.dispute(unique("CASE"))),
        captured({**world.dispute(unique("CASE")), "customer_id": unique("CUST")}),
    ]

    original = isolated_settings(ValidationSettings, hold_recheck_seconds=0.5)
    async with (
        running_service(build_validation, original, servers),
        producer(servers.bootstrap_servers) as client,
    ):
        for topic, key, value in records:
            await publish_json(client, topic, key, value)
        await take_in(servers, original, records)
        for topic, key, value in requests:
            await publish_json(client, topic, key, value)
        await statuses(servers, requests[1][1], "rejected")
        before = await view_of(servers, original.database, records)
        rejected_before = await decision(servers, original.database, requests[1][1])

    # The newest version of each key won, and the late older ones did not.
    assert [customer["tier"] for customer in before["customers"]] == ["strategic"]
    assert [customer["status"] for customer in before["customers"]] == ["active"]
    assert [invoice["status"] for invoice in before["invoices"]] == ["paid"]
    assert [payment["status"] for payment in before["payments"]] == ["applied"]
    assert [contract["prices"][0]["unit_price"] for contract in before["contracts"]] == ["480.00"]

    # The rebuild: a new, empty database and new consumer groups, which start at the beginning.
    rebuilt = isolated_settings(ValidationSettings, hold_recheck_seconds=0.5)
    assert (rebuilt.database, rebuilt.consumer_group) != (original.database, original.consumer_group)
    async with running_service(build_validation, rebuilt, servers):
        await take_in(servers, rebuilt, records)
        after = await view_of(servers, rebuilt.database, records)
        # The requests are read again too, and decided again (see the README on what that means).
        decided = mongo(servers)[rebuilt.database].validations

        async def both_decided() -> bool:
            found = await decided.count_documents({"_id": {"$in": [request[1] for request in requests]}})
            return found == len(requests)

        await wait_until(both_decided, timeout=90)
        rejected_after = await decision(servers, rebuilt.database, requests[1][1])

    assert after == before
    # A decision that depends on no other topic (the customer does not exist) comes out the same.
    assert rejected_before["reason"] == "unknown_customer"
    assert rejected_after == rejected_before
