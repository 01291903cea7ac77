"""Resolution's credit memo and the ERP's answers (routing's rules: test_routing_rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.resolution.domain import acknowledge, resolve
from shared.contract import ErpAck, RequestStatus, RequestType
from shared.events import RequestDetails, RequestRouted

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def details(**change: Any) -> RequestDetails:
    values: dict[str, Any] = {
        "channel": "crm",
        "source_id": "CASE-1",
        "customer_id": "CUST-1",
        "request_type": RequestType.BILLING_DISPUTE,
        "subject": "Overcharged",
        "invoice_ids": ("INV-1",),
        "submitted_at": "2026-11-22T10:00:00Z",
    }
    values.update(change)
    return RequestDetails.model_validate(values)


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def routed(**change: Any) -> RequestRouted:
    return RequestRouted.model_validate(
        {
            "event_id": "e1",
            "request_id": "REQ-1",
            "correlation_id": "CASE-1",
            "occurred_at": NOW,
            "details": details(**change.pop("details", {})),
            "customer_id": "CUST-1",
            "customer_tier": "key",
            "invoices": [
                {
                    "invoice_id": "INV-1",
                    "total": money("1200.00"),
                    "open_amount": money("1200.00"),
                    "status": "open",
                }
            ],
            "queue": "accounts_receivable",
            "priority": "normal",
            "sla_due_at": NOW,
            "rule_version": "routing-test",
            **change,
        }
    )


def test_a_dispute_below_the_invoice_total_is_credited_the_difference() -> None:
    decision = resolve(routed(details={"expected_amount": money("1000.00")}), now=NOW)
    assert decision is not None
    assert decision.resolution is not None
    assert decision.status is RequestStatus.RESOLVED
    assert decision.resolution.kind.value == "credit_memo"
    assert decision.resolution.amount.amount == Decimal("200.00")
    assert decision.resolution.original_amount is not None
    assert decision.resolution.original_amount.amount == Decimal("1200.00")
    again = resolve(routed(details={"expected_amount": money("1000.00")}), now=NOW + timedelta(hours=1))
    assert again is not None
    assert again.resolution is not None
    assert again.resolution.resolution_id == decision.resolution.resolution_id


@pytest.mark.parametrize(
    "change",
    [
        {"details": {}},  # no expected amount: a person decides
        {"details": {"expected_amount": money("1200.00")}},  # nothing to credit
        {"details": {"expected_amount": money("1300.00")}},
        {"details": {"expected_amount": {"amount": "1000.00", "currency": "EUR"}}},
        {"details": {"expected_amount": money("1000.00"), "request_type": RequestType.PAYMENT_QUERY}},
        {"details": {"expected_amount": money("1000.00")}, "invoices": []},
        # An amount read out of an email's words is not a claim to post on.
        {"details": {"expected_amount": money("1000.00"), "channel": "email", "sender_email": "a@b.example"}},
    ],
)
def test_anything_else_waits_for_a_person(change: dict[str, Any]) -> None:
    assert resolve(routed(**change), now=NOW) is None


def test_the_erp_answer_closes_or_returns_the_request() -> None:
    posted = ErpAck(resolution_id="R", request_id="REQ-1", status="posted", erp_document_id="CM-1")
    failed = ErpAck(resolution_id="R", request_id="REQ-1", status="failed", error="period closed")
    assert acknowledge(posted).status is RequestStatus.CLOSED
    assert "CM-1" in acknowledge(posted).message
    assert (acknowledge(failed).status, acknowledge(failed).reason) == (
        RequestStatus.ROUTED,
        "erp_posting_failed",
    )
