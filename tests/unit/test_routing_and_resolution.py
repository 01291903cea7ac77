"""Routing's queues, priorities and SLAs; the ERP's answers to resolution.

Resolution's strategies (repricing against the contract replaced trusting ``expected_amount``)
are in ``test_resolution_strategies.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.resolution.domain import acknowledge
from services.routing.domain import RULE_VERSION, decide_route
from shared.contract import ErpAck, Priority, RequestStatus, RequestType
from shared.events import RequestDetails

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


@pytest.mark.parametrize(
    ("request_type", "queue"),
    [
        (RequestType.BILLING_DISPUTE, "accounts_receivable"),
        (RequestType.PAYMENT_QUERY, "cash_application"),
        (RequestType.CREDIT_LIMIT_CHANGE, "credit_control"),
        (RequestType.REFUND, "collections"),
        (RequestType.ACCOUNT_UPDATE, "master_data"),
        (None, "customer_service"),
    ],
)
def test_each_type_goes_to_its_team(request_type: RequestType | None, queue: str) -> None:
    assert decide_route(details(request_type=request_type), customer_tier="standard", now=NOW).queue == queue


@pytest.mark.parametrize(
    ("change", "tier", "priority", "hours"),
    [
        ({}, "standard", Priority.LOW, 120),
        ({"disputed_amount": money("500.00")}, "standard", Priority.NORMAL, 72),
        ({}, "key", Priority.NORMAL, 72),
        ({"disputed_amount": money("25000.00")}, "standard", Priority.HIGH, 24),
        ({}, "strategic", Priority.HIGH, 24),
        ({"disputed_amount": money("250000.00")}, "standard", Priority.URGENT, 4),
        ({"priority_hint": Priority.URGENT}, "standard", Priority.URGENT, 4),
        (
            {"priority_hint": Priority.LOW, "disputed_amount": money("25000.00")},
            "standard",
            Priority.HIGH,
            24,
        ),
    ],
)
def test_priority_and_sla_follow_amount_tier_and_hint(
    change: dict[str, Any], tier: str, priority: Priority, hours: int
) -> None:
    decision = decide_route(details(**change), customer_tier=tier, now=NOW)
    assert decision.priority is priority
    assert decision.sla_due_at == NOW + timedelta(hours=hours)
    assert decision.rule_version == RULE_VERSION


def test_the_erp_answer_closes_or_returns_the_request() -> None:
    posted = ErpAck(resolution_id="R", request_id="REQ-1", status="posted", erp_document_id="CM-1")
    failed = ErpAck(resolution_id="R", request_id="REQ-1", status="failed", error="period closed")
    assert acknowledge(posted).status is RequestStatus.CLOSED
    assert "CM-1" in acknowledge(posted).message
    assert (acknowledge(failed).status, acknowledge(failed).reason) == (
        RequestStatus.ROUTED,
        "erp_posting_failed",
    )
