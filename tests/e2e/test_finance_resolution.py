"""Finance resolution on the real broker and database: every type and approval path.

One resolution service runs for the module with a clock the tests can move (that is how an ERP
ack is made overdue without waiting an hour). Reference data goes to the ERP and master-data
topics as the ERP would send it; routed requests are published on ``requests.routed.v1`` as
routing would. The CRM-to-ERP path through validation and routing is in
``test_request_lifecycle.py``; approvals are published with ``crs approve`` / ``crs reject``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from crs.cli import _decide, build_parser
from crs.io import producer, publish_json
from services.intake.app import build_app as build_intake
from services.intake.domain import crm_request_id
from services.intake.settings import IntakeSettings
from services.resolution.app import build_app as build_resolution
from services.resolution.settings import ResolutionSettings
from services.routing.app import build_app as build_routing
from services.routing.settings import RoutingSettings
from services.validation.app import build_app as build_validation
from services.validation.settings import ValidationSettings
from shared.contract import Contact, RequestType
from shared.events import RequestDetails, RequestRouted
from shared.money import Money
from shared.topics import (
    APPROVALS,
    CRM_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    PAYMENTS,
    REQUEST_ROUTED,
    REQUEST_STATUS,
)
from tests.e2e.scenario import UPDATED_AT, World, new_world
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

ACK_TIMEOUT_SECONDS = 3600


@dataclass
class MovableClock:
    ahead: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


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


@pytest.fixture(scope="module")
async def resolution(servers: Servers) -> AsyncIterator[Resolution]:
    settings = isolated_settings(
        ResolutionSettings, ack_timeout_seconds=ACK_TIMEOUT_SECONDS, ack_check_seconds=0.3
    )
    clock = MovableClock()
    async with running_service(partial(build_resolution, clock=clock), settings, servers):
        yield Resolution(settings, clock, servers)


async def publish(servers: Servers, *records: tuple[str, str, Any]) -> None:
    async with producer(servers.bootstrap_servers) as client:
        for topic, key, value in records:
            await publish_json(client, topic, key, value)


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
    return [
        record.value
        for record in await records_now(servers, [ERP_RESOLUTIONS], lambda r: r.key == request_id)
    ]


async def decide(
    servers: Servers, verb: str, request_id: str, approver: str, *, role: str, comment: str = ""
) -> None:
    """What an approver types: ``crs approve|reject REQUEST_ID --approver ... --role ...``."""
    argv = ["--bootstrap-servers", servers.bootstrap_servers, verb, request_id, "--approver", approver]
    argv += ["--role", role] + (["--comment", comment] if comment else [])
    assert await _decide(build_parser().parse_args(argv)) == 0


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


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
    assert [record.value["status"] for record in all_statuses] == ["resolved", "closed"]


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


async def test_restarts_and_replays_never_make_a_second_posting(servers: Servers) -> None:
    settings = isolated_settings(ResolutionSettings)
    world = new_world()
    event = routed(
        world,
        RequestType.CREDIT_LIMIT_CHANGE,
        invoice_ids=(),
        requested_credit_limit=Money.model_validate(usd("52000.00")),
    )
    async with running_service(build_resolution, settings, servers):
        await world_known(Resolution(settings, MovableClock(), servers), world)
        await send(servers, event)
        (awaiting,) = await statuses(servers, event.request_id, "awaiting_approval")
    assert "a team lead" in awaiting["message"]
    # Decided while the service is down: taken up after the restart.
    await decide(servers, "approve", event.request_id, "lena.lead", role="team_lead")
    async with running_service(build_resolution, settings, servers):
        await statuses(servers, event.request_id, "approved", "resolved")
    async with running_service(build_resolution, settings, servers):
        # Everything again after another restart: routing's event under a new id, the approval.
        replayed = event.model_copy(update={"event_id": unique("evt")})
        await send(servers, replayed)
        await decide(servers, "approve", event.request_id, "lena.lead", role="team_lead")
        await wait_for_records(
            servers, [f"{APPROVALS}.dlq"], lambda r: r.key == event.request_id
        )  # a second decision once resolved is dead-lettered, not applied
        processed = mongo(servers)[settings.database].processed_messages
        await wait_until(lambda: processed.count_documents({"_id": f"event:{replayed.event_id}"}))
    postings = await resolutions_of(servers, event.request_id)
    assert len(postings) == 1
    assert postings[0]["amount"] == usd("2000.00")
    assert [one["approver"] for one in postings[0]["approvals"]] == ["lena.lead"]


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


async def test_a_crm_credit_limit_request_goes_through_validation_and_routing_to_two_approvals(
    servers: Servers,
) -> None:
    world = new_world()
    resolution = isolated_settings(ResolutionSettings)
    validation = isolated_settings(ValidationSettings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            running_service(build_intake, isolated_settings(IntakeSettings), servers)
        )
        await stack.enter_async_context(running_service(build_validation, validation, servers))
        await stack.enter_async_context(
            running_service(build_routing, isolated_settings(RoutingSettings), servers)
        )
        await stack.enter_async_context(running_service(build_resolution, resolution, servers))
        await world_known(Resolution(resolution, MovableClock(), servers), world)
        await wait_until(
            lambda: mongo(servers)[validation.database].customers.count_documents({"_id": world.customer_id})
        )
        case_id = unique("CASE")
        request_id = crm_request_id(case_id)
        case = {
            "case_id": case_id,
            "channel": "crm",
            "customer_id": world.customer_id,
            "type": "credit_limit_change",
            "subject": "Please raise our credit limit to 75,000 USD",
            "requested_credit_limit": usd("75000.00"),
            "contact": {"name": "Jane Doe", "email": world.contact_email},
            "submitted_at": "2026-11-23T09:00:00Z",
        }
        await publish(servers, (CRM_REQUESTS, case_id, case))
        (routed_status, awaiting) = await statuses(servers, request_id, "routed", "awaiting_approval")
        assert routed_status["queue"] == "credit_control"
        assert "a team lead and a finance manager" in awaiting["message"]
        await decide(servers, "approve", request_id, "fred.finance", role="finance_manager")
        await decide(servers, "approve", request_id, "lena.lead", role="team_lead")
        await statuses(servers, request_id, "approved", "resolved")
    (posting,) = await resolutions_of(servers, request_id)
    assert posting["kind"] == "credit_limit_update"
    assert posting["amount"] == usd("25000.00")
    assert posting["corrected_amount"] == usd("75000.00")
    assert {one["role"] for one in posting["approvals"]} == {"team_lead", "finance_manager"}
