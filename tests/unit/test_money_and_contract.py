"""Money is Decimal on the wire and in memory; contract messages are read as the contract says."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contract import CrmRequest, EmailRequest
from shared.money import Money

CASE = {
    "case_id": "CASE-1",
    "customer_id": "CUST-00001",
    "subject": "Overcharged",
    "submitted_at": "2026-11-22T10:15:00Z",
}


@given(
    st.decimals(
        min_value=Decimal("-999999999999.99"), max_value=Decimal("999999999999.99"), places=2, allow_nan=False
    )
)
def test_an_amount_survives_the_wire_exactly(amount: Decimal) -> None:
    money = Money(amount=str(amount), currency="EUR")
    again = Money.model_validate_json(money.model_dump_json())
    assert again.amount == amount
    assert isinstance(again.amount, Decimal)
    assert money.model_dump(mode="json")["amount"] == format(amount, "f")


@pytest.mark.parametrize(
    "amount",
    [12.5, "12,50", "NaN", "Infinity", "1e13", "1000000000000", "0.00001", True, None, "", "twelve"],
)
def test_floats_and_nonsense_are_not_money(amount: object) -> None:
    with pytest.raises(ValidationError):
        Money(amount=amount, currency="USD")


@pytest.mark.parametrize("currency", ["usd", "US", "DOLLAR", "", "€"])
def test_a_currency_is_an_iso_code(currency: str) -> None:
    with pytest.raises(ValidationError):
        Money(amount="1.00", currency=currency)


def test_money_of_different_currencies_does_not_mix() -> None:
    with pytest.raises(ValueError, match="cannot combine"):
        Money(amount="1.00", currency="USD") - Money(amount="1.00", currency="EUR")


def test_unknown_fields_in_a_crm_case_are_ignored_and_unicode_kept() -> None:
    case = CrmRequest.model_validate({**CASE, "subject": "Rechnung über 1 200,50 € – falsch", "new_field": 1})
    assert case.subject == "Rechnung über 1 200,50 € – falsch"
    assert case.channel == "crm"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"submitted_at": "2026-11-22T10:15:00"}, "submitted_at"),  # no zone
        ({"customer_id": 42}, "customer_id"),
        ({"case_id": "   "}, "case_id"),
        ({"expected_amount": {"amount": 99.5, "currency": "USD"}}, "expected_amount"),
        ({"subject": "x" * 1_001}, "subject"),
        ({"channel": "fax"}, "channel"),
    ],
)
def test_a_malformed_crm_case_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CrmRequest.model_validate({**CASE, **change})
    assert field in str(refused.value)


def test_an_email_reads_its_from_header() -> None:
    email = EmailRequest.model_validate(
        {
            "message_id": "<a@b>",
            "from": "Jane Doe <jane@acme.example>",
            "to": ["ar@us.example"],
            "subject": "Hi",
            "body_text": "…",
            "received_at": "2026-11-22T10:15:00+01:00",
        }
    )
    assert email.sender == "Jane Doe <jane@acme.example>"
