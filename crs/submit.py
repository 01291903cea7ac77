"""`crs submit`: a request as the CRM or the email gateway would publish it, checked against the
contract before it is sent, and (with ``--wait``) followed to where it comes to rest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from crs.io import Follower, TopicRecord
from shared.contract import CrmRequest, EmailRequest
from shared.delivery import describe_validation_error
from shared.identity import crm_request_id, email_request_id
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS, REQUEST_STATUS, dead_letter_topic

FINAL: Final = frozenset({"rejected", "closed", "duplicate_of"})
"""Nothing follows these."""
RESTING: Final = frozenset({"on_hold", "routed", "awaiting_approval", "resolved", "approved"})
"""A request stays in these until something outside happens (a person, the ERP, reference data),
unless the next step follows at once (``resolved`` then ``closed`` when the ERP answers)."""


class SubmissionRefused(ValueError):
    """The message would not be accepted downstream: said before anything is published."""


@dataclass(frozen=True)
class Submission:
    """What `crs submit` was told, flag by flag."""

    channel: str = "crm"
    case_id: str | None = None
    message_id: str | None = None
    customer: str | None = None
    request_type: str | None = None
    subject: str = "Customer request"
    body: str | None = None
    sender: str | None = None
    to: str = "ar@billing.example"
    invoices: tuple[str, ...] = ()
    payments: tuple[str, ...] = ()
    contract: str | None = None
    disputed_amount: str | None = None
    expected_amount: str | None = None
    requested_credit_limit: str | None = None
    currency: str = "USD"
    priority: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _money(amount: str | None, currency: str) -> dict[str, str] | None:
    return None if amount is None else {"amount": amount, "currency": currency}


CRM_ONLY_FIELDS: Final = (
    ("customer", "--customer"),
    ("request_type", "--type"),
    ("invoices", "--invoice"),
    ("payments", "--payment"),
    ("contract", "--contract"),
    ("disputed_amount", "--disputed-amount"),
    ("expected_amount", "--expected-amount"),
    ("requested_credit_limit", "--requested-credit-limit"),
    ("priority", "--priority"),
)


def build(flags: Submission) -> tuple[str, str, dict[str, Any]]:
    """The ``(topic, key, value)`` to publish, checked: raises :class:`SubmissionRefused` with
    what is wrong, flag by flag where it can."""
    if flags.channel == "email":
        given = [flag for name, flag in CRM_ONLY_FIELDS if getattr(flags, name)]
        if given:
            raise SubmissionRefused(
                f"{', '.join(given)} describe a CRM case; an email says what it is about in "
                "--subject and --body (its customer is found from --sender)"
            )
        if not flags.sender:
            raise SubmissionRefused(
                "--sender is required for an email: validation finds the customer from the sender's "
                'address among its contacts (e.g. --sender "Jane Doe <jane@acme.example>")'
            )
        message_id = flags.message_id or f"<crs-{os.urandom(6).hex()}@crs.local>"
        email = {
            "message_id": message_id,
            "from": flags.sender,
            "to": [flags.to],
            "subject": flags.subject,
            "body_text": flags.body or "",
            "received_at": _stamp(flags.now),
        }
        return EMAIL_REQUESTS, message_id, checked(EMAIL_REQUESTS, email)
    if not flags.customer:
        raise SubmissionRefused("--customer is required for a CRM or portal case")
    for flag, amount, positive in (
        ("--disputed-amount", flags.disputed_amount, True),
        ("--requested-credit-limit", flags.requested_credit_limit, True),
        ("--expected-amount", flags.expected_amount, False),
    ):
        _check_amount(flag, amount, positive=positive)
    case_id = flags.case_id or f"CASE-CLI-{os.urandom(4).hex().upper()}"
    case = {
        "case_id": case_id,
        "channel": flags.channel,
        "customer_id": flags.customer,
        "type": flags.request_type,
        "subject": flags.subject,
        "description": flags.body,
        "invoice_ids": list(flags.invoices),
        "payment_ids": list(flags.payments),
        "contract_id": flags.contract,
        "disputed_amount": _money(flags.disputed_amount, flags.currency),
        "expected_amount": _money(flags.expected_amount, flags.currency),
        "requested_credit_limit": _money(flags.requested_credit_limit, flags.currency),
        "priority": flags.priority,
        "submitted_at": _stamp(flags.now),
    }
    value = {name: part for name, part in case.items() if part not in (None, [])}
    return CRM_REQUESTS, case_id, checked(CRM_REQUESTS, value)


def _check_amount(flag: str, amount: str | None, *, positive: bool) -> None:
    if amount is None:
        return
    try:
        number = Decimal(amount)
    except ArithmeticError:
        number = None
    if number is None or not number.is_finite() or number.as_tuple().exponent not in (0, -1, -2):
        raise SubmissionRefused(
            f"{flag} {amount}: write the amount as digits with a dot and at most two decimals, "
            "no thousands separators (e.g. 1250.00)"
        )
    if (positive and number <= 0) or number < 0:
        raise SubmissionRefused(
            f"{flag} {amount}: must be {'more than zero' if positive else 'zero or more'}"
        )


def checked(topic: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if the contract's model of ``topic`` accepts it; else :class:`SubmissionRefused`."""
    model = EmailRequest if topic == EMAIL_REQUESTS else CrmRequest
    try:
        model.model_validate(value)
    except ValidationError as error:
        raise SubmissionRefused(f"not a valid {topic} message: {describe_validation_error(error)}") from None
    return value


def from_file(path: Path, channel: str | None) -> tuple[str, str, dict[str, Any]]:
    """A whole message from a JSON file, checked like one built from flags."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SubmissionRefused(f"--file {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SubmissionRefused(f"--file {path}: not a readable JSON file ({error})") from None
    if not isinstance(value, dict):
        raise SubmissionRefused(f"--file {path}: the message must be one JSON object")
    topic = EMAIL_REQUESTS if channel == "email" or "message_id" in value else CRM_REQUESTS
    key = value.get("message_id") if topic == EMAIL_REQUESTS else value.get("case_id")
    checked(topic, value)
    return topic, str(key), value


def request_id_of(topic: str, key: str) -> str:
    """The request id intake will give the message."""
    return email_request_id(key) if topic == EMAIL_REQUESTS else crm_request_id(key)


def followed_topics(topic: str) -> list[str]:
    """Where a submitted request's fate shows: its statuses, and its topic's dead letters."""
    return [REQUEST_STATUS, dead_letter_topic(topic)]


@dataclass(frozen=True)
class Outcome:
    """Where the request came to rest, or None when nothing came within the wait."""

    status: str | None
    detail: str


async def follow_to_rest(
    follower: Follower,
    *,
    topic: str,
    key: str,
    request_id: str,
    timeout: float,
    settle: float = 3.0,
    say: Callable[[str], None],
    clock: Callable[[], float],
) -> Outcome:
    """Print the request's statuses as they come, until it rests (see :data:`FINAL`, :data:`RESTING`)."""
    deadline = clock() + timeout
    last: TopicRecord | None = None
    quiet_since = clock()
    while clock() < deadline:
        for record in await follower.read(min(0.5, max(deadline - clock(), 0.01))):
            value = record.value if isinstance(record.value, dict) else {}
            if record.topic == dead_letter_topic(topic):
                if (record.headers.get("x-original-key") or record.key) == key:
                    reason = record.headers.get("x-error-reason", "?")
                    error = record.headers.get("x-error", "")
                    say(f"  dead-lettered on {record.topic}: {reason}: {error}")
                    return Outcome("dlq", f"{reason}: {error}")
                continue
            if record.key != request_id or not value.get("status"):
                continue
            last, quiet_since = record, clock()
            reason = f" [{value['reason']}]" if value.get("reason") else ""
            say(f"  {value['status']}{reason}: {value.get('message') or '-'}")
            if value["status"] in FINAL:
                return Outcome(str(value["status"]), str(value.get("message") or ""))
        if last is not None and last.value.get("status") in RESTING and clock() - quiet_since >= settle:
            return Outcome(str(last.value["status"]), str(last.value.get("message") or ""))
    if last is None:
        return Outcome(None, "")
    return Outcome(str(last.value.get("status")), str(last.value.get("message") or ""))
