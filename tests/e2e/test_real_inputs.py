"""What ERPs, CRMs and mailboxes really send, through intake, validation, routing and resolution.

The three failures issue 9 opens with, on the real broker and database, fed through the contract
only: invoices whose amounts are decimal strings, an email naming its invoice as ``RE/2026/0042``,
and a CRM payment query told in words whose payment the ERP has with the invoice number in its
bank reference. Each of them failed before: the invoice was dead-lettered and the dispute held, the
email was rejected ``missing_invoice``, the payment query ``missing_payment_details``. And a
dispute over several invoices: one credit memo per invoice above its contract, approved on their sum,
closed once the ERP has posted them all (it went to a person before).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest

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
    CONTRACTS,
    CRM_REQUESTS,
    CUSTOMERS,
    EMAIL_REQUESTS,
    ERP_ACKS,
    INVOICES,
    PAYMENTS,
    REQUEST_STATUS,
    dead_letter_topic,
)
from tests.e2e.finance import decide, resolutions_of, statuses, usd
from tests.support import (
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

UPDATED_AT = "2026-09-01T08:00:00Z"


@dataclass
class Pipeline:
    servers: Servers
    validation: ValidationSettings
    resolution: ResolutionSettings

    async def both_know(self, collection: str, *keys: str) -> None:
        """Wait until validation's and resolution's views both hold these reference records."""
        for database in (self.validation.database, self.resolution.database):
            view = mongo(self.servers)[database][collection]

            async def stored(view: Any = view) -> bool:
                return bool(await view.count_documents({"_id": {"$in": list(keys)}}) == len(keys))

            await wait_until(stored)


@pytest.fixture(scope="module")
async def pipeline(servers: Servers) -> AsyncIterator[Pipeline]:
    validation = isolated_settings(ValidationSettings)
    resolution = isolated_settings(ResolutionSettings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(
            running_service(build_intake, isolated_settings(IntakeSettings), servers)
        )
        await stack.enter_async_context(running_service(build_validation, validation, servers))
        await stack.enter_async_context(
            running_service(build_routing, isolated_settings(RoutingSettings), servers)
        )
        await stack.enter_async_context(running_service(build_resolution, resolution, servers))
        yield Pipeline(servers, validation, resolution)


def customer(customer_id: str, email: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "name": "Rheintal Laboratories AG",
        "status": "active",
        "kyc_status": "verified",
        "credit_limit": usd("250000.00"),
        "tier": "standard",
        "contacts": [{"name": "Wei Chen", "email": email}],
        "updated_at": UPDATED_AT,
    }


def contract(contract_id: str, customer_id: str) -> dict[str, Any]:
    """The contract price of the platform service: 1,180.00 a unit, as a decimal string."""
    return {
        "contract_id": contract_id,
        "customer_id": customer_id,
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
        "currency": "USD",
        "prices": [{"sku": "SVC-PLAT", "unit_price": "1180.00"}],
        "updated_at": UPDATED_AT,
    }


def invoice(invoice_id: str, customer_id: str, contract_id: str, *, strings: bool) -> dict[str, Any]:
    """$12,500 for ten units at 1,250.00: every amount a decimal string as most ERPs send them, or
    (``strings=False``) money objects, so that each test fails on its own point on older code."""
    amount: Any = "12500.00" if strings else usd("12500.00")
    return {
        "invoice_id": invoice_id,
        "customer_id": customer_id,
        "contract_id": contract_id,
        "issued_on": "2026-09-15",
        "due_on": "2026-10-15",
        "currency": "USD",
        "lines": [
            {"sku": "SVC-PLAT", "description": "Platform service", "quantity": 10, "unit_price": "1250.00"}
        ],
        "total": amount,
        "open_amount": amount,
        "status": "open",
        "updated_at": UPDATED_AT,
    }


@dataclass(frozen=True)
class World:
    customer_id: str
    email: str
    contract_id: str
    invoice_id: str
    strings: bool

    def records(self) -> list[tuple[str, str, dict[str, Any]]]:
        the_invoice = invoice(self.invoice_id, self.customer_id, self.contract_id, strings=self.strings)
        return [
            (CUSTOMERS, self.customer_id, customer(self.customer_id, self.email)),
            (CONTRACTS, self.contract_id, contract(self.contract_id, self.customer_id)),
            (INVOICES, self.invoice_id, the_invoice),
        ]


async def new_world(pipeline: Pipeline, *, strings: bool = False) -> World:
    """A customer with a contract and an invoice numbered ``RE/2026/NNNN``, known to both views."""
    customer_id = unique("CUST")
    digits = "".join(str(int(char, 16) % 10) for char in unique("X")[-4:])
    world = World(
        customer_id=customer_id,
        email=f"wei.chen.{customer_id.lower()}@rheintal.example",
        contract_id=unique("K"),
        invoice_id=f"RE/2026/{digits}",
        strings=strings,
    )
    await publish(pipeline.servers, *world.records())
    await pipeline.both_know("customers", world.customer_id)
    await pipeline.both_know("contracts", world.contract_id)
    await pipeline.both_know("invoices", world.invoice_id)
    return world


async def test_an_invoice_with_decimal_string_amounts_is_taken_in_and_its_dispute_credited(
    pipeline: Pipeline,
) -> None:
    servers = pipeline.servers
    world = await new_world(pipeline, strings=True)  # waits until both views stored the invoice
    stored = await mongo(servers)[pipeline.validation.database].invoices.find_one({"_id": world.invoice_id})
    assert stored is not None
    assert stored["total"] == usd("12500.00")

    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    dispute = {
        "case_id": case_id,
        "customer_id": world.customer_id,
        "type": "billing_dispute",
        "subject": "Platform service above contract price",
        "description": "Our contract says 1,180.00 per unit.",
        "invoice_ids": [world.invoice_id],
        "submitted_at": "2026-10-02T09:00:00Z",
    }
    await publish(servers, (CRM_REQUESTS, case_id, dispute))
    await statuses(servers, request_id, "validated", "routed", "resolved")
    (posting,) = await resolutions_of(servers, request_id)
    assert posting["kind"] == "credit_memo"
    assert posting["invoice_id"] == world.invoice_id
    assert posting["amount"] == usd("700.00")
    assert posting["corrected_amount"] == usd("11800.00")

    # A money object in another currency than the invoice's is dead-lettered, saying so.
    wrong_id = f"{world.invoice_id}-EUR"
    wrong = {
        **invoice(wrong_id, world.customer_id, world.contract_id, strings=True),
        "total": {"amount": "1", "currency": "EUR"},
    }
    await publish(servers, (INVOICES, wrong_id, wrong))
    (dead,) = await wait_for_records(servers, [dead_letter_topic(INVOICES)], lambda r: r.key == wrong_id)
    assert "a money object in EUR, but the invoice is in USD" in dead.headers["x-error"]


async def test_an_email_naming_its_invoice_in_the_erps_own_format_is_understood(pipeline: Pipeline) -> None:
    servers = pipeline.servers
    world = await new_world(pipeline)
    written = world.invoice_id.replace("RE/", "re ").replace("/", " ")  # "re 2026 0042"
    message_id = f"<{unique('m')}@rheintal.example>"
    email = {
        "message_id": message_id,
        "from": f"Wei Chen <{world.email}>",
        "to": ["ar@billing.example"],
        "subject": f"Rechnung {world.invoice_id} - price not as agreed",
        "body_text": (
            f"Hello,\n\ninvoice {written} charges 1,250.00 per unit for the platform service; our "
            "contract says 1,180.00. We were overcharged by 700.00, please correct it.\n\nKind regards,\n"
            "Wei Chen\nRheintal Laboratories AG\nTel +41 61 555 01 23"
        ),
        "received_at": "2026-10-02T09:30:00Z",
    }
    request_id = email_request_id(message_id)
    await publish(servers, (EMAIL_REQUESTS, message_id, email))
    (validated, _, resolved) = await statuses(servers, request_id, "validated", "routed", "resolved")
    assert validated["customer_id"] == world.customer_id
    (posting,) = await resolutions_of(servers, request_id)
    assert (posting["kind"], posting["invoice_id"], posting["amount"]) == (
        "credit_memo",
        world.invoice_id,
        usd("700.00"),
    )
    assert world.invoice_id in resolved["message"]


async def test_a_crm_payment_query_told_in_words_finds_the_payment_by_its_bank_reference(
    pipeline: Pipeline,
) -> None:
    servers = pipeline.servers
    world = await new_world(pipeline)
    # The ERP's payment (a money object) with the invoice number cut up in its bank reference, and
    # another unapplied payment of the same amount and day that names nothing: the reference decides.
    ours, other = unique("PAY"), unique("PAY")
    bank_reference = world.invoice_id.replace("/", " ") + " RHEINTAL LAB"
    payments = [
        (ours, "2026-09-29", bank_reference),
        (other, "2026-09-28", "SEPA TRANSFER"),
    ]
    await publish(
        servers,
        *(
            (
                PAYMENTS,
                payment_id,
                {
                    "payment_id": payment_id,
                    "customer_id": world.customer_id,
                    "amount": usd("12500.00"),
                    "received_on": received_on,
                    "reference": reference,
                    "status": "unapplied",
                    "updated_at": UPDATED_AT,
                },
            )
            for payment_id, received_on, reference in payments
        ),
    )
    await pipeline.both_know("payments", ours, other)

    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    query = {
        "case_id": case_id,
        "customer_id": world.customer_id,
        "type": "payment_query",
        "subject": "Payment not applied",
        "description": f"We paid 12,500.00 on 28 Sep for invoice {world.invoice_id}; it still shows as open.",
        "submitted_at": "2026-10-02T09:00:00Z",
    }
    await publish(servers, (CRM_REQUESTS, case_id, query))
    (validated, awaiting) = await statuses(servers, request_id, "validated", "awaiting_approval")
    assert validated["reason"] is None
    assert ours in awaiting["message"]
    assert "a team lead" in awaiting["message"]  # 12,500.00 is above the automatic allocation limit
    await decide(servers, "approve", request_id, "lena.lead", role="team_lead")
    await statuses(servers, request_id, "approved", "resolved")
    (posting,) = await resolutions_of(servers, request_id)
    assert posting["kind"] == "payment_allocation"
    assert (posting["payment_id"], posting["invoice_id"]) == (ours, world.invoice_id)
    assert posting["amount"] == usd("12500.00")
    assert posting["corrected_amount"] == usd("0.00")


async def test_a_dispute_over_several_invoices_posts_one_credit_memo_per_invoice_approved_on_their_sum(
    pipeline: Pipeline,
) -> None:
    servers = pipeline.servers
    world = await new_world(pipeline)
    second_id, at_contract_id = f"{world.invoice_id}-2", f"{world.invoice_id}-3"
    second = invoice(second_id, world.customer_id, world.contract_id, strings=True)
    at_contract = {
        **invoice(at_contract_id, world.customer_id, world.contract_id, strings=True),
        "lines": [{"sku": "SVC-PLAT", "quantity": "10", "unit_price": "1180.00"}],
        "total": "11800.00",
        "open_amount": "11800.00",
    }
    await publish(servers, (INVOICES, second_id, second), (INVOICES, at_contract_id, at_contract))
    await pipeline.both_know("invoices", second_id, at_contract_id)
    case_id = unique("CASE")
    request_id = crm_request_id(case_id)
    dispute = {
        "case_id": case_id,
        "customer_id": world.customer_id,
        "type": "billing_dispute",
        "subject": "Three invoices above our contract price?",
        "invoice_ids": [world.invoice_id, second_id, at_contract_id],
        "submitted_at": "2026-10-02T09:00:00Z",
    }
    await publish(servers, (CRM_REQUESTS, case_id, dispute))
    (awaiting,) = await statuses(servers, request_id, "awaiting_approval")
    # 700.00 each would be automatic; 1,400.00 together needs a team lead.
    assert "together 1,400.00 USD" in awaiting["message"]
    assert (
        f"Corrected invoices {world.invoice_id} and {second_id}; {at_contract_id} stays as invoiced."
        in (awaiting["message"])
    )
    await decide(servers, "approve", request_id, "lena.lead", role="team_lead")
    await statuses(servers, request_id, "approved", "resolved")
    postings = await resolutions_of(servers, request_id)
    assert sorted((p["invoice_id"], p["amount"]["amount"]) for p in postings) == [
        (world.invoice_id, "700.00"),
        (second_id, "700.00"),
    ]
    assert len({p["resolution_id"] for p in postings}) == 2

    def ack(posting: dict[str, Any], document: str) -> tuple[str, str, dict[str, Any]]:
        value = {
            "resolution_id": posting["resolution_id"],
            "request_id": request_id,
            "status": "posted",
            "erp_document_id": document,
            "posted_at": "2026-10-03T09:00:00Z",
        }
        return ERP_ACKS, request_id, value

    await publish(servers, ack(postings[0], "CM-1"))
    processed = mongo(servers)[pipeline.resolution.database].resolutions
    await wait_until(lambda: processed.count_documents({"request_id": request_id, "status": "posted"}))
    assert not await records_now(
        servers, [REQUEST_STATUS], lambda r: r.key == request_id and r.value["status"] == "closed", settle=1.0
    )  # one of two posted: the request stays open
    await publish(servers, ack(postings[1], "CM-2"))
    (closed,) = await statuses(servers, request_id, "closed")
    assert "All 2 postings of this request have been posted" in closed["message"]
