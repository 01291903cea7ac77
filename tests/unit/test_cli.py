"""`crs submit` publishes what the contract says a gateway publishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crs.cli import build_parser, build_submission
from shared.contract import CrmRequest, EmailRequest
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS


def submission(*argv: str) -> tuple[str, str, dict[str, object]]:
    return build_submission(build_parser().parse_args(["submit", *argv]))


def test_a_case_from_flags_is_a_valid_crm_request() -> None:
    topic, key, value = submission(
        "--customer",
        "CUST-00001",
        "--type",
        "billing_dispute",
        "--invoice",
        "INV-2026-000001",
        "--expected-amount",
        "1000.00",
        "--currency",
        "EUR",
        "--channel",
        "portal",
        "--priority",
        "high",
    )
    case = CrmRequest.model_validate(value)
    assert (topic, key) == (CRM_REQUESTS, case.case_id)
    assert case.channel == "portal"
    assert case.expected_amount is not None
    assert (str(case.expected_amount.amount), case.expected_amount.currency) == ("1000.00", "EUR")
    assert "disputed_amount" not in value


def test_an_email_from_flags_is_a_valid_email_request() -> None:
    topic, key, value = submission(
        "--channel", "email", "--sender", "Jane <jane@acme.example>", "--body", "Hi"
    )
    email = EmailRequest.model_validate(value)
    assert (topic, key) == (EMAIL_REQUESTS, email.message_id)


@pytest.mark.parametrize("sample", ["dispute", "email"])
def test_the_demo_samples_are_valid_contract_messages(sample: str) -> None:
    topic, _, value = submission("--sample", sample, "--customers", "20")
    model = EmailRequest if topic == EMAIL_REQUESTS else CrmRequest
    model.model_validate(value)


def test_a_file_is_published_as_it_is(tmp_path: Path) -> None:
    case = {
        "case_id": "C-FILE",
        "customer_id": "CUST-1",
        "subject": "ü",
        "submitted_at": "2026-11-22T10:00:00Z",
    }
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    assert submission("--file", str(path)) == (CRM_REQUESTS, "C-FILE", case)
