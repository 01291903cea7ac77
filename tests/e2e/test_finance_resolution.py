"""Finance resolution on the real broker and database: every type and approval path.

One resolution service runs for the module with a clock the tests can move (that is how an ERP
ack is made overdue without waiting an hour). Reference data goes to the ERP and master-data
topics as the ERP would send it; routed requests are published on ``requests.routed.v1`` as
routing would. The CRM-to-ERP paths through validation and routing are in
``test_request_lifecycle.py`` and ``test_finance_resolution_paths.py``; approvals are published
with ``crs approve`` / ``crs reject``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from shared.contract import RequestType
from shared.money import Money
from shared.topics import (
    APPROVALS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    PAYMENTS,
    REQUEST_STATUS,
)
from tests.e2e.finance import (
    Resolution,
    decide,
    resolutions_of,
    routed,
    send,
    statuses,
    usd,
    world_known,
)
from tests.e2e.scenario import UPDATED_AT, new_world
from tests.support import (
    MovableClock,
    Servers,
    isolated_settings,
    mongo,
    publish,
    records_now,
    running_service,
    unique,
    wait_for_records,
    wait_until,
)

pytestmark = pytest.mark.e2e

ACK_TIMEOUT_SECONDS = 3600


@pytest.fixture(scope="module")
async def resolution(servers: Servers) -> AsyncIterator[Resolution]:
    settings = isolated_settings(
        ResolutionSettings, ack_timeout_seconds=ACK_TIMEOUT_SECONDS, ack_check_seconds=0.3
    )
    clock = MovableClock()
    async with running_service(partial(build_resolution, clock=clock), settings, servers):
        yield Resolution(settings, clock, servers)


async def test_an_overcharged_invoice_is_repriced_to_the_contract_posted_once_and_closed(
    resolution: Resolution,
) -> None:
    servers = resolution.servers
    world = new_world()
    await world_known(resolution, world)
    # The customer expects 900.00; the contract says 2 x 500.00: the contract decides.
    event = routed(world, RequestType.BILLING_DISPUTE, expected_amount=Money.model_validate(usd("900.00")))
    await send(servers, event)
    (resolved,) = await statuses(servers, event.request_id, "resolved")
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == event.request_id)
    assert posting.value["kind"] == "credit_memo"
    assert posting.value["invoice_id"] == world.invoice_id
    assert posting.value["amount"] == usd("200.00")
    assert posting.value["original_amount"] == usd("1200.00")
    assert posting.value["corrected_amount"] == usd("1000.00")
    assert posting.value["approvals"] == []
    assert "SKU-CLD-100 2 x 600.00, contract 500.00: 200.00 too much" in resolved["message"]
    assert "You expected 900.00 USD" in resolved["message"]

    # Routing's event delivered again, and replayed under another event id: no second posting.
    await send(servers, event)
    await send(servers, event.model_copy(update={"event_id": unique("evt")}))
    ack = {
        "resolution_id": posting.value["resolution_id"],
        "request_id": event.request_id,
        "status": "posted",
        "erp_document_id": "CM-7",
        "posted_at": "2026-11-23T12:00:00Z",
    }
    await publish(servers, (ERP_ACKS, event.request_id, ack), (ERP_ACKS, event.request_id, ack))
    (_, closed) = await statuses(servers, event.request_id, "resolved", "closed")
    assert "posted as document CM-7" in closed["message"]
    assert len(await resolutions_of(servers, event.request_id)) == 1
    all_statuses = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == event.request_id)
    # Copies an at-least-once publisher may send share the event id: one change each.
    changes = {record.value["event_id"]: record.value["status"] for record in all_statuses}
    assert list(changes.values()) == ["resolved", "closed"]


async def test_a_delayed_payment_is_found_by_amount_date_and_bank_reference_and_allocated(
    resolution: Resolution,
) -> None:
    servers = resolution.servers
    world = new_world()

    def payment(suffix: str, received_on: str, reference: str) -> tuple[str, str, dict[str, Any]]:
        payment_id = f"PAY-{world.customer_id}-{suffix}"
        return (
            PAYMENTS,
            payment_id,
            {
                "payment_id": payment_id,
                "customer_id": world.customer_id,
                "amount": usd("1200.00"),
                "received_on": received_on,
                "reference": reference,
                "status": "unapplied",
                "applied_to": [],
                "updated_at": UPDATED_AT,
            },
        )

    matching = payment("A", "2026-10-30", f"ACME PAYMENT {world.invoice_id.replace('-', ' ')}")
    other_invoice = payment("B", "2026-10-30", "ACME PAYMENT INV-2026-999999")
    too_early = payment("C", "2026-09-01", "ACME PAYMENT")
    await world_known(resolution, world, matching, other_invoice, too_early)
    event = routed(
        world,
        RequestType.PAYMENT_QUERY,
        mentioned_dates=("2026-10-29",),
        subject=f"We paid {world.invoice_id} on 29 October",
    )
    await send(servers, event)
    (resolved,) = await statuses(servers, event.request_id, "resolved")
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == event.request_id)
    assert posting.value["kind"] == "payment_allocation"
    assert posting.value["payment_id"] == matching[1]
    assert posting.value["invoice_id"] == world.invoice_id
    assert posting.value["amount"] == usd("1200.00")
    assert posting.value["corrected_amount"] == usd("0.00")
    assert matching[1] in resolved["message"]

    # Two payments that fit equally: a person chooses, and sees both.
    twin = new_world()
    first, second = (
        (
            PAYMENTS,
            f"PAY-{twin.customer_id}-{n}",
            {
                **payment(n, "2026-10-30", "ACME")[2],
                "customer_id": twin.customer_id,
                "payment_id": f"PAY-{twin.customer_id}-{n}",
            },
        )
        for n in ("1", "2")
    )
    await world_known(resolution, twin, first, second)
    ambiguous = routed(twin, RequestType.PAYMENT_QUERY)
    await send(servers, ambiguous)
    (with_person,) = await statuses(servers, ambiguous.request_id, "routed")
    assert with_person["reason"] == "several_payments_match"
    assert first[1] in with_person["message"]
    assert second[1] in with_person["message"]
    assert await resolutions_of(servers, ambiguous.request_id) == []


async def test_a_credit_limit_is_raised_after_two_approvals_refusing_the_requester_on_the_way(
    resolution: Resolution,
) -> None:
    servers = resolution.servers
    world = new_world()
    await world_known(resolution, world)
    event = routed(
        world,
        RequestType.CREDIT_LIMIT_CHANGE,
        invoice_ids=(),
        requested_credit_limit=Money.model_validate(usd("80000.00")),
    )
    request_id = event.request_id
    await send(servers, event)
    (awaiting,) = await statuses(servers, request_id, "awaiting_approval")
    assert "from 50,000.00 USD to 80,000.00 USD" in awaiting["message"]
    assert "a team lead and a finance manager" in awaiting["message"]

    # The contact who asked for it tries to approve it: refused, not counted.
    await decide(servers, "approve", request_id, world.contact_email.upper(), role="team_lead")
    refused = await wait_for_records(
        servers,
        [REQUEST_STATUS],
        lambda r: r.key == request_id and r.value["reason"] == "segregation_of_duties",
    )
    assert "requested this and cannot approve" in refused[0].value["message"]
    await decide(servers, "approve", request_id, "lena.lead", role="team_lead")
    (recorded,) = [
        record.value
        for record in await wait_for_records(
            servers,
            [REQUEST_STATUS],
            lambda r: r.key == request_id and r.value["reason"] == "approval_recorded",
        )
    ]
    assert "still needed: a finance manager" in recorded["message"]
    assert await resolutions_of(servers, request_id) == []
    await decide(servers, "approve", request_id, "fred.finance", role="finance_manager")
    await statuses(servers, request_id, "approved", "resolved")
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    assert posting.value["kind"] == "credit_limit_update"
    assert posting.value["amount"] == usd("30000.00")
    assert posting.value["original_amount"] == usd("50000.00")
    assert posting.value["corrected_amount"] == usd("80000.00")
    assert [(one["approver"], one["role"]) for one in posting.value["approvals"]] == [
        ("lena.lead", "team_lead"),
        ("fred.finance", "finance_manager"),
    ]
    # A decision for a request no longer awaiting approval goes to the dead-letter topic.
    await decide(servers, "approve", request_id, "late.lead", role="team_lead")
    (dead,) = await wait_for_records(servers, [f"{APPROVALS}.dlq"], lambda r: r.key == request_id)
    assert dead.headers["x-error-reason"] == "not_awaiting_approval"
    assert len(await resolutions_of(servers, request_id)) == 1


async def test_approvers_are_people_of_the_directory_and_one_person_counts_once_whatever_the_spelling(
    resolution: Resolution,
) -> None:
    """The example directory (shared/users.example.toml) knows bob.smith, alias bob, who holds both
    roles; lena.lead is a team lead only; nobody is called mallory."""
    servers = resolution.servers
    world = new_world()
    await world_known(resolution, world)
    event = routed(
        world,
        RequestType.CREDIT_LIMIT_CHANGE,
        invoice_ids=(),
        requested_credit_limit=Money.model_validate(usd("80000.00")),
    )
    request_id = event.request_id
    await send(servers, event)
    await statuses(servers, request_id, "awaiting_approval")

    async def refusal(reason: str) -> dict[str, Any]:
        (found,) = await wait_for_records(
            servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["reason"] == reason
        )
        value: dict[str, Any] = found.value
        return value

    await decide(servers, "approve", request_id, "mallory", role="finance_manager")
    assert "mallory is not a user the directory knows" in (await refusal("unknown_approver"))["message"]
    await decide(servers, "approve", request_id, "lena.lead", role="finance_manager")
    assert "does not hold the role finance_manager" in (await refusal("role_not_held"))["message"]
    await decide(servers, "approve", request_id, "bob", role="team_lead")
    await refusal("approval_recorded")
    await decide(servers, "approve", request_id, "Bob.Smith", role="finance_manager")
    refused = await refusal("already_approved")
    assert "Bob.Smith (bob.smith) has already approved; one person counts once" in refused["message"]
    assert "Still needed: a finance manager" in refused["message"]
    assert await resolutions_of(servers, request_id) == []

    await decide(servers, "approve", request_id, "FRED.FINANCE", role="finance_manager")
    await statuses(servers, request_id, "approved", "resolved")
    (posting,) = await resolutions_of(servers, request_id)
    assert [(one["approver"], one["role"]) for one in posting["approvals"]] == [
        ("bob.smith", "team_lead"),
        ("fred.finance", "finance_manager"),
    ]


async def test_a_small_write_off_is_automatic(resolution: Resolution) -> None:
    servers = resolution.servers
    world = new_world()
    await world_known(resolution, world)
    # 20.00 is under the 50.00 tolerance and under 2 % of the 1,200.00 invoice (24.00).
    event = routed(world, RequestType.WRITE_OFF, disputed_amount=Money.model_validate(usd("20.00")))
    await send(servers, event)
    (resolved,) = await statuses(servers, event.request_id, "resolved")
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == event.request_id)
    assert posting.value["kind"] == "write_off"
    assert posting.value["amount"] == usd("20.00")
    assert posting.value["approvals"] == []
    assert "within it" in resolved["message"]
    own = await records_now(servers, [REQUEST_STATUS], lambda r: r.key == event.request_id)
    assert "awaiting_approval" not in [record.value["status"] for record in own]


async def test_a_claim_the_contract_does_not_support_is_resolved_without_posting(
    resolution: Resolution,
) -> None:
    servers = resolution.servers
    world = new_world()
    world.contract["prices"] = [{"sku": "SKU-CLD-100", "unit_price": "600.00"}]
    await world_known(resolution, world)
    event = routed(world, RequestType.BILLING_DISPUTE, expected_amount=Money.model_validate(usd("1000.00")))
    await send(servers, event)
    (resolved, closed) = await statuses(servers, event.request_id, "resolved", "closed")
    assert resolved["reason"] == closed["reason"] == "claim_not_supported"
    assert "SKU-CLD-100 2 x 600.00, contract 600.00: not above the contract" in resolved["message"]
    assert "stays at 1,200.00 USD" in resolved["message"]
    assert await resolutions_of(servers, event.request_id) == []


async def test_a_rejected_refund_ends_with_the_approvers_reason_and_posts_nothing(
    resolution: Resolution,
) -> None:
    servers = resolution.servers
    world = new_world()
    world.invoice["open_amount"] = usd("-150.00")  # a credit balance on the invoice
    await world_known(resolution, world)
    event = routed(world, RequestType.REFUND)
    await send(servers, event)
    (awaiting,) = await statuses(servers, event.request_id, "awaiting_approval")
    assert "Refund of 150.00 USD" in awaiting["message"]
    await decide(
        servers,
        "reject",
        event.request_id,
        "lena.lead",
        role="team_lead",
        comment="Credit is reserved for the December invoice",
    )
    (rejected,) = await statuses(servers, event.request_id, "rejected")
    assert rejected["reason"] == "approval_rejected"
    assert "Credit is reserved for the December invoice" in rejected["message"]
    assert await resolutions_of(servers, event.request_id) == []


async def test_a_failed_posting_returns_to_the_queue_and_a_missing_ack_escalates_once(
    resolution: Resolution,
) -> None:
    servers = resolution.servers
    failing, silent = new_world(), new_world()
    await world_known(resolution, failing)
    await world_known(resolution, silent)
    failed_event = routed(failing, RequestType.BILLING_DISPUTE)
    silent_event = routed(silent, RequestType.BILLING_DISPUTE)
    await send(servers, failed_event)
    await send(servers, silent_event)
    (failed_posting,) = await wait_for_records(
        servers, [ERP_RESOLUTIONS], lambda r: r.key == failed_event.request_id
    )
    await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == silent_event.request_id)
    ack = {
        "resolution_id": failed_posting.value["resolution_id"],
        "request_id": failed_event.request_id,
        "status": "failed",
        "error": "posting period 2026-10 is closed",
    }
    await publish(servers, (ERP_ACKS, failed_event.request_id, ack))
    (_, returned) = await statuses(servers, failed_event.request_id, "resolved", "routed")
    assert returned["reason"] == "erp_posting_failed"
    assert "posting period 2026-10 is closed" in returned["message"]

    resolution.clock.ahead = timedelta(seconds=ACK_TIMEOUT_SECONDS + 60)
    try:
        (escalated,) = await statuses(servers, silent_event.request_id, "escalated")
        await wait_until(
            lambda: mongo(servers)[resolution.settings.database].resolutions.count_documents(
                {"request_id": silent_event.request_id, "escalated_at": {"$ne": None}}
            )
        )
        again = await records_now(
            servers,
            [REQUEST_STATUS],
            lambda r: (
                r.key in {silent_event.request_id, failed_event.request_id}
                and r.value["status"] == "escalated"
            ),
            settle=1.5,
        )
    finally:
        resolution.clock.ahead = timedelta()
    assert escalated["reason"] == "erp_ack_overdue"
    # Once, and only the one the ERP never answered.
    assert [record.key for record in again] == [silent_event.request_id]


async def test_a_request_waits_for_reference_data_that_comes_late_and_then_resolves(
    resolution: Resolution,
) -> None:
    servers = resolution.servers
    world = new_world()
    customer, contract, invoice = world.reference_records()
    await publish(servers, customer, invoice)
    await resolution.knows("invoices", world.invoice_id)
    event = routed(world, RequestType.BILLING_DISPUTE)
    await send(servers, event)
    (held,) = await statuses(servers, event.request_id, "on_hold")
    assert held["reason"] == "awaiting_reference_data"
    assert f"Contract {world.contract_id} has not reached us yet" in held["message"]
    await publish(servers, contract)
    (_, resolved) = await statuses(servers, event.request_id, "on_hold", "resolved")
    (posting,) = await wait_for_records(servers, [ERP_RESOLUTIONS], lambda r: r.key == event.request_id)
    assert posting.value["amount"] == usd("200.00")
    assert "repriced at contract" in resolved["message"]
