"""`crs trace`: a request's steps in publishing order, time per step and service, where it is now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from crs.trace import duration, format_trace, trace_request

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def entry(sequence: int, topic: str, value: dict[str, Any], *, seconds: float) -> dict[str, Any]:
    return {
        "request_id": "REQ-1",
        "sequence": sequence,
        "topic": topic,
        "published_at": T0 + timedelta(seconds=seconds),
        "text": json.dumps(value),
    }


def status(sequence: int, value: str, *, seconds: float, **extra: Any) -> dict[str, Any]:
    return entry(
        sequence, "requests.status.v1", {"request_id": "REQ-1", "status": value, **extra}, seconds=seconds
    )


def a_credited_dispute() -> list[dict[str, Any]]:
    # Audit read the capture before the CRM case (another topic): the trace orders by publishing time.
    return [
        entry(1, "requests.captured.v1", {"details": {"request_type": "billing_dispute"}}, seconds=0.5),
        entry(
            2, "crm.requests.v1", {"case_id": "C-1", "type": "billing_dispute", "subject": "Price"}, seconds=0
        ),
        status(3, "received", seconds=0.5, customer_id="CUST-1"),
        entry(4, "requests.validated.v1", {"customer_id": "CUST-1"}, seconds=2.0),
        entry(5, "requests.routed.v1", {"queue": "accounts_receivable", "priority": "high"}, seconds=2.5),
        entry(
            6,
            "erp.resolutions.v1",
            {"kind": "credit_memo", "amount": {"amount": "96.60", "currency": "USD"}, "invoice_id": "INV-1"},
            seconds=4.5,
        ),
        status(7, "resolved", seconds=4.5, queue="accounts_receivable"),
    ]


def test_steps_follow_publishing_time_with_the_time_each_took_and_the_service_that_took_it() -> None:
    trace = trace_request("REQ-1", a_credited_dispute(), now=T0 + timedelta(seconds=10))
    assert [step.step for step in trace.steps] == [
        "received",
        "captured",
        "status:received",
        "validated",
        "routed",
        "resolution:credit_memo",
        "status:resolved",
    ]
    assert [step.service for step in trace.steps][:2] == ["crm", "intake"]
    assert [step.since_previous_ms for step in trace.steps] == [None, 500, 0, 1500, 500, 2000, 0]
    assert trace.time_by_service_ms == {"intake": 500, "validation": 1500, "routing": 500, "resolution": 2000}
    assert trace.total_ms == 4500
    assert trace.customer_id == "CUST-1"


def test_where_it_is_now_follows_the_latest_status_and_keeps_flags_apart() -> None:
    entries = [
        *a_credited_dispute()[:5],
        status(6, "routed", seconds=2.5, queue="accounts_receivable"),
        status(7, "sla_breached", seconds=90_000, queue="accounts_receivable"),
    ]
    trace = trace_request("REQ-1", entries, now=T0 + timedelta(seconds=90_060))
    assert (trace.status, trace.flags) == ("routed", ["sla_breached"])
    assert trace.held_by == "the accounts_receivable queue"
    assert trace.since_last_step_ms == 60_000
    text = format_trace(trace)
    assert (
        "now: routed (flags: sla_breached); held by the accounts_receivable queue; last step 1 min 0 s ago"
        in text
    )


def test_a_record_published_twice_shows_once() -> None:
    twice = status(8, "received", seconds=0.7, customer_id="CUST-1")
    twice["text"] = a_credited_dispute()[2]["text"]
    trace = trace_request("REQ-1", [*a_credited_dispute(), twice], now=T0)
    assert [step.step for step in trace.steps].count("status:received") == 1


def test_a_held_request_is_held_by_validation_and_says_what_it_waits_for() -> None:
    entries = [
        entry(1, "requests.captured.v1", {"details": {}}, seconds=0),
        entry(
            2,
            "requests.set-aside.v1",
            {"verdict": "on_hold", "reason": "awaiting_reference_data", "waiting_for": ["invoice:INV-9"]},
            seconds=1,
        ),
        status(3, "on_hold", seconds=1, reason="awaiting_reference_data"),
    ]
    trace = trace_request("REQ-1", entries, now=T0 + timedelta(hours=3))
    assert trace.steps[1].detail == "[awaiting_reference_data] waiting for invoice:INV-9"
    assert (trace.status, trace.held_by) == ("on_hold", "validation (on hold)")
    assert "last step 2 h 59 min ago" in format_trace(trace)


def test_durations_read_as_people_read_them() -> None:
    assert [
        duration(ms) for ms in (None, 850, 12_400, 185_000, 7_800_000, 3 * 86_400_000 + 4 * 3_600_000)
    ] == [
        "-",
        "850 ms",
        "12.4 s",
        "3 min 5 s",
        "2 h 10 min",
        "3 d 4 h",
    ]


def test_a_step_never_shows_none_where_a_value_is_absent() -> None:
    from crs.trace import describe_step

    for topic, message in [
        ("erp.acks.v1", {"request_id": "REQ-1", "status": "posted"}),
        ("requests.routed.v1", {"request_id": "REQ-1"}),
        ("erp.resolutions.v1", {"request_id": "REQ-1"}),
        ("requests.approvals.v1", {"request_id": "REQ-1"}),
    ]:
        assert "None" not in " ".join(describe_step(topic, message)), topic
