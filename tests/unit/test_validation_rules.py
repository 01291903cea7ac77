"""Validation's rules, table by table: every reason code and the checks recorded."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.validation.domain import identify_customer, validate_request
from shared.contract import Customer, Invoice, RequestType
from shared.events import RequestDetails

TODAY = date(2026, 11, 23)


def customer(**change: Any) -> Customer:
    return Customer.model_validate(
        {
            "customer_id": "CUST-1",
            "name": "Acme",
            "status": "active",
            "kyc_status": "verified",
            "kyc_expires_on": "2027-01-01",
            "tier": "key",
            "contacts": [{"name": "Jane", "email": "jane@acme.example"}],
            "updated_at": "2026-11-01T00:00:00Z",
            **change,
        }
    )


def invoice(**change: Any) -> Invoice:
    return Invoice.model_validate(
        {
            "invoice_id": "INV-1",
            "customer_id": "CUST-1",
            "issued_on": "2026-10-01",
            "currency": "USD",
            "total": {"amount": "1200.00", "currency": "USD"},
            "open_amount": {"amount": "1200.00", "currency": "USD"},
            "status": "open",
            "updated_at": "2026-11-01T00:00:00Z",
            **change,
        }
    )


def details(**change: Any) -> RequestDetails:
    values: dict[str, Any] = {
        "channel": "crm",
        "source_id": "CASE-1",
        "customer_id": "CUST-1",
        "request_type": RequestType.BILLING_DISPUTE,
        "subject": "Overcharged",
        "invoice_ids": ("INV-1",),
        "disputed_amount": {"amount": "200.00", "currency": "USD"},
        "submitted_at": "2026-11-22T10:00:00Z",
    }
    values.update(change)
    return RequestDetails.model_validate(values)


@pytest.mark.parametrize(
    ("request_details", "the_customer", "invoices", "outcome", "reason"),
    [
        (details(), customer(), {"INV-1": invoice()}, "validated", None),
        (details(), customer(status="blocked"), {"INV-1": invoice()}, "rejected", "customer_blocked"),
        (details(), customer(status="closed"), {"INV-1": invoice()}, "rejected", "customer_closed"),
        (details(invoice_ids=()), customer(), {}, "rejected", "missing_invoice"),
        (details(), customer(), {"INV-1": None}, "rejected", "unknown_invoice"),
        (details(), customer(), {"INV-1": invoice(customer_id="CUST-2")}, "rejected", "invoice_not_owned"),
        (
            details(disputed_amount={"amount": "200.00", "currency": "EUR"}),
            customer(),
            {"INV-1": invoice()},
            "rejected",
            "currency_mismatch",
        ),
        (
            details(disputed_amount={"amount": "1200.01", "currency": "USD"}),
            customer(),
            {"INV-1": invoice()},
            "rejected",
            "amount_out_of_range",
        ),
        (
            details(disputed_amount={"amount": "0.00", "currency": "USD"}),
            customer(),
            {"INV-1": invoice()},
            "rejected",
            "amount_out_of_range",
        ),
        (
            details(disputed_amount=None, expected_amount={"amount": "-1.00", "currency": "USD"}),
            customer(),
            {"INV-1": invoice()},
            "rejected",
            "amount_out_of_range",
        ),
        (
            details(request_type=RequestType.REFUND),
            customer(kyc_status="pending"),
            {"INV-1": invoice()},
            "on_hold",
            "kyc_pending",
        ),
        (
            details(request_type=RequestType.REFUND),
            customer(kyc_status="failed"),
            {"INV-1": invoice()},
            "rejected",
            "kyc_failed",
        ),
        (
            details(request_type=RequestType.WRITE_OFF),
            customer(kyc_status="expired"),
            {"INV-1": invoice()},
            "rejected",
            "kyc_expired",
        ),
        (
            details(request_type=RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=()),
            customer(kyc_expires_on="2026-01-01"),
            {},
            "rejected",
            "kyc_expired",
        ),
        (
            details(request_type=RequestType.PAYMENT_QUERY),
            customer(kyc_status="pending"),
            {"INV-1": invoice()},
            "validated",
            None,
        ),
    ],
)
def test_validation_rules(
    request_details: RequestDetails,
    the_customer: Customer,
    invoices: dict[str, Invoice | None],
    outcome: str,
    reason: str | None,
) -> None:
    verdict = validate_request(request_details, the_customer, invoices, today=TODAY)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    assert verdict.checks[0].check == "customer_exists"
    if outcome == "validated":
        assert all(check.passed for check in verdict.checks)
        assert [snapshot.invoice_id for snapshot in verdict.invoices] == list(request_details.invoice_ids)
    else:
        assert not verdict.checks[-1].passed
        assert verdict.message.endswith(".")


def test_an_email_sender_is_matched_or_explained() -> None:
    email = details(customer_id=None, sender_email="jane@acme.example")
    assert identify_customer(email, [customer()])[0] == customer()
    assert identify_customer(email, [])[1] == "unknown_sender"
    assert identify_customer(email, [customer(), customer(customer_id="CUST-2")])[1] == "ambiguous_sender"
    assert identify_customer(details(customer_id="CUST-9"), [])[1] == "unknown_customer"
