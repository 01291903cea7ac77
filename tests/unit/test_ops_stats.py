"""`crs stats`: backlog, ageing, SLAs, resolution times and money, from audit entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crs.stats import Money, compute_stats, format_stats, gather, percentile

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class History:
    """Audit entries of made-up requests, each record at an offset from NOW."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, request_id: str, topic: str, value: dict[str, Any], *, at: timedelta) -> None:
        self.entries.append(
            {
                "request_id": request_id,
                "sequence": len(self.entries) + 1,
                "topic": topic,
                "published_at": NOW + at,
                "text": json.dumps({"request_id": request_id, **value}),
            }
        )

    def captured(
        self,
        request_id: str,
        customer: str,
        *,
        at: timedelta,
        disputed: str | None = None,
        kind: str = "billing_dispute",
    ) -> None:
        details: dict[str, Any] = {"request_type": kind, "customer_id": customer}
        if disputed:
            details["disputed_amount"] = {"amount": disputed, "currency": "USD"}
        self.add(request_id, "requests.captured.v1", {"details": details}, at=at)

    def status(self, request_id: str, status: str, *, at: timedelta, **extra: Any) -> None:
        self.add(request_id, "requests.status.v1", {"status": status, **extra}, at=at)

    def routed(self, request_id: str, queue: str, *, at: timedelta, sla: timedelta) -> None:
        due = (NOW + at + sla).isoformat().replace("+00:00", "Z")
        self.add(request_id, "requests.routed.v1", {"queue": queue, "sla_due_at": due}, at=at)

    def credit(self, request_id: str, resolution_id: str, amount: str, *, at: timedelta) -> None:
        money = {"amount": amount, "currency": "USD"}
        value = {
            "resolution_id": resolution_id,
            "kind": "credit_memo",
            "amount": money,
            "reason_code": "pricing",
        }
        self.add(request_id, "erp.resolutions.v1", value, at=at)


def hours(number: float) -> timedelta:
    return timedelta(hours=number)


def a_history() -> History:
    history = History()
    # R1: resolved within its SLA after 2 h, credited 96.60 (the resolution published twice).
    history.captured("R1", "CUST-A", at=hours(-10), disputed="100.00")
    history.status("R1", "received", at=hours(-10), customer_id="CUST-A")
    history.routed("R1", "accounts_receivable", at=hours(-9.5), sla=hours(24))
    history.credit("R1", "RES-1", "96.60", at=hours(-8))
    history.credit("R1", "RES-1", "96.60", at=hours(-8))
    history.status("R1", "resolved", at=hours(-8), queue="accounts_receivable")
    # R2: routed 2 days ago, SLA 24 h, breached (flag seen), still open.
    history.captured("R2", "CUST-A", at=hours(-50), disputed="250.50")
    history.routed("R2", "accounts_receivable", at=hours(-49), sla=hours(24))
    history.status("R2", "routed", at=hours(-49), queue="accounts_receivable")
    history.status("R2", "sla_breached", at=hours(-25), queue="accounts_receivable")
    # R3: rejected, not open.
    history.captured("R3", "CUST-B", at=hours(-5), kind="refund")
    history.status("R3", "rejected", at=hours(-5), reason="customer_blocked")
    # R4: on hold for 8 days.
    history.captured("R4", "CUST-A", at=hours(-24 * 8), kind="invoice_correction")
    history.status("R4", "on_hold", at=hours(-24 * 8), reason="awaiting_reference_data")
    # R5: closed after 30 h, past its 24 h SLA (no flag: routing's timers may not run yet).
    history.captured("R5", "CUST-C", at=hours(-40), disputed="10.00")
    history.routed("R5", "collections", at=hours(-40), sla=hours(24))
    history.status("R5", "closed", at=hours(-10))
    return history


def test_backlog_ageing_sla_and_resolution_times() -> None:
    stats = compute_stats(gather(a_history().entries), now=NOW)
    assert (stats.requests, stats.open) == (5, 2)
    assert stats.backlog_by_status == {"routed": 1, "on_hold": 1}
    assert stats.backlog_by_queue == {"accounts_receivable": 1, "(not routed)": 1}
    assert stats.ageing == {"<1d": 0, "1-3d": 1, "3-7d": 0, ">7d": 1}
    assert (stats.sla_met, stats.sla_breached, stats.sla_open_within) == (1, 2, 0)
    assert stats.flagged_open == {"escalated": 0, "sla_breached": 1, "sla_warning": 0}
    assert stats.resolved == 2
    assert (stats.median_resolution_seconds, stats.p90_resolution_seconds) == (2 * 3600, 30 * 3600)


def test_money_is_decimal_per_currency_and_a_resolution_counts_once() -> None:
    stats = compute_stats(gather(a_history().entries), now=NOW)
    assert stats.disputed_open == [Money(amount=Decimal("250.50"), currency="USD")]
    assert stats.disputed_total == [Money(amount=Decimal("360.50"), currency="USD")]
    assert stats.credited == [Money(amount=Decimal("96.60"), currency="USD")]
    assert json.loads(stats.model_dump_json())["credited"] == [{"amount": "96.60", "currency": "USD"}]


def test_customers_who_dispute_most_come_first_with_their_amounts() -> None:
    stats = compute_stats(gather(a_history().entries), now=NOW)
    first = stats.top_customers[0]
    assert (first.customer_id, first.requests, first.disputes, first.open) == ("CUST-A", 3, 2, 2)
    assert first.credited == [Money(amount=Decimal("96.60"), currency="USD")]
    assert [row.customer_id for row in stats.top_customers] == ["CUST-A", "CUST-C", "CUST-B"]
    assert stats.top_reasons == {"pricing": 1, "customer_blocked": 1, "awaiting_reference_data": 1}
    assert stats.by_type == {"billing_dispute": 3, "refund": 1, "invoice_correction": 1}


def test_an_open_request_within_its_sla_is_pending_and_one_past_it_is_breached() -> None:
    history = History()
    history.captured("R1", "CUST-A", at=hours(-2))
    history.routed("R1", "collections", at=hours(-2), sla=hours(4))
    history.captured("R2", "CUST-A", at=hours(-6))
    history.routed("R2", "collections", at=hours(-6), sla=hours(4))
    stats = compute_stats(gather(history.entries), now=NOW)
    assert (stats.sla_met, stats.sla_breached, stats.sla_open_within) == (0, 1, 1)


def test_the_table_shows_every_section() -> None:
    text = format_stats(compute_stats(gather(a_history().entries), now=NOW))
    for line in (
        "Customer requests at 2026-11-23T12:00:00Z: 5 in total, 2 open",
        "SLA: 1 met, 2 breached, 0 open within their SLA; "
        "open flagged: 0 escalated, 1 sla_breached, 0 sla_warning",
        "time to resolution (2 resolved): median 2 h 0 min, p90 30 h 0 min",
        "amount under dispute (open): 250.50 USD",
        "amount credited:             96.60 USD",
    ):
        assert line in text
    assert "  CUST-A    " in text


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0


def test_a_case_rejected_as_invalid_never_counts_as_disputed_money() -> None:
    history = a_history()
    # The CRM's message claimed an amount, but intake never captured the case: it was invalid.
    history.add(
        "R9",
        "crm.requests.v1",
        {"case_id": "C-9", "subject": 5, "disputed_amount": {"amount": "9999.00", "currency": "USD"}},
        at=hours(-1),
    )
    history.status("R9", "rejected", at=hours(-1), reason="invalid_request")
    stats = compute_stats(gather(history.entries), now=NOW)
    assert stats.disputed_total == [Money(amount=Decimal("360.50"), currency="USD")]
    assert stats.requests == 6
