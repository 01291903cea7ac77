"""Duplicate claims: what a validated request claims under each rule, and who holds a claim."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.validation.duplicates import Claim, claim_keys, earliest_holder, rule_name


def keys(**overrides: object) -> tuple[str, ...]:
    request: dict[str, object] = {
        "request_type": "billing_dispute",
        "invoice_ids": ["INV-1", "INV-2"],
        "payment_ids": ["PAY-1"],
        "criteria": ("type", "invoice"),
    }
    request |= overrides
    return claim_keys("CUST-1", **request)  # type: ignore[arg-type]


def test_the_default_rule_claims_customer_type_and_each_invoice() -> None:
    assert [json.loads(key) for key in keys()] == [
        ["CUST-1", {"invoice": "INV-1", "type": "billing_dispute"}],
        ["CUST-1", {"invoice": "INV-2", "type": "billing_dispute"}],
    ]


def test_a_request_sharing_one_invoice_and_the_type_meets_a_claim() -> None:
    assert set(keys()) & set(keys(invoice_ids=["INV-2", "INV-9"]))
    assert not set(keys()) & set(keys(invoice_ids=["INV-2"], request_type="refund"))


def test_nothing_is_claimed_when_the_rule_needs_what_the_request_does_not_name() -> None:
    assert keys(invoice_ids=[]) == ()
    assert keys(request_type=None) == ()
    assert keys(criteria=("payment",), payment_ids=[]) == ()


def test_a_rule_on_invoices_and_payments_claims_every_pair() -> None:
    assert len(keys(criteria=("invoice", "payment"), payment_ids=["PAY-1", "PAY-2"])) == 4


def test_a_rule_with_no_criteria_claims_the_customer_alone() -> None:
    assert keys(criteria=()) == (json.dumps(["CUST-1", {}], separators=(",", ":")),)
    assert rule_name(()) == "customer"
    assert rule_name(("invoice", "type")) == rule_name(("type", "invoice")) == "invoice+type"


def test_a_document_number_cannot_forge_another_claim() -> None:
    assert set(keys(invoice_ids=['INV-1"],["x'])).isdisjoint(keys())


def test_the_earliest_other_holder_within_the_window_is_the_original() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    claims = [
        Claim("a", "REQ-OLD", now - timedelta(days=40)),
        Claim("b", "REQ-2", now - timedelta(days=2)),
        Claim("c", "REQ-1", now - timedelta(days=3)),
        Claim("d", "REQ-SELF", now - timedelta(days=9)),
    ]
    found = earliest_holder(claims, "REQ-SELF", since=now - timedelta(days=30))
    assert found is not None
    assert found.request_id == "REQ-1"
    assert earliest_holder(claims[:1], "REQ-SELF", since=now - timedelta(days=30)) is None
