"""Finance strategies: what to post for each type of request, from resolution's own reference views.

Pure functions, no I/O. Each takes the routed request and the facts resolution knows (the
customer, the invoices, payments and contracts of its views) and proposes one of:

- :class:`Posting`: something for the ERP to post (subject to the approval policy);
- :class:`NotSupported`: the documents do not support the claim; nothing is posted;
- :class:`ForPerson`: a colleague must decide (data missing, several candidates, ...).

What the customer says they expect is evidence, never the answer: a dispute is repriced from the
contract; a refund is limited to a real credit balance. Every proposal spells out its computation
in ``explanation``, which becomes the status message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from services.resolution.policy import WriteOffTolerance
from shared.contract import (
    Customer,
    CustomerContract,
    Invoice,
    Payment,
    RequestType,
    ResolutionKind,
)
from shared.events import RequestRouted
from shared.money import Money

CENT = Decimal("0.01")
PAYMENT_DATE_TOLERANCE_DAYS = 3
"""A payment received within this many days of a date the customer gives counts as that date."""


@dataclass(frozen=True)
class Facts:
    """What resolution's views know about the request's customer and documents."""

    customer: Customer | None
    invoices: Mapping[str, Invoice]
    contracts: Mapping[str, CustomerContract]
    payments: Mapping[str, Payment]
    """The payments the request names and the customer's unapplied payments."""


@dataclass(frozen=True)
class Posting:
    """A posting for the ERP, once the approvals the policy asks for are given."""

    kind: ResolutionKind
    amount: Money
    reason_code: str
    document_id: str
    explanation: str
    invoice_id: str | None = None
    payment_id: str | None = None
    original_amount: Money | None = None
    corrected_amount: Money | None = None
    within_tolerance: bool = False
    """A write-off within the policy's tolerance needs no approval."""


@dataclass(frozen=True)
class NotSupported:
    """The documents do not support what was asked: resolved without posting anything."""

    reason: str
    explanation: str


@dataclass(frozen=True)
class ForPerson:
    """A colleague must decide; ``explanation`` says why (and lists candidates where there are some)."""

    reason: str
    explanation: str
    awaiting: str | None = None
    """What has not reached resolution's views yet, when that is the reason: it may still come."""


Proposal = Posting | NotSupported | ForPerson


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=cents(amount), currency=currency)


def _figure(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _quantity(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


REFERENCE_DATA_MISSING = "reference_data_missing"


def _missing(what: str) -> ForPerson:
    return ForPerson(
        REFERENCE_DATA_MISSING,
        f"{what} has not reached us yet, so a colleague will check this request.",
        awaiting=what,
    )


def propose(event: RequestRouted, facts: Facts, *, write_off_tolerance: WriteOffTolerance) -> Proposal | None:
    """The strategy of the request's type, or ``None`` for types that always go to a person."""
    strategies: dict[RequestType, Callable[[RequestRouted, Facts], Proposal]] = {
        RequestType.BILLING_DISPUTE: reprice_invoice,
        RequestType.INVOICE_CORRECTION: reprice_invoice,
        RequestType.PAYMENT_QUERY: allocate_payment,
        RequestType.CREDIT_LIMIT_CHANGE: change_credit_limit,
        RequestType.REFUND: refund_credit,
        RequestType.WRITE_OFF: lambda routed, known: write_off(routed, known, write_off_tolerance),
    }
    request_type = event.details.request_type
    strategy = strategies.get(request_type) if request_type is not None else None
    return strategy(event, facts) if strategy is not None else None


def _one_invoice(event: RequestRouted, facts: Facts) -> Invoice | ForPerson:
    invoice_ids = event.details.invoice_ids
    if len(invoice_ids) != 1:
        return ForPerson(
            "several_invoices" if invoice_ids else "no_invoice",
            f"The request names {len(invoice_ids)} invoices; a colleague will handle it invoice by invoice.",
        )
    invoice = facts.invoices.get(invoice_ids[0])
    return invoice if invoice is not None else _missing(f"Invoice {invoice_ids[0]}")


def _contract_valid_on(contract: CustomerContract, day: date) -> bool:
    return contract.valid_from <= day and (contract.valid_to is None or day <= contract.valid_to)


def reprice_invoice(event: RequestRouted, facts: Facts) -> Proposal:
    """Reprice the invoice's lines at the contract prices valid on its date; credit any overcharge."""
    invoice = _one_invoice(event, facts)
    if isinstance(invoice, ForPerson):
        return invoice
    contract_id = invoice.contract_id or event.details.contract_id
    if contract_id is None:
        return ForPerson(
            "no_contract",
            f"Invoice {invoice.invoice_id} names no contract to compare its prices with; "
            "a colleague will check it.",
        )
    contract = facts.contracts.get(contract_id)
    if contract is None:
        return _missing(f"Contract {contract_id}")
    if not _contract_valid_on(contract, invoice.issued_on) or contract.currency != invoice.currency:
        return ForPerson(
            "contract_does_not_apply",
            f"Contract {contract_id} does not cover invoice {invoice.invoice_id} "
            f"({invoice.issued_on.isoformat()}, {invoice.currency}); a colleague will check it.",
        )
    if not invoice.lines:
        return ForPerson(
            "no_invoice_lines",
            f"Invoice {invoice.invoice_id} has no lines to reprice; a colleague will check it.",
        )
    prices = {price.sku: price.unit_price for price in contract.prices}
    steps: list[str] = []
    overcharge = Decimal(0)
    for line in invoice.lines:
        invoiced = f"{line.sku} {_quantity(line.quantity)} x {_figure(line.unit_price)}"
        contract_price = prices.get(line.sku)
        if contract_price is None:
            steps.append(f"{invoiced}: no contract price, unchanged")
        elif line.unit_price > contract_price:
            difference = cents(line.quantity * (line.unit_price - contract_price))
            overcharge += difference
            steps.append(f"{invoiced}, contract {_figure(contract_price)}: {_figure(difference)} too much")
        else:
            steps.append(f"{invoiced}, contract {_figure(contract_price)}: not above the contract")
    basis = (
        f"invoice {invoice.invoice_id} repriced at contract {contract.contract_id} "
        f"valid on {invoice.issued_on.isoformat()}: " + "; ".join(steps)
    )
    expected = event.details.expected_amount
    claimed = f" You expected {expected}." if expected is not None else ""
    if overcharge <= 0:
        return NotSupported(
            "claim_not_supported",
            f"We checked {basis}. The contract does not support a reduction, "
            f"so the invoice stays at {invoice.total}.{claimed}",
        )
    credit = _money(overcharge, invoice.currency)
    corrected = invoice.total - credit
    kind = (
        ResolutionKind.INVOICE_CORRECTION
        if event.details.request_type is RequestType.INVOICE_CORRECTION
        else ResolutionKind.CREDIT_MEMO
    )
    label = "a credit memo" if kind is ResolutionKind.CREDIT_MEMO else "an invoice correction"
    return Posting(
        kind=kind,
        amount=credit,
        reason_code="pricing_dispute" if kind is ResolutionKind.CREDIT_MEMO else "invoice_correction",
        document_id=invoice.invoice_id,
        invoice_id=invoice.invoice_id,
        original_amount=invoice.total,
        corrected_amount=corrected,
        explanation=(
            f"{label[0].upper()}{label[1:]} of {credit} on invoice {invoice.invoice_id} "
            f"(from {invoice.total} to {corrected}): {basis}.{claimed}"
        ),
    )


_NON_ALNUM = re.compile(r"[^A-Z0-9]")
_INVOICE_NUMBER = re.compile(r"INV\d")


def _compact(text: str) -> str:
    return _NON_ALNUM.sub("", text.upper())


def reference_fits(reference: str | None, invoice_id: str) -> bool | None:
    """Does the bank reference name this invoice (True), another one (False), or none (None)?"""
    compact = _compact(reference or "")
    if _compact(invoice_id) in compact:
        return True
    return False if _INVOICE_NUMBER.search(compact) else None


def _describe_payment(payment: Payment) -> str:
    reference = f", reference '{payment.reference}'" if payment.reference else ""
    return f"{payment.payment_id} ({payment.amount}, received {payment.received_on.isoformat()}{reference})"


def allocate_payment(event: RequestRouted, facts: Facts) -> Proposal:
    """Find the customer's one unapplied payment that matches and allocate it to the invoice."""
    invoice = _one_invoice(event, facts)
    if isinstance(invoice, ForPerson):
        return invoice
    if invoice.open_amount.amount <= 0:
        return NotSupported(
            "invoice_not_open",
            f"Invoice {invoice.invoice_id} has nothing open ({invoice.open_amount}): "
            "a payment has already been applied to it.",
        )
    details = event.details
    missing = [payment_id for payment_id in details.payment_ids if payment_id not in facts.payments]
    if missing:
        return _missing(f"Payment {missing[0]}")
    unapplied = sorted(
        (
            payment
            for payment in facts.payments.values()
            if payment.customer_id == event.customer_id
            and payment.status == "unapplied"
            and payment.amount.currency == invoice.currency
        ),
        key=lambda payment: payment.payment_id,
    )
    criteria: list[str] = []
    if details.payment_ids:
        candidates = [payment for payment in unapplied if payment.payment_id in details.payment_ids]
        criteria.append("payment " + ", ".join(details.payment_ids) + " unapplied")
    else:
        amount = details.disputed_amount or invoice.open_amount
        candidates = [payment for payment in unapplied if payment.amount.amount == amount.amount]
        criteria.append(f"amount {amount}")
        if details.mentioned_dates:
            candidates = [
                payment
                for payment in candidates
                if any(
                    abs((payment.received_on - day).days) <= PAYMENT_DATE_TOLERANCE_DAYS
                    for day in details.mentioned_dates
                )
            ]
            criteria.append(
                "received within "
                f"{PAYMENT_DATE_TOLERANCE_DAYS} days of "
                + ", ".join(day.isoformat() for day in details.mentioned_dates)
            )
        candidates = [
            payment
            for payment in candidates
            if reference_fits(payment.reference, invoice.invoice_id) is not False
        ]
        naming = [payment for payment in candidates if reference_fits(payment.reference, invoice.invoice_id)]
        candidates = naming or candidates
        criteria.append(f"bank reference naming {invoice.invoice_id} or no invoice")
    searched = "; ".join(criteria)
    if len(candidates) != 1:
        listed = candidates or unapplied
        listing = "; ".join(_describe_payment(payment) for payment in listed) or "none"
        if not candidates:
            return ForPerson(
                "payment_not_found",
                f"No unapplied payment matches invoice {invoice.invoice_id} ({searched}). "
                f"Unapplied payments of the customer: {listing}. A colleague will look into it.",
            )
        return ForPerson(
            "several_payments_match",
            f"{len(candidates)} unapplied payments could be the one for invoice {invoice.invoice_id} "
            f"({searched}): {listing}. A colleague will choose.",
        )
    (payment,) = candidates
    allocated = min(payment.amount.amount, invoice.open_amount.amount)
    allocation = _money(allocated, invoice.currency)
    remaining = invoice.open_amount - allocation
    return Posting(
        kind=ResolutionKind.PAYMENT_ALLOCATION,
        amount=allocation,
        reason_code="payment_not_posted",
        document_id=f"{payment.payment_id}>{invoice.invoice_id}",
        invoice_id=invoice.invoice_id,
        payment_id=payment.payment_id,
        original_amount=invoice.open_amount,
        corrected_amount=remaining,
        explanation=(
            f"We found your payment {_describe_payment(payment)} ({searched}) and applied {allocation} "
            f"of it to invoice {invoice.invoice_id}: open amount from {invoice.open_amount} to {remaining}."
        ),
    )


def change_credit_limit(event: RequestRouted, facts: Facts) -> Proposal:
    """A credit-limit update from the current limit in the customer master to the one requested."""
    requested = event.details.requested_credit_limit
    if requested is None:
        return ForPerson("missing_requested_limit", "The request does not say which credit limit is wanted.")
    if facts.customer is None:
        return _missing(f"The customer record of {event.customer_id}")
    current = facts.customer.credit_limit
    if current is None or current.currency != requested.currency:
        return ForPerson(
            "no_current_limit",
            f"The customer master has no {requested.currency} credit limit for {event.customer_id}; "
            "a colleague will set it.",
        )
    if requested.amount == current.amount:
        return NotSupported("limit_unchanged", f"The credit limit is already {current}; nothing to change.")
    change = requested - current
    direction = "raised" if change.amount > 0 else "lowered"
    return Posting(
        kind=ResolutionKind.CREDIT_LIMIT_UPDATE,
        amount=_money(change.amount, change.currency),
        reason_code="credit_limit_change",
        document_id=event.customer_id,
        original_amount=current,
        corrected_amount=_money(requested.amount, requested.currency),
        explanation=(
            f"Credit limit of {event.customer_id} {direction} from {current} to {requested} "
            f"(a change of {_money(change.amount, change.currency)})."
        ),
    )


def write_off(event: RequestRouted, facts: Facts, tolerance: WriteOffTolerance) -> Proposal:
    """Write off the amount asked (else the open amount); automatic within the tolerance."""
    invoice = _one_invoice(event, facts)
    if isinstance(invoice, ForPerson):
        return invoice
    asked = event.details.disputed_amount or invoice.open_amount
    if asked.currency != invoice.currency or asked.amount <= 0:
        return ForPerson(
            "amount_not_usable", f"A write-off of {asked} on invoice {invoice.invoice_id} needs a colleague."
        )
    open_amount = invoice.open_amount
    if open_amount.amount <= 0:
        return NotSupported(
            "invoice_not_open", f"Invoice {invoice.invoice_id} has nothing open to write off."
        )
    if asked.amount > open_amount.amount:
        return NotSupported(
            "amount_above_open",
            f"A write-off of {asked} is more than the {open_amount} open on invoice {invoice.invoice_id}.",
        )
    amount = _money(asked.amount, asked.currency)
    share_limit = cents(tolerance.tolerance_share * invoice.total.amount)
    within = tolerance.covers(amount.amount, invoice.total.amount)
    limit = min(tolerance.tolerance_amount, share_limit)
    remaining = open_amount - amount
    return Posting(
        kind=ResolutionKind.WRITE_OFF,
        amount=amount,
        reason_code="write_off",
        document_id=invoice.invoice_id,
        invoice_id=invoice.invoice_id,
        original_amount=open_amount,
        corrected_amount=remaining,
        within_tolerance=within,
        explanation=(
            f"Write-off of {amount} on invoice {invoice.invoice_id} (open amount from {open_amount} to "
            f"{remaining}); the automatic tolerance is the lower of "
            f"{_figure(tolerance.tolerance_amount)} and {_figure(tolerance.tolerance_share * 100)}% "
            f"of the invoice total {invoice.total}, here "
            f"{_figure(limit)}: {'within it' if within else 'above it'}."
        ),
    )


def _payment_credit(payment: Payment) -> Decimal:
    """What of a payment is not applied to any invoice: an overpayment or an unapplied payment."""
    return payment.amount.amount - sum((applied.amount for applied in payment.applied_to), Decimal(0))


def refund_credit(event: RequestRouted, facts: Facts) -> Proposal:
    """Refund only a real credit balance: unapplied payment money or an invoice's negative open amount."""
    details = event.details
    sources: list[tuple[str, Decimal, str, str]] = []  # (document, credit, currency, how)
    for payment_id in details.payment_ids:
        payment = facts.payments.get(payment_id)
        if payment is None:
            return _missing(f"Payment {payment_id}")
        sources.append((payment_id, _payment_credit(payment), payment.amount.currency, "not applied"))
    for invoice_id in details.invoice_ids:
        invoice = facts.invoices.get(invoice_id)
        if invoice is None:
            return _missing(f"Invoice {invoice_id}")
        sources.append((invoice_id, -invoice.open_amount.amount, invoice.currency, "credit balance"))
    if not details.payment_ids and not details.invoice_ids:
        own: Sequence[Payment] = sorted(
            (
                p
                for p in facts.payments.values()
                if p.customer_id == event.customer_id and p.status == "unapplied"
            ),
            key=lambda payment: payment.payment_id,
        )
        sources.extend((p.payment_id, _payment_credit(p), p.amount.currency, "not applied") for p in own)
    currencies = {currency for _, _, currency, _ in sources}
    asked = details.disputed_amount
    if asked is not None:
        currencies.add(asked.currency)
    if len(currencies) > 1:
        return ForPerson(
            "currency_mismatch", "The refund involves several currencies; a colleague will check it."
        )
    computation = "; ".join(f"{document}: {_figure(credit)} {how}" for document, credit, _, how in sources)
    credits = [(document, credit) for document, credit, _, _ in sources if credit > 0]
    available = sum((credit for _, credit in credits), Decimal(0))
    if available <= 0:
        return NotSupported(
            "no_credit_balance",
            f"We found no credit balance or overpayment to refund ({computation or 'no documents'}).",
        )
    (currency,) = currencies
    amount = _money(asked.amount if asked is not None else available, currency)
    total = _money(available, currency)
    if amount.amount > total.amount or amount.amount <= 0:
        return NotSupported(
            "refund_above_credit",
            f"You asked for a refund of {amount}, but the credit available is {total} ({computation}).",
        )
    payment_ids = [document for document, _ in credits if document in facts.payments]
    invoice_ids = [document for document, _ in credits if document in facts.invoices]
    return Posting(
        kind=ResolutionKind.REFUND,
        amount=amount,
        reason_code="refund_of_credit",
        document_id="+".join(document for document, _ in credits),
        payment_id=payment_ids[0] if payment_ids else None,
        invoice_id=invoice_ids[0] if invoice_ids else None,
        original_amount=total,
        corrected_amount=total - amount,
        explanation=f"Refund of {amount} out of a credit of {total} ({computation}).",
    )
