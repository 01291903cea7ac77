"""The Customer Request Record is assembled from audit entries alone, each part once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from crs.audit import format_record
from services.audit.chain import Head, seal
from services.audit.record import assemble_record
from shared.topics import (
    CRM_REQUESTS,
    ERP_ACKS,
    ERP_RESOLUTIONS,
    REQUEST_CAPTURED,
    REQUEST_ROUTED,
    REQUEST_SET_ASIDE,
    REQUEST_STATUS,
    REQUEST_UPDATED,
    REQUEST_VALIDATED,
)

REQUEST = "REQ-0001"
START = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)


def entries(*records: tuple[str, Any]) -> list[dict[str, Any]]:
    """Audit entries of REQUEST for (topic, payload) records, as the store seals them."""
    contents = [
        {
            "request_id": REQUEST,
            "event_type": "x",
            "status": None,
            "customer_id": None,
            "topic": topic,
            "partition": 0,
            "offset": offset,
            "key": REQUEST,
            "published_at": None,
            "recorded_at": START + timedelta(seconds=offset),
            "text": payload if isinstance(payload, str) else json.dumps(payload),
        }
        for offset, (topic, payload) in enumerate(records)
    ]
    return seal(contents, heads={}, global_head=Head()).entries


CASE = {
    "case_id": "CASE-1",
    "customer_id": "CUST-1",
    "type": "billing_dispute",
    "subject": "Invoice INV-1 is above our contract price",
    "invoice_ids": ["INV-1"],
    "expected_amount": {"amount": "1000.00", "currency": "USD"},
    "submitted_at": "2026-11-22T10:15:00Z",
}
VALIDATED = {
    "event_id": "evt-v",
    "request_id": REQUEST,
    "occurred_at": "2026-11-22T10:15:02Z",
    "customer_id": "CUST-1",
    "customer_tier": "key",
    "checks": [
        {"check": "customer_exists", "passed": True, "detail": "CUST-1"},
        {"check": "invoice_owned", "passed": True, "detail": "INV-1"},
    ],
}
ROUTED = {
    "event_id": "evt-r",
    "request_id": REQUEST,
    "occurred_at": "2026-11-22T10:15:03Z",
    "queue": "accounts_receivable",
    "priority": "high",
    "sla_due_at": "2026-11-23T10:15:03Z",
    "rule_version": "routing-2026.11",
}
RESOLUTION = {
    "resolution_id": "RES-1",
    "request_id": REQUEST,
    "kind": "credit_memo",
    "invoice_id": "INV-1",
    "amount": {"amount": "200.00", "currency": "USD"},
    "original_amount": {"amount": "1200.00", "currency": "USD"},
    "corrected_amount": {"amount": "1000.00", "currency": "USD"},
    "reason_code": "pricing_dispute",
    "created_at": "2026-11-22T10:15:04Z",
}
ACK = {"resolution_id": "RES-1", "request_id": REQUEST, "status": "posted", "erp_document_id": "CM-9"}


def status(name: str, event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "request_id": REQUEST, "status": name, "at": "2026-11-22T10:15:05Z"}


def a_whole_life() -> list[dict[str, Any]]:
    return entries(
        (CRM_REQUESTS, CASE),
        (REQUEST_CAPTURED, {"event_id": "evt-c", "details": {"request_type": "billing_dispute"}}),
        (REQUEST_STATUS, status("received", "s1")),
        (REQUEST_VALIDATED, VALIDATED),
        (REQUEST_VALIDATED, VALIDATED),  # published twice (the outbox is at least once)
        (REQUEST_ROUTED, ROUTED),
        (REQUEST_STATUS, status("routed", "s2")),
        (ERP_RESOLUTIONS, RESOLUTION),
        (ERP_ACKS, ACK),
        (REQUEST_STATUS, "\xff not json"),
    )


def test_the_record_holds_every_step_once_with_where_audit_recorded_it() -> None:
    record = assemble_record(REQUEST, a_whole_life())
    assert (record.customer_id, record.entries, record.unreadable) == ("CUST-1", 10, 1)
    assert record.received[0].message == CASE
    (validation,) = record.validations
    assert validation.verdict == "validated"
    assert [check["check"] for check in validation.checks] == ["customer_exists", "invoice_owned"]
    assert validation.sequence == 4
    assert record.routing is not None
    assert (record.routing.queue, record.routing.priority, record.routing.rule_version) == (
        "accounts_receivable",
        "high",
        "routing-2026.11",
    )
    assert [change.status for change in record.status_changes] == ["received", "routed"]
    assert [part.message["resolution_id"] for part in record.resolutions] == ["RES-1"]
    assert [part.message["status"] for part in record.erp_acks] == ["posted"]
    assert record.chain_intact


def test_the_printed_record_reads_as_the_requests_story() -> None:
    text = format_record(assemble_record(REQUEST, a_whole_life()))
    assert text.splitlines()[:3] == [
        "Customer Request Record REQ-0001",
        "customer: CUST-1",
        "audit: 10 entries, 1 not readable as JSON; chain intact",
    ]
    assert "received: #1 2026-11-22T10:15:00Z (audited 2026-11-22T10:15:00.000Z) on crm.requests.v1" in text
    assert "  case_id CASE-1; customer_id CUST-1; invoice_ids INV-1; expected_amount 1000.00 USD" in text
    assert "  pass invoice_owned: INV-1" in text
    assert "routing: #6 2026-11-22T10:15:03Z (audited 2026-11-22T10:15:05.000Z)" in text
    assert (
        "  queue=accounts_receivable priority=high sla_due_at=2026-11-23T10:15:03Z "
        "rule_version=routing-2026.11"
    ) in text
    assert "  #7 2026-11-22T10:15:05Z (audited 2026-11-22T10:15:06.000Z) routed" in text
    assert (
        "credit_memo 200.00 USD on INV-1 (RES-1; 1200.00 USD -> 1000.00 USD, reason pricing_dispute)" in text
    )
    assert "posted RES-1 erp_document_id=CM-9" in text


def test_a_broken_chain_shows_in_the_record() -> None:
    record = assemble_record(REQUEST, a_whole_life(), chain_break="REQ-0001 #3 (...): content changed")
    assert not record.chain_intact
    assert "chain BROKEN: REQ-0001 #3 (...): content changed" in format_record(record)


def test_a_hold_then_validation_shows_both_verdicts_and_a_reply_shows_under_the_request() -> None:
    held = {
        "event_id": "evt-h",
        "event_type": "RequestSetAside",
        "request_id": REQUEST,
        "occurred_at": "2026-11-22T10:15:01Z",
        "customer_id": "CUST-1",
        "customer": {
            "customer_id": "CUST-1",
            "name": "Acme Logistics",
            "status": "active",
            "kyc_status": "verified",
            "kyc_expires_on": "2027-12-31",
            "tier": "key",
            "credit_limit": {"amount": "50000.00", "currency": "USD"},
            "updated_at": "2026-11-01T08:00:00Z",
        },
        "verdict": "on_hold",
        "reason": "awaiting_reference_data",
        "waiting_for": ["invoice:INV-1"],
        "checks": [{"check": "invoice_exists", "passed": False, "detail": "INV-1 is not known"}],
    }
    reply = {
        "event_id": "evt-reply",
        "event_type": "EmailReplyAdded",
        "request_id": REQUEST,
        "message_id": "r1@acme.example",
        "sender": "Jane <jane@acme.example>",
        "subject": "RE: INV-1",
        "received_at": "2026-11-22T11:00:00Z",
        "attachments": [{"filename": "po.pdf"}],
    }
    record = assemble_record(
        REQUEST,
        entries(
            (CRM_REQUESTS, CASE),
            (REQUEST_SET_ASIDE, held),
            (REQUEST_SET_ASIDE, held),  # delivered twice, shown once
            (REQUEST_VALIDATED, VALIDATED),
            (REQUEST_UPDATED, reply),
        ),
    )
    assert record.validations[0].customer == held["customer"]
    assert [(v.verdict, v.reason, v.waiting_for) for v in record.validations] == [
        ("on_hold", "awaiting_reference_data", ["invoice:INV-1"]),
        ("validated", None, []),
    ]
    assert [part.message["message_id"] for part in record.replies] == ["r1@acme.example"]
    text = format_record(record)
    assert "on_hold [awaiting_reference_data] waiting for invoice:INV-1" in text
    assert "FAIL invoice_exists: INV-1 is not known" in text
    assert (
        "as recorded then: Acme Logistics, active, KYC verified until 2027-12-31, credit limit "
        "50000.00 USD (master data of 2026-11-01T08:00:00Z)"
    ) in text
    assert "from Jane <jane@acme.example>: RE: INV-1 (1 attachments)" in text
