"""`crs submit` publishes what the contract says a gateway publishes, and refuses before
publishing what would fail downstream; the command line knows every command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from crs.app import app
from crs.commands.requests import Decision, approval_decision
from crs.submit import Submission, SubmissionRefused, build, from_file
from shared.contract import ApprovalDecision, CrmRequest, EmailRequest
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS


def test_a_case_from_flags_is_a_valid_crm_request() -> None:
    topic, key, value = build(
        Submission(
            customer="CUST-00001",
            request_type="billing_dispute",
            invoices=("INV-2026-000001",),
            expected_amount="1000.00",
            currency="EUR",
            channel="portal",
            priority="high",
        )
    )
    case = CrmRequest.model_validate(value)
    assert (topic, key) == (CRM_REQUESTS, case.case_id)
    assert case.channel == "portal"
    assert case.expected_amount is not None
    assert (str(case.expected_amount.amount), case.expected_amount.currency) == ("1000.00", "EUR")
    assert "disputed_amount" not in value


def test_an_email_from_flags_is_a_valid_email_request() -> None:
    topic, key, value = build(Submission(channel="email", sender="Jane <jane@acme.example>", body="Hi"))
    email = EmailRequest.model_validate(value)
    assert (topic, key) == (EMAIL_REQUESTS, email.message_id)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (Submission(customer="C-1", disputed_amount="1,250.00"), "no thousands separators"),
        (Submission(customer="C-1", disputed_amount="0"), "more than zero"),
        (Submission(customer="C-1", expected_amount="-1.00"), "zero or more"),
        (Submission(customer="C-1", disputed_amount="12.345"), "at most two decimals"),
        (Submission(customer="C-1", disputed_amount="10.00", currency="usd"), "currency"),
        (Submission(channel="email"), "--sender is required"),
        (Submission(channel="email", sender="a@b.example", customer="C-1"), "--customer"),
        (Submission(), "--customer is required"),
    ],
)
def test_what_would_fail_downstream_is_refused_before_publishing(flags: Submission, said: str) -> None:
    with pytest.raises(SubmissionRefused, match=said):
        build(flags)


def test_a_file_is_published_as_it_is_and_a_missing_or_broken_file_is_refused(tmp_path: Path) -> None:
    case = {
        "case_id": "C-FILE",
        "customer_id": "CUST-1",
        "subject": "ü",
        "submitted_at": "2026-11-22T10:00:00Z",
    }
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    assert from_file(path, None) == (CRM_REQUESTS, "C-FILE", case)
    with pytest.raises(SubmissionRefused, match="no such file"):
        from_file(tmp_path / "nope.json", None)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(SubmissionRefused, match="not a readable JSON file"):
        from_file(path, None)


def test_an_approval_is_the_contracts_message() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    value = approval_decision(
        Decision.REJECT, "REQ-1", approver="fred", role="finance_manager", comment="no", now=now
    )
    decision = ApprovalDecision.model_validate(value)
    assert (decision.decision, decision.request_id, decision.comment) == ("reject", "REQ-1", "no")


def _commands(group: typer.Typer) -> set[str]:
    command = typer.main.get_command(group)
    return set(getattr(command, "commands", {}))


def test_the_command_line_has_every_command_and_group() -> None:
    import crs.commands  # noqa: F401 - registers the commands

    assert {
        "stack", "topics", "demo-data", "submit", "watch", "requests", "run", "erp", "bench", "asyncapi",
        "audit", "record", "trace", "stats", "dlq", "approve", "reject", "chaos",
    } <= _commands(app)  # fmt: skip
    groups = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert set(groups["stack"].commands) == {"up", "down", "status"}
    assert set(groups["audit"].commands) == {"verify", "export"}
    assert set(groups["dlq"].commands) == {"list", "show", "replay"}
    assert set(groups["chaos"].commands) == {"kills", "fuzz"}
