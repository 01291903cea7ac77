"""Amounts follow their currency's minor units (ISO 4217): no cents on yen, three decimals on dinars."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.resolution.policy import load_policy
from services.resolution.strategies import Facts, Posting, propose
from shared.contract import Customer, CustomerContract, Invoice
from shared.events import RequestRouted
from shared.money import Money, format_amount, minor_units, round_to_minor_units

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("currency", "units"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("XXX", 2), ("ZZZ", 2)],
)
def test_minor_units_come_from_iso_4217(currency: str, units: int) -> None:
    assert minor_units(currency) == units


def test_a_yen_amount_carries_no_cents_on_the_wire_or_to_people() -> None:
    yen = Money(amount="100000.00", currency="JPY")
    assert yen.model_dump(mode="json") == {"amount": "100000", "currency": "JPY"}
    assert str(yen) == "100,000 JPY"
    assert str(Money(amount="96.6", currency="USD")) == "96.60 USD"
    assert str(Money(amount="1.5", currency="BHD")) == "1.500 BHD"
    assert format_amount(Decimal("1876000"), "JPY") == "1,876,000"


def test_zeros_beyond_the_minor_units_go_but_a_real_fraction_stays() -> None:
    assert Money(amount="12500.000", currency="USD").model_dump(mode="json")["amount"] == "12500.00"
    assert Money(amount="12500", currency="USD").model_dump(mode="json")["amount"] == "12500"
    assert Money(amount="0.5", currency="JPY").amount == Decimal("0.5")
    assert round_to_minor_units(Decimal("12.5"), "JPY") == Decimal("13")
    assert round_to_minor_units(Decimal("12.345"), "USD") == Decimal("12.35")


def test_a_yen_credit_memo_is_posted_in_whole_yen() -> None:
    invoice = Invoice.model_validate(
        {
            "invoice_id": "JP26-1",
            "customer_id": "CUST-1",
            "contract_id": "CTR-1",
            "issued_on": "2026-10-01",
            "currency": "JPY",
            "lines": [{"sku": "BOX", "quantity": "20", "unit_price": "93800"}],
            "total": "1876000",
            "open_amount": "1876000",
            "status": "open",
            "updated_at": NOW,
        }
    )
    contract = CustomerContract.model_validate(
        {
            "contract_id": "CTR-1",
            "customer_id": "CUST-1",
            "valid_from": "2026-01-01",
            "valid_to": "2026-12-31",
            "currency": "JPY",
            "prices": [{"sku": "BOX", "unit_price": "88800"}],
            "updated_at": NOW,
        }
    )
    customer = Customer.model_validate(
        {
            "customer_id": "CUST-1",
            "name": "Kyoto Trading",
            "status": "active",
            "kyc_status": "verified",
            "credit_limit": {"amount": "30000000", "currency": "JPY"},
            "tier": "key",
            "contacts": [],
            "updated_at": NOW,
        }
    )
    routed = RequestRouted.model_validate(
        {
            "event_id": "e1",
            "request_id": "REQ-1",
            "correlation_id": "CASE-1",
            "occurred_at": NOW,
            "details": {
                "channel": "crm",
                "source_id": "CASE-1",
                "customer_id": "CUST-1",
                "request_type": "billing_dispute",
                "subject": "Price above contract",
                "invoice_ids": ["JP26-1"],
                "submitted_at": NOW,
            },
            "customer_id": "CUST-1",
            "customer_tier": "key",
            "queue": "accounts_receivable",
            "priority": "normal",
            "sla_due_at": NOW,
            "rule_version": "r1",
        }
    )
    facts = Facts(customer=customer, invoices={"JP26-1": invoice}, contracts={"CTR-1": contract}, payments={})
    posting = propose(routed, facts, write_off_tolerance=load_policy().write_off_tolerance)
    assert isinstance(posting, Posting)
    assert posting.amount.model_dump(mode="json") == {"amount": "100000", "currency": "JPY"}
    assert posting.corrected_amount is not None
    assert posting.corrected_amount.model_dump(mode="json")["amount"] == "1776000"
