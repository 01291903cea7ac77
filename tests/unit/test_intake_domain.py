"""Intake's understanding of CRM cases and emails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake import domain
from shared.contract import CrmRequest, EmailRequest, RequestType

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Invoice INV-2026-000123 is wrong", ("INV-2026-000123",)),
        ("re: inv 2026 000123", ("INV-2026-000123",)),
        ("INV2026000123 and inv-2026-000124", ("INV-2026-000123", "INV-2026-000124")),
        ("Invoice #2026-000123", ("INV-2026-000123",)),
        ("INV-2026-000123 twice: INV-2026-000123", ("INV-2026-000123",)),
        ("call me on +49 2026 000123", ()),
        ("no numbers here", ()),
    ],
)
def test_invoice_numbers_are_found_in_the_ways_people_type_them(text: str, expected: tuple[str, ...]) -> None:
    assert domain.find_invoice_numbers(text) == expected


@given(st.integers(min_value=2000, max_value=2099), st.integers(min_value=0, max_value=999_999), st.text())
def test_any_demo_invoice_number_is_found_whatever_surrounds_it(year: int, number: int, noise: str) -> None:
    invoice_id = f"INV-{year}-{number:06d}"
    text = f"{noise} {invoice_id.lower().replace('-', ' ')} {noise}"
    assert invoice_id in domain.find_invoice_numbers(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We were overcharged on the last invoice", RequestType.BILLING_DISPUTE),
        ("Please raise our credit limit to 50k", RequestType.CREDIT_LIMIT_CHANGE),
        ("Requesting a refund of the credit balance", RequestType.REFUND),
        ("Our payment was never applied to the invoice", RequestType.PAYMENT_QUERY),
        ("Hello, how are you?", None),
    ],
)
def test_emails_are_classified_by_their_words(text: str, expected: RequestType | None) -> None:
    request_type, confidence = domain.classify(text)
    assert request_type == expected
    assert (confidence >= domain.CONFIDENT_ENOUGH) == (expected is not None)


def test_the_same_case_always_gets_the_same_request_id() -> None:
    assert domain.crm_request_id("CASE-1") == domain.crm_request_id("CASE-1")
    assert domain.crm_request_id("CASE-1") != domain.crm_request_id("CASE-2")
    assert domain.crm_request_id("X") != domain.email_request_id("X")
    assert domain.email_request_id("<a@b>") == domain.email_request_id("a@b")


def test_a_crm_case_with_an_unknown_type_is_classified_from_its_text() -> None:
    case = CrmRequest.model_validate(
        {
            "case_id": "C-9",
            "customer_id": "CUST-1",
            "type": "mystery",
            "subject": "We were overcharged",
            "submitted_at": "2026-11-22T10:00:00Z",
        }
    )
    capture = domain.capture_crm_request(case, now=NOW)
    assert capture.captured.details.request_type is RequestType.BILLING_DISPUTE
    assert capture.captured.details.type_confidence < 1
    assert capture.received.status.value == "received"
    assert capture.received.event_id == domain.capture_crm_request(case, now=NOW).received.event_id


def test_an_email_captures_sender_documents_and_thread() -> None:
    email = EmailRequest.model_validate(
        {
            "message_id": "<m2@acme.example>",
            "from": '"Doe, Jane" <Jane.Doe@ACME.example>',
            "to": ["ar@us.example"],
            "subject": "RE: invoice INV-2026-000123",
            "body_text": "Payment PAY 2026 000042 was never applied.",
            "in_reply_to": "<m1@acme.example>",
            "references": ["<m0@acme.example> <m1@acme.example>"],
            "received_at": "2026-11-22T10:00:00Z",
        }
    )
    details = domain.capture_email(email, now=NOW).captured.details
    assert details.sender_email == "jane.doe@acme.example"
    assert details.invoice_ids == ("INV-2026-000123",)
    assert details.payment_ids == ("PAY-2026-000042",)
    assert details.customer_id is None
    assert domain.thread_message_ids(email) == ("m1@acme.example", "m0@acme.example")


@pytest.mark.parametrize(
    ("group", "payload", "channel", "expected_id"),
    [
        ("crm", {"case_id": " C-7 ", "channel": "portal", "customer_id": "CUST-1"}, "portal", "C-7"),
        ("crm", {"case_id": "C-8"}, "crm", "C-8"),
        ("email", {"message_id": "<m@x>"}, "email", "<m@x>"),
    ],
)
def test_an_unreadable_message_with_an_id_is_rejected_to_its_sender(
    group: str, payload: dict[str, object], channel: str, expected_id: str
) -> None:
    rejection = domain.reject_unreadable(group, payload, "submitted_at: Field required", now=NOW)
    assert rejection is not None
    assert (rejection.channel.value, rejection.source_id, rejection.reason) == (
        channel,
        expected_id,
        "invalid_request",
    )
    assert rejection.message.endswith("submitted_at: Field required.")


@pytest.mark.parametrize("payload", [{}, {"case_id": ""}, {"case_id": 42}, {"message_id": "<m@x>"}])
def test_without_a_usable_case_id_there_is_nobody_to_tell(payload: dict[str, object]) -> None:
    assert domain.reject_unreadable("crm", payload, "broken", now=NOW) is None
