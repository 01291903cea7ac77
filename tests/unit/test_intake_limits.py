"""Intake reads a bounded part of a long text, keeps all of it, and does so off the event loop."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from services.intake import app, domain
from shared.contract import CrmRequest, EmailRequest

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TEXT = "We were charged $10.00 twice on INV-2026-000123. " * 2_000  # about 100 KB


def email(body: str) -> EmailRequest:
    return EmailRequest.model_validate(
        {
            "message_id": "<m-1@acme.example>",
            "from": "Jane Doe <jane@acme.example>",
            "to": ["ar@billing.example"],
            "subject": "Overcharged",
            "body_text": body,
            "received_at": "2026-11-22T10:00:00Z",
        }
    )


def case(description: str) -> CrmRequest:
    return CrmRequest.model_validate(
        {
            "case_id": "CASE-1",
            "customer_id": "CUST-00001",
            "subject": "Overcharged",
            "description": description,
            "submitted_at": "2026-11-22T10:00:00Z",
        }
    )


def test_an_email_is_read_up_to_the_limit_and_kept_whole() -> None:
    capture = app.capture_email(email(TEXT), now=NOW, analysed_chars=5_000)
    details = capture.captured.details
    assert details.description == TEXT
    mentions_in_limit = TEXT[:5_000].count("$10.00")
    assert len(details.mentioned_amounts) == mentions_in_limit < TEXT.count("$10.00")


def test_a_case_description_is_read_up_to_the_limit_and_kept_whole() -> None:
    capture = app.capture_crm_request(case(TEXT), now=NOW, analysed_chars=5_000)
    details = capture.captured.details
    assert details.description == TEXT
    assert len(details.mentioned_amounts) == TEXT[:5_000].count("$10.00")


def test_a_short_text_is_captured_exactly_as_the_domain_captures_it() -> None:
    short = email("We were charged $10.00 twice on INV-2026-000123.")
    assert app.capture_email(short, now=NOW, analysed_chars=5_000) == domain.capture_email(short, now=NOW)


async def test_the_text_is_read_on_the_worker_thread_before_the_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []
    real = app.capture_email

    def spying(message: EmailRequest, *, now: datetime, analysed_chars: int) -> domain.Capture:
        threads.append(threading.current_thread().name)
        return real(message, now=now, analysed_chars=analysed_chars)

    monkeypatch.setattr(app, "capture_email", spying)
    message = email(TEXT)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="understanding") as executor:
        handlers = app.IntakeHandlers(None, analysed_chars=5_000, executor=executor)  # type: ignore[arg-type]
        await handlers.prepare_email(message)
    assert threads == ["understanding_0"]
    # What the transaction then uses is what the thread prepared, not a second reading.
    prepared = handlers._prepared_capture(message, lambda: real(message, now=NOW, analysed_chars=1_000))
    assert len(prepared.captured.details.mentioned_amounts) == TEXT[:5_000].count("$10.00")
