"""Every list and text of an inbound message has a limit, and a refusal names it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.contract import CrmRequest, Customer, CustomerContract, Invoice, Payment
from shared.delivery import describe_validation_error

UPDATED = "2026-11-01T08:00:00Z"


@pytest.mark.parametrize(
    ("model", "record", "field", "limit"),
    [
        (
            Invoice,
            {
                "invoice_id": "I",
                "customer_id": "C",
                "issued_on": "2026-10-01",
                "currency": "USD",
                "total": "1.00",
                "open_amount": "1.00",
                "status": "open",
                "lines": [{"sku": "S", "quantity": "1", "unit_price": "1.00"}] * 10_001,
            },
            "lines",
            10_000,
        ),
        (
            Payment,
            {
                "payment_id": "P",
                "customer_id": "C",
                "amount": {"amount": "1.00", "currency": "USD"},
                "received_on": "2026-10-01",
                "status": "applied",
                "applied_to": [{"invoice_id": "I", "amount": "0.01"}] * 10_001,
            },
            "applied_to",
            10_000,
        ),
        (
            CustomerContract,
            {
                "contract_id": "K",
                "customer_id": "C",
                "valid_from": "2026-01-01",
                "currency": "USD",
                "prices": [{"sku": "S", "unit_price": "1.00"}] * 10_001,
            },
            "prices",
            10_000,
        ),
        (
            Customer,
            {
                "customer_id": "C",
                "name": "N",
                "status": "active",
                "kyc_status": "verified",
                "contacts": [{"name": "A"}] * 1_001,
            },
            "contacts",
            1_000,
        ),
        (
            CrmRequest,
            {
                "case_id": "K",
                "customer_id": "C",
                "subject": "S",
                "submitted_at": UPDATED,
                "type": "t" * 1_001,
            },
            "type",
            1_000,
        ),
    ],
)
def test_a_list_or_text_over_its_limit_is_refused_naming_the_limit(
    model: type[CrmRequest | Customer | CustomerContract | Invoice | Payment],
    record: dict[str, object],
    field: str,
    limit: int,
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**record, "updated_at": UPDATED})
    problems = describe_validation_error(refused.value)
    assert problems.startswith(f"{field}: ")
    assert str(limit) in problems
