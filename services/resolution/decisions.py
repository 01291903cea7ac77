"""A person's resolution decision (``ResolutionDecided``) checked against resolution's reference data.

Pure: no I/O. A decision taken in the workspace becomes the same :class:`strategies.Posting` the
automated strategies propose, so it goes through the same approval policy and the same postings
to the ERP. It is checked first, against the documents resolution's own views hold (never against
what the console showed): the invoice and the payment exist and are the request's customer's, the
payment still has money not applied, every amount is positive, in the document's currency and
within what the document allows. A decision that cannot be carried out raises
:class:`shared.lifecycle.TransitionRefused` with a reason and a sentence a person can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from services.resolution import strategies
from services.resolution.policy import WriteOffTolerance
from shared.actions import ResolutionDecided
from shared.contract import Invoice, Payment, ResolutionKind
from shared.lifecycle import TransitionRefused
from shared.money import Money, round_to_minor_units

KIND_WORDS = {
    ResolutionKind.CREDIT_MEMO: "credit memo",
    ResolutionKind.INVOICE_CORRECTION: "invoice correction",
    ResolutionKind.PAYMENT_ALLOCATION: "payment allocation",
    ResolutionKind.CREDIT_LIMIT_UPDATE: "credit limit update",
    ResolutionKind.WRITE_OFF: "write-off",
    ResolutionKind.REFUND: "refund",
}


def posting_for(
    decision: ResolutionDecided,
    *,
    customer_id: str,
    request_invoice_ids: Sequence[str],
    facts: strategies.Facts,
    tolerance: WriteOffTolerance,
) -> strategies.Posting:
    """The posting a person decided, checked against ``facts``; refused if it cannot be carried out.

    ``document_id`` carries the decision's event id: each decision is a posting of its own (its
    own stable resolution id), and the same decision delivered again is the same posting.
    """
    if decision.kind is ResolutionKind.CREDIT_LIMIT_UPDATE:
        raise TransitionRefused(
            "kind_not_decided_by_a_person",
            "a credit limit update follows from the limit the customer asked for; "
            "reclassify the request as credit_limit_change instead",
        )
    for name, money in (("amount", decision.amount), ("corrected_amount", decision.corrected_amount)):
        if money is not None and money.amount < 0:
            raise TransitionRefused("amount_not_positive", f"the {name} {money} is negative")
    if decision.kind is ResolutionKind.REFUND:
        return _refund(decision, customer_id=customer_id, facts=facts)
    invoice = _invoice(
        decision, customer_id=customer_id, request_invoice_ids=request_invoice_ids, facts=facts
    )
    if decision.kind is ResolutionKind.PAYMENT_ALLOCATION:
        return _allocation(decision, invoice, customer_id=customer_id, facts=facts)
    if decision.kind is ResolutionKind.CREDIT_MEMO:
        return _credit_memo(decision, invoice)
    if decision.kind is ResolutionKind.INVOICE_CORRECTION:
        return _correction(decision, invoice)
    return _write_off(decision, invoice, tolerance)


def _document_id(decision: ResolutionDecided, document: str) -> str:
    return f"decision:{decision.event_id}:{document}"


def _explanation(decision: ResolutionDecided, what: str) -> str:
    return f"{decision.actor} decided a {KIND_WORDS[decision.kind]}: {what} ({decision.reason})."


def _invoice(
    decision: ResolutionDecided,
    *,
    customer_id: str,
    request_invoice_ids: Sequence[str],
    facts: strategies.Facts,
) -> Invoice:
    invoice_id = decision.invoice_id
    if invoice_id is None:
        if len(request_invoice_ids) != 1:
            raise TransitionRefused(
                "invoice_not_named",
                f"the request names {len(request_invoice_ids)} invoices: the decision must name the invoice",
            )
        invoice_id = request_invoice_ids[0]
    invoice = facts.invoices.get(invoice_id)
    if invoice is None:
        raise TransitionRefused("unknown_invoice", f"invoice {invoice_id} is not known to resolution")
    if invoice.customer_id != customer_id:
        raise TransitionRefused(
            "invoice_of_another_customer", f"invoice {invoice_id} is not an invoice of {customer_id}"
        )
    return invoice


def _in_currency(name: str, money: Money | None, currency: str, document: str) -> Money:
    if money is None:
        raise TransitionRefused("amount_missing", f"a {name} is needed")
    if money.currency != currency:
        raise TransitionRefused(
            "currency_mismatch", f"the {name} {money} is not in {currency}, the currency of {document}"
        )
    if money.amount <= 0:
        raise TransitionRefused("amount_not_positive", f"the {name} {money} is not more than zero")
    return Money(amount=round_to_minor_units(money.amount, currency), currency=currency)


def _allocation(
    decision: ResolutionDecided, invoice: Invoice, *, customer_id: str, facts: strategies.Facts
) -> strategies.Posting:
    if decision.payment_id is None:
        raise TransitionRefused("payment_not_named", "a payment allocation must name the payment chosen")
    payment = _customers_payment(decision.payment_id, customer_id=customer_id, facts=facts)
    remaining = strategies.remaining_of(payment)
    if remaining <= 0:
        raise TransitionRefused(
            "payment_already_applied", f"payment {payment.payment_id} has nothing left to apply"
        )
    currency = payment.amount.currency
    if currency != invoice.currency:
        raise TransitionRefused(
            "currency_mismatch",
            f"payment {payment.payment_id} is in {currency}, "
            f"invoice {invoice.invoice_id} in {invoice.currency}",
        )
    open_amount = invoice.open_amount
    if open_amount.amount <= 0:
        raise TransitionRefused("invoice_not_open", f"invoice {invoice.invoice_id} has nothing open")
    amount = (
        _in_currency("amount", decision.amount, currency, f"payment {payment.payment_id}")
        if decision.amount is not None
        else Money(amount=min(remaining, open_amount.amount), currency=currency)
    )
    if amount.amount > remaining:
        raise TransitionRefused(
            "amount_above_payment",
            f"{amount} is more than the {Money(amount=remaining, currency=currency)} "
            f"left of payment {payment.payment_id}",
        )
    if amount.amount > open_amount.amount:
        raise TransitionRefused(
            "amount_above_open",
            f"{amount} is more than the {open_amount} open on invoice {invoice.invoice_id}",
        )
    left = open_amount - amount
    return strategies.Posting(
        kind=ResolutionKind.PAYMENT_ALLOCATION,
        amount=amount,
        reason_code="payment_chosen_by_person",
        document_id=_document_id(decision, f"{payment.payment_id}>{invoice.invoice_id}"),
        invoice_id=invoice.invoice_id,
        payment_id=payment.payment_id,
        original_amount=open_amount,
        corrected_amount=left,
        explanation=_explanation(
            decision,
            f"payment {payment.payment_id} applied to invoice {invoice.invoice_id} for {amount}, "
            f"open amount from {open_amount} to {left}",
        ),
    )


def _customers_payment(payment_id: str, *, customer_id: str, facts: strategies.Facts) -> Payment:
    payment = facts.payments.get(payment_id)
    if payment is None:
        raise TransitionRefused("unknown_payment", f"payment {payment_id} is not known to resolution")
    if payment.customer_id != customer_id:
        raise TransitionRefused(
            "payment_of_another_customer", f"payment {payment_id} is not a payment of {customer_id}"
        )
    return payment


def _credit_memo(decision: ResolutionDecided, invoice: Invoice) -> strategies.Posting:
    amount = _in_currency("amount", decision.amount, invoice.currency, f"invoice {invoice.invoice_id}")
    if amount.amount > invoice.total.amount:
        raise TransitionRefused(
            "amount_above_total", f"{amount} is more than the invoice total {invoice.total}"
        )
    corrected = invoice.total - amount
    return strategies.Posting(
        kind=ResolutionKind.CREDIT_MEMO,
        amount=amount,
        reason_code="decided_by_person",
        document_id=_document_id(decision, invoice.invoice_id),
        invoice_id=invoice.invoice_id,
        original_amount=invoice.total,
        corrected_amount=corrected,
        explanation=_explanation(
            decision, f"{amount} on invoice {invoice.invoice_id} (from {invoice.total} to {corrected})"
        ),
    )


def _correction(decision: ResolutionDecided, invoice: Invoice) -> strategies.Posting:
    document = f"invoice {invoice.invoice_id}"
    if decision.corrected_amount is None:
        raise TransitionRefused("amount_missing", "an invoice correction needs the corrected amount")
    if decision.corrected_amount.currency != invoice.currency:
        raise TransitionRefused(
            "currency_mismatch",
            f"the corrected amount {decision.corrected_amount} is not in {invoice.currency}, "
            f"the currency of {document}",
        )
    corrected = Money(
        amount=round_to_minor_units(decision.corrected_amount.amount, invoice.currency),
        currency=invoice.currency,
    )
    if corrected.amount >= invoice.total.amount:
        raise TransitionRefused(
            "correction_not_a_reduction",
            f"the corrected amount {corrected} is not below the invoice total {invoice.total}",
        )
    amount = invoice.total - corrected
    return strategies.Posting(
        kind=ResolutionKind.INVOICE_CORRECTION,
        amount=amount,
        reason_code="decided_by_person",
        document_id=_document_id(decision, invoice.invoice_id),
        invoice_id=invoice.invoice_id,
        original_amount=invoice.total,
        corrected_amount=corrected,
        explanation=_explanation(
            decision, f"invoice {invoice.invoice_id} from {invoice.total} to {corrected} ({amount} less)"
        ),
    )


def _write_off(
    decision: ResolutionDecided, invoice: Invoice, tolerance: WriteOffTolerance
) -> strategies.Posting:
    open_amount = invoice.open_amount
    amount = (
        _in_currency("amount", decision.amount, invoice.currency, f"invoice {invoice.invoice_id}")
        if decision.amount is not None
        else open_amount
    )
    if open_amount.amount <= 0:
        raise TransitionRefused("invoice_not_open", f"invoice {invoice.invoice_id} has nothing open")
    if amount.amount > open_amount.amount:
        raise TransitionRefused(
            "amount_above_open",
            f"{amount} is more than the {open_amount} open on invoice {invoice.invoice_id}",
        )
    left = open_amount - amount
    return strategies.Posting(
        kind=ResolutionKind.WRITE_OFF,
        amount=amount,
        reason_code="write_off",
        document_id=_document_id(decision, invoice.invoice_id),
        invoice_id=invoice.invoice_id,
        original_amount=open_amount,
        corrected_amount=left,
        within_tolerance=tolerance.covers(amount, invoice.total),
        explanation=_explanation(
            decision, f"{amount} on invoice {invoice.invoice_id} (open amount from {open_amount} to {left})"
        ),
    )


def _refund(decision: ResolutionDecided, *, customer_id: str, facts: strategies.Facts) -> strategies.Posting:
    """A refund of a real credit: money of a payment not applied, or an invoice's negative open amount."""
    if decision.payment_id is not None:
        payment = _customers_payment(decision.payment_id, customer_id=customer_id, facts=facts)
        source, currency = f"payment {payment.payment_id}", payment.amount.currency
        credit = payment.amount.amount - sum((a.amount for a in payment.applied_to), Decimal(0))
    elif decision.invoice_id is not None:
        invoice = _invoice(decision, customer_id=customer_id, request_invoice_ids=(), facts=facts)
        source, currency, credit = (
            f"invoice {invoice.invoice_id}",
            invoice.currency,
            -invoice.open_amount.amount,
        )
    else:
        raise TransitionRefused(
            "refund_source_not_named", "a refund must name the payment or invoice whose credit is refunded"
        )
    amount = _in_currency("amount", decision.amount, currency, source)
    available = Money(amount=max(credit, Decimal(0)), currency=currency)
    if amount.amount > available.amount:
        raise TransitionRefused(
            "refund_above_credit", f"{amount} is more than the credit of {available} on {source}"
        )
    return strategies.Posting(
        kind=ResolutionKind.REFUND,
        amount=amount,
        reason_code="refund_of_credit",
        document_id=_document_id(decision, source.split(" ", 1)[1]),
        payment_id=decision.payment_id,
        invoice_id=decision.invoice_id if decision.payment_id is None else None,
        original_amount=available,
        corrected_amount=available - amount,
        explanation=_explanation(decision, f"{amount} out of the credit of {available} on {source}"),
    )
