"""The ERP's answers to resolution.

Routing's rules are in ``test_routing_rules.py``, resolution's strategies (repricing against the
contract replaced trusting ``expected_amount``) in ``test_resolution_strategies.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.resolution.domain import acknowledge
from shared.contract import ErpAck, RequestStatus, RequestType
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


def test_the_erp_answer_closes_or_returns_the_request() -> None:
    posted = ErpAck(resolution_id="R", request_id="REQ-1", status="posted", erp_document_id="CM-1")
    failed = ErpAck(resolution_id="R", request_id="REQ-1", status="failed", error="period closed")
    assert acknowledge(posted).status is RequestStatus.CLOSED
    assert "CM-1" in acknowledge(posted).message
    assert (acknowledge(failed).status, acknowledge(failed).reason) == (
        RequestStatus.ROUTED,
        "erp_posting_failed",
    )
