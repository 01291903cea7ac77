"""Intake's understanding of CRM cases and emails."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.intake import domain
from shared.contract import CrmRequest, EmailRequest, RequestType
from shared.events import RequestCaptured, StatedAmount, upcast
from shared.money import Money

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


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
            "description": "Invoice INV-2026-000123 shows USD 1,200.00 instead of the agreed price.",
            "invoice_ids": ["INV-2026-000123"],
            "submitted_at": "2026-11-22T10:00:00Z",
        }
    )
    capture = domain.capture_crm_request(case, now=NOW)
    details = capture.captured.details
    assert details.request_type is RequestType.BILLING_DISPUTE
    # "overcharged" in the subject (3 x 1.4) and "agreed price" in the description (2)
    assert details.type_confidence == round(6.2 / 7.2, 3)
    assert details.type_evidence == ("overcharged", "agreed price")
    assert details.mentioned_amounts == (Money(amount="1200.00", currency="USD"),)
    assert capture.received.status.value == "received"
    assert capture.received.event_id == domain.capture_crm_request(case, now=NOW).received.event_id


def test_a_crm_case_keeps_its_own_type_and_structured_fields() -> None:
    case = CrmRequest.model_validate(
        {
            "case_id": "C-10",
            "customer_id": "CUST-1",
            "type": "refund",
            "subject": "Please write off the balance",
            "description": "Paid twice on 02.11.2026, EUR 500,00 each; the contract says EUR 450,00.",
            "disputed_amount": {"amount": "50.00", "currency": "EUR"},
            "contract_id": "CTR-2026-0003",
            "submitted_at": "2026-11-22T10:00:00Z",
        }
    )
    details = domain.capture_crm_request(case, now=NOW).captured.details
    assert (details.request_type, details.type_confidence, details.type_evidence) == (
        RequestType.REFUND,
        1.0,
        (),
    )
    assert details.disputed_amount == Money(amount="50.00", currency="EUR")
    assert details.expected_amount is None  # the CRM's structured fields stay as given
    assert details.contract_id == "CTR-2026-0003"
    assert details.mentioned_amounts == (
        Money(amount="500.00", currency="EUR"),
        Money(amount="450.00", currency="EUR"),
    )
    assert details.mentioned_dates == (date(2026, 11, 2),)


def test_a_crm_case_nobody_can_classify_goes_to_a_person() -> None:
    case = CrmRequest.model_validate(
        {"case_id": "C-11", "customer_id": "CUST-1", "subject": "Call back", "submitted_at": NOW.isoformat()}
    )
    details = domain.capture_crm_request(case, now=NOW).captured.details
    assert (details.request_type, details.type_confidence, details.type_evidence) == (None, 0.0, ())


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
    assert details.sender_name == "Doe, Jane"
    # An email names candidates; validation resolves them against the customer's documents.
    assert (details.invoice_ids, details.payment_ids) == ((), ())
    assert details.invoice_candidates == ("INV-2026-000123",)
    assert details.payment_candidates == ("2026 000042", "PAY-2026-000042")
    assert details.request_type is RequestType.PAYMENT_QUERY
    assert details.customer_id is None
    assert domain.thread_message_ids(email) == ("m1@acme.example", "m0@acme.example")


def test_an_email_fills_every_field_it_understands() -> None:
    email = EmailRequest.model_validate(
        {
            "message_id": "<m3@acme.example>",
            "from": "Jane Doe <jane@acme.example>",
            "to": ["ar@us.example"],
            "subject": "Dispute on inv 2026 000124",
            "body_text": (
                "Under contract CTR-2026-0003 the total should be USD 900.00, not USD 1,000.00 as invoiced "
                "on 2 November 2026: we were overcharged by USD 100.00.\n\nKind regards,\nJane\n"
                "Tel +1 555 2026 000999\n\n"
                "On Mon, Nov 2, 2026, Billing <b@us.example> wrote:\n> INV-2026-000999 USD 5.00\n"
            ),
            "received_at": "2026-11-22T10:00:00Z",
        }
    )
    details = domain.capture_email(email, now=NOW).captured.details
    usd = "USD"
    assert details.sender_name == "Jane Doe"
    assert details.invoice_ids == ()
    assert details.invoice_candidates == ("2026 000124", "INV-2026-000124")
    assert details.loose_candidates == ()  # the phone number is in the signature
    assert details.contract_id == "CTR-2026-0003"
    assert details.expected_amount == Money(amount="900.00", currency=usd)
    assert details.disputed_amount == Money(amount="100.00", currency=usd)
    assert details.mentioned_amounts == (
        Money(amount="900.00", currency=usd),
        Money(amount="1000.00", currency=usd),
        Money(amount="100.00", currency=usd),
    )
    assert details.mentioned_dates == (date(2026, 11, 2),)
    assert details.request_type is RequestType.BILLING_DISPUTE
    assert details.type_evidence == ("overcharged", "dispute", "total should")
    assert details.type_confidence == round(9.2 / 10.2 * (1 - 2 / 18.4), 3)  # contract words are runner-up
    assert details.description == email.body_text  # the whole body is kept for people to read


def test_an_email_nobody_can_classify_keeps_no_type() -> None:
    email = EmailRequest.model_validate(
        {
            "message_id": "<m4@acme.example>",
            "from": "Jane Doe <jane@acme.example>",
            "to": ["ar@us.example"],
            "subject": "Hello",
            "body_text": "Please call me back.",
            "received_at": "2026-11-22T10:00:00Z",
        }
    )
    details = domain.capture_email(email, now=NOW).captured.details
    assert (details.request_type, details.type_evidence) == (None, ())
    assert details.type_confidence < 0.6


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


def test_a_crm_payment_query_told_in_words_carries_its_payment_details() -> None:
    case = CrmRequest.model_validate(
        {
            "case_id": "C-12",
            "customer_id": "CUST-1",
            "type": "payment_query",
            "subject": "Payment not applied",
            "description": "We paid 18,500.00 on 28 Sep for invoice RE/2026/0042, still shown as open.",
            "submitted_at": "2026-10-02T10:00:00Z",
        }
    )
    details = domain.capture_crm_request(case, now=NOW).captured.details
    assert details.invoice_ids == ()
    assert details.invoice_candidates == ("RE/2026/0042",)
    assert details.stated_amounts == (StatedAmount(amount=Decimal("18500.00"), currency=None, role="paid"),)
    assert details.paid_amount is None  # no currency in the text: validation takes the invoice's
    assert details.payment_date == date(2026, 9, 28)
    assert details.mentioned_dates == (date(2026, 9, 28),)


def test_a_crm_case_keeps_its_structured_numbers_apart_from_the_ones_in_its_text() -> None:
    case = CrmRequest.model_validate(
        {
            "case_id": "C-13",
            "customer_id": "CUST-1",
            "type": "billing_dispute",
            "subject": "Invoice 4711 and 4712 overcharged",
            "description": "Also 90012345-A. We were overcharged by USD 700.00 on invoice 4711.",
            "invoice_ids": ["4711"],
            "submitted_at": "2026-10-02T10:00:00Z",
        }
    )
    details = domain.capture_crm_request(case, now=NOW).captured.details
    assert details.invoice_ids == ("4711",)
    assert details.invoice_candidates == ("4712",)
    assert details.loose_candidates == ("90012345-A",)
    assert details.disputed_amount == Money(amount="700.00", currency="USD")  # the CRM left it empty


def test_an_old_captured_event_without_the_new_fields_is_still_read() -> None:
    current = domain.capture_crm_request(
        CrmRequest.model_validate({**CASE_FIELDS, "case_id": "C-14"}), now=NOW
    ).captured
    payload = current.model_dump(mode="json")
    for field in ("invoice_candidates", "payment_candidates", "loose_candidates", "stated_amounts",
                  "paid_amount", "payment_date"):  # fmt: skip
        del payload["details"][field]
    payload["schema_version"] = 1
    old = RequestCaptured.model_validate(upcast(payload))
    assert old.schema_version == 2
    assert old.details.invoice_candidates == ()
    assert old.details.paid_amount is None
    assert old.details.subject == current.details.subject


CASE_FIELDS = {"customer_id": "CUST-1", "subject": "Question", "submitted_at": "2026-10-02T10:00:00Z"}
