"""What an email or a CRM text says, read the way a finance clerk would: the sender's own words first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.intake.email_understanding.amounts import AmountsFound, find_amounts_with_roles
from services.intake.email_understanding.classification import classify
from services.intake.email_understanding.dates import find_dates, find_payment_date
from services.intake.email_understanding.documents import (
    find_contract_numbers,
    find_invoice_numbers,
    find_payment_numbers,
)
from services.intake.email_understanding.quoting import split_body
from services.intake.email_understanding.sender import parse_sender
from shared.contract import RequestType
from shared.document_numbers import MAX_CANDIDATES, find_document_numbers, find_loose_numbers
from shared.events import StatedAmount
from shared.money import Money


@dataclass(frozen=True)
class EmailUnderstanding:
    """Everything intake takes from one email; empty or ``None`` where the email does not say."""

    sender_name: str | None
    sender_email: str | None
    invoice_ids: tuple[str, ...]
    payment_ids: tuple[str, ...]
    contract_ids: tuple[str, ...]
    mentioned_amounts: tuple[Money, ...]
    disputed_amount: Money | None
    expected_amount: Money | None
    requested_credit_limit: Money | None
    mentioned_dates: tuple[date, ...]
    request_type: RequestType | None
    type_confidence: float
    type_evidence: tuple[str, ...]
    invoice_candidates: tuple[str, ...] = ()
    payment_candidates: tuple[str, ...] = ()
    loose_candidates: tuple[str, ...] = ()
    stated_amounts: tuple[StatedAmount, ...] = ()
    paid_amount: Money | None = None
    payment_date: date | None = None


def understand_email(
    *, subject: str, body_text: str, sender: str, received_on: date | None = None
) -> EmailUnderstanding:
    """Read one email the way a finance clerk would: the sender's own words first.

    Documents come from the subject and the sender's own text (forwarded messages included); only
    when those name no document at all are the quoted messages' documents used, as for a customer
    who answers "still not fixed" to our statement. Amounts, dates and the type come from the
    subject and the own text only: a quoted thread says what *we* wrote, not what they ask.

    ``invoice_ids`` (and payment, contract ids) are the demo ERP's canonical form
    (``INV-2026-000123``), kept as evidence for the type; ``invoice_candidates`` are the numbers as
    written, in any format, which validation resolves against the customer's documents. Given
    ``received_on``, dates without a year and relative ones ("last Friday") are read from it.
    """
    name, address = parse_sender(sender)
    parts = split_body(body_text, subject=subject)
    text = f"{subject}\n{parts.own}"
    invoices, payments, contracts = _documents(text)
    facts = understand_text(text, today=received_on)
    invoice_candidates, payment_candidates = facts.invoice_candidates, facts.payment_candidates
    if not (invoices or payments or contracts or invoice_candidates or payment_candidates):
        invoices, payments, contracts = _documents(parts.quoted)
        invoice_candidates = find_document_numbers(parts.quoted, "invoice")
        payment_candidates = find_document_numbers(parts.quoted, "payment")
    amounts = facts.amounts
    classification = classify(
        parts.own,
        subject=subject,
        invoice_ids=invoices or invoice_candidates,
        payment_ids=payments or payment_candidates,
        contract_ids=contracts,
    )
    return EmailUnderstanding(
        sender_name=name,
        sender_email=address,
        invoice_ids=invoices,
        payment_ids=payments,
        contract_ids=contracts,
        mentioned_amounts=amounts.mentioned,
        disputed_amount=amounts.disputed,
        expected_amount=amounts.expected,
        requested_credit_limit=amounts.requested_credit_limit,
        mentioned_dates=facts.dates,
        request_type=classification.request_type,
        type_confidence=classification.confidence,
        type_evidence=classification.evidence,
        invoice_candidates=_with_canonical(invoice_candidates, invoices),
        payment_candidates=_with_canonical(payment_candidates, payments),
        loose_candidates=facts.loose_candidates,
        stated_amounts=amounts.stated,
        paid_amount=amounts.paid,
        payment_date=facts.payment_date,
    )


def _with_canonical(candidates: tuple[str, ...], canonical: tuple[str, ...]) -> tuple[str, ...]:
    """The candidates as written, then the canonical forms read of them that add a new number."""
    return tuple(dict.fromkeys((*candidates, *canonical)))[:MAX_CANDIDATES]


def _documents(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return find_invoice_numbers(text), find_payment_numbers(text), find_contract_numbers(text)


@dataclass(frozen=True)
class TextFacts:
    """What a customer's own words name: document candidates, amounts with roles, dates."""

    invoice_candidates: tuple[str, ...]
    payment_candidates: tuple[str, ...]
    loose_candidates: tuple[str, ...]
    amounts: AmountsFound
    dates: tuple[date, ...]
    payment_date: date | None


def understand_text(text: str, *, today: date | None = None) -> TextFacts:
    """Read free text (a CRM description, an email's own words) for what validation resolves.

    Candidates are numbers after an invoice or payment word or code, and numbers that stand alone
    and can hardly be anything else (:mod:`shared.document_numbers`); amounts with and without a
    currency, with their roles; dates, relative ones read from ``today``; the payment date.
    """
    invoices = find_document_numbers(text, "invoice")
    payments = find_document_numbers(text, "payment")
    named = (*invoices, *payments)
    loose = tuple(
        number for number in find_loose_numbers(text) if not any(number in worded for worded in named)
    )
    return TextFacts(
        invoice_candidates=invoices,
        payment_candidates=payments,
        loose_candidates=loose,
        amounts=find_amounts_with_roles(text),
        dates=find_dates(text, today=today),
        payment_date=find_payment_date(text, today=today),
    )
