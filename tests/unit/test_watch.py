"""`crs watch` lines: every kind of record reads as request, what happened, who, detail."""

from __future__ import annotations

import json
from typing import Any

from crs.io import TopicRecord
from crs.watch import WatchFilter, check_statuses, check_topics, describe, format_line
from shared.identity import crm_request_id, email_request_id


def record(topic: str, value: Any, key: str = "k", headers: dict[str, str] | None = None) -> TopicRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return TopicRecord(topic, 0, 7, key, value, raw, headers or {}, 1_795_000_000_000)


def test_a_crm_case_and_an_email_show_under_our_request_id() -> None:
    case = record("crm.requests.v1", {"case_id": "C-1", "customer_id": "CUST-1", "subject": "Hi"})
    email = record("email.requests.v1", {"message_id": "<m@x>", "from": "a@x", "subject": "Hello"})
    assert describe(case)[:3] == (crm_request_id("C-1"), "crm:request", "CUST-1")
    assert describe(email)[:3] == (email_request_id("m@x"), "email", "a@x")


def test_a_status_change_shows_status_reason_and_queue() -> None:
    status = record(
        "requests.status.v1",
        {
            "request_id": "REQ-1",
            "status": "rejected",
            "reason": "unknown_invoice",
            "customer_id": "CUST-1",
            "message": "We cannot find invoice X.",
        },
    )
    request_id, what, who, detail = describe(status)
    assert (request_id, what, who) == ("REQ-1", "rejected", "CUST-1")
    assert detail == "We cannot find invoice X. [unknown_invoice]"
    assert "\x1b[31m" in format_line(status, colour=True)
    assert "\x1b[" not in format_line(status, colour=False)


def test_a_dead_letter_shows_the_service_and_the_reason() -> None:
    dead = record(
        "crm.requests.v1.dlq",
        b"{nope",
        key="C-9",
        headers={
            "x-error-reason": "malformed_json",
            "x-error": "Expecting value",
            "x-failed-service": "intake",
        },
    )
    # Dead letters of the inbound topics are keyed by the case id: shown under our request id,
    # so `crs watch --request REQ-… --dlq` finds them.
    assert describe(dead) == (crm_request_id("C-9"), "dlq", "intake", "malformed_json: Expecting value")
    assert WatchFilter(request=crm_request_id("C-9")).admits(dead)
    assert WatchFilter(request="C-9").admits(dead)


def test_an_erp_resolution_shows_the_money() -> None:
    resolution = record(
        "erp.resolutions.v1",
        {
            "request_id": "REQ-1",
            "kind": "credit_memo",
            "customer_id": "CUST-1",
            "invoice_id": "INV-1",
            "amount": {"amount": "200.00", "currency": "USD"},
            "resolution_id": "RES-1",
        },
    )
    assert describe(resolution) == ("REQ-1", "erp:credit_memo", "CUST-1", "200.00 USD on INV-1 (RES-1)")


def test_a_hold_shows_what_it_waits_for_and_a_duplicate_what_it_repeats() -> None:
    held = record(
        "requests.set-aside.v1",
        {
            "event_type": "RequestSetAside",
            "request_id": "REQ-2",
            "customer_id": "CUST-1",
            "verdict": "on_hold",
            "reason": "awaiting_reference_data",
            "waiting_for": ["invoice:INV-1", "kyc:CUST-1"],
            "details": {"request_type": "refund"},
        },
    )
    assert describe(held) == (
        "REQ-2",
        "RequestSetAside",
        "CUST-1",
        "refund on_hold[awaiting_reference_data] waiting_for=invoice:INV-1,kyc:CUST-1",
    )
    duplicate = record(
        "requests.status.v1",
        {"request_id": "REQ-3", "status": "duplicate_of", "reason": "duplicate", "duplicate_of": "REQ-1"},
    )
    assert describe(duplicate)[3].endswith("[duplicate] duplicate_of=REQ-1")


def test_an_email_address_follows_the_senders_request_through_its_statuses() -> None:
    email = record(
        "email.requests.v1",
        {"message_id": "<m-7@x>", "from": "Wei Chen <Wei.Chen@Acme.example>", "subject": "Hi"},
    )
    request_id = email_request_id("m-7@x")
    later = record(
        "requests.status.v1", {"request_id": request_id, "status": "validated", "customer_id": "CUST-9"}
    )
    other = record(
        "requests.status.v1", {"request_id": "REQ-OTHER", "status": "validated", "customer_id": "CUST-8"}
    )
    wanted = WatchFilter(customer="wei.chen@acme.example")
    assert [wanted.admits(one) for one in (email, later, other)] == [True, True, False]
    assert WatchFilter(request="<m-7@x>").admits(later)  # the request the Message-ID opened
    assert WatchFilter(request="<m-7@x>").admits(email)


def test_filters_that_can_never_match_are_refused() -> None:
    assert check_statuses(frozenset({"rejected", "erp:posted"}), dlq=False) is None
    assert "add --dlq" in (check_statuses(frozenset({"dlq"}), dlq=False) or "")
    assert check_statuses(frozenset({"dlq"}), dlq=True) is None
    assert "--status rejectd: never shown" in (check_statuses(frozenset({"rejectd"}), dlq=False) or "")
    assert check_topics(["requests.status.v1", "erp.acks.v1.dlq"]) is None
    assert "not a request or dead-letter topic" in (check_topics(["requests.statuses.v1"]) or "")


def test_absent_values_show_as_a_dash_never_none() -> None:
    ack = record("erp.acks.v1", {"request_id": "REQ-1", "status": "posted"})
    resolution = record("erp.resolutions.v1", {"request_id": "REQ-1", "kind": "credit_memo"})
    approval = record(
        "requests.approvals.v1", {"request_id": "REQ-1", "decision": "approve", "approver": "lena"}
    )
    for one in (ack, resolution, approval):
        assert "None" not in format_line(one, colour=False)
    assert describe(approval)[1:3] == ("approval:approve", "lena")
