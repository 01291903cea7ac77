"""Money is Decimal on the wire and in memory; contract messages are read as the contract says."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.contract import CrmRequest, CustomerContract, EmailRequest, Invoice, Payment
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


INVOICE: dict[str, object] = {
    "invoice_id": "RE/2026/0042",
    "customer_id": "CUST-1",
    "issued_on": "2026-10-01",
    "currency": "USD",
    "status": "open",
    "updated_at": "2026-10-01T08:00:00Z",
}


@pytest.mark.parametrize(
    ("total", "unit_price"),
    [
        ("12500.00", "6250.00"),
        ({"amount": "12500.00", "currency": "USD"}, {"amount": "6250.00", "currency": "USD"}),
        ("12500", {"amount": "6250", "currency": "USD"}),
        (12500, "6250.00"),
    ],
    ids=["decimal strings", "money objects", "mixed", "integer"],
)
def test_an_invoice_is_read_with_its_amounts_as_decimal_strings_or_money_objects(
    total: object, unit_price: object
) -> None:
    invoice = Invoice.model_validate(
        {
            **INVOICE,
            "lines": [{"sku": "A", "quantity": 2, "unit_price": unit_price}],
            "total": total,
            "open_amount": total,
        }
    )
    assert invoice.total == Money(amount="12500", currency="USD")
    assert invoice.open_amount == invoice.total
    assert invoice.lines[0].unit_price == Decimal("6250")
    assert invoice.lines[0].quantity == Decimal(2)
    again = Invoice.model_validate_json(invoice.model_dump_json())
    assert again == invoice


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total": {"amount": "12500.00", "currency": "EUR"}}, "total"),
        ({"open_amount": {"amount": "1.00", "currency": "EUR"}}, "open_amount"),
        (
            {"lines": [{"sku": "A", "quantity": "1", "unit_price": {"amount": "1", "currency": "EUR"}}]},
            "lines",
        ),
    ],
)
def test_an_invoice_amount_in_another_currency_is_refused_saying_so(
    change: dict[str, object], field: str
) -> None:
    values = {**INVOICE, "total": "12500.00", "open_amount": "12500.00", **change}
    with pytest.raises(ValidationError) as raised:
        Invoice.model_validate(values)
    (error,) = raised.value.errors()
    assert error["loc"] == (field,)
    assert error["type"] == "currency_mismatch"
    assert "a money object in EUR, but the invoice is in USD" in error["msg"]


def test_a_float_amount_is_still_refused_but_a_float_quantity_is_read() -> None:
    with pytest.raises(ValidationError):
        Invoice.model_validate({**INVOICE, "total": 12500.0, "open_amount": "1"})
    line = {"sku": "A", "quantity": 1.5, "unit_price": "10.00"}
    invoice = Invoice.model_validate({**INVOICE, "total": "15", "open_amount": "15", "lines": [line]})
    assert invoice.lines[0].quantity == Decimal("1.5")


def test_payment_applications_and_contract_prices_are_read_in_their_documents_currency() -> None:
    payment = Payment.model_validate(
        {
            "payment_id": "90012345-A",
            "customer_id": "CUST-1",
            "amount": {"amount": "100.00", "currency": "EUR"},
            "received_on": "2026-10-02",
            "status": "applied",
            "applied_to": [
                {"invoice_id": "4711", "amount": "60.00"},
                {"invoice_id": "4712", "amount": {"amount": "40.00", "currency": "EUR"}},
            ],
            "updated_at": "2026-10-02T08:00:00Z",
        }
    )
    assert [applied.amount for applied in payment.applied_to] == [Decimal("60.00"), Decimal("40.00")]
    as_string = Payment.model_validate(
        {**payment.model_dump(mode="json"), "amount": "100.00", "currency": "EUR", "applied_to": []}
    )
    assert as_string.amount == Money(amount="100.00", currency="EUR")
    with pytest.raises(ValidationError, match="but the payment is in EUR"):
        Payment.model_validate(
            {
                **payment.model_dump(mode="json"),
                "applied_to": [{"invoice_id": "4711", "amount": {"amount": "1", "currency": "USD"}}],
            }
        )
    contract = CustomerContract.model_validate(
        {
            "contract_id": "CTR-1",
            "customer_id": "CUST-1",
            "valid_from": "2026-01-01",
            "currency": "CHF",
            "prices": [
                {"sku": "A", "unit_price": "10.00"},
                {"sku": "B", "unit_price": {"amount": "2", "currency": "CHF"}},
            ],
            "updated_at": "2026-01-01T08:00:00Z",
        }
    )
    assert [price.unit_price for price in contract.prices] == [Decimal("10.00"), Decimal(2)]
