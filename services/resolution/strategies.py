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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from services.resolution.policy import WriteOffTolerance
from shared.contract import (
    Customer,
    CustomerContract,
    Invoice,
    Payment,
    RequestType,
    ResolutionKind,
)
from shared.document_numbers import find_document_numbers, reference_numbers, same_number
from shared.events import RequestRouted
from shared.money import Money, format_amount, round_to_minor_units

PAYMENT_DATE_TOLERANCE_DAYS = 3
"""A payment received within this many days of a date the customer gives counts as that date."""


@dataclass(frozen=True)
class Facts:
    """What resolution's views know about the request's customer and documents."""

    customer: Customer | None
    invoices: Mapping[str, Invoice]
    contracts: Mapping[str, CustomerContract]
    payments: Mapping[str, Payment]
    """The payments the request names and the customer's unapplied and partly applied payments."""
    invoices_by_number: Mapping[str, Sequence[Invoice]] = field(default_factory=dict)
    """The customer's invoices named by each number in those payments' bank references."""


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
class Postings:
    """Several postings for one request (a dispute over several invoices, a payment split across the
    invoices its reference names): approved together, each with its own stable resolution id."""

    postings: tuple[Posting, ...]
    explanation: str


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
    candidates: tuple[str, ...] = ()
    """The documents a person can choose from (payments that could be the one), kept with the request."""


Proposal = Posting | Postings | NotSupported | ForPerson


def _money(amount: Decimal, currency: str) -> Money:
    """``amount`` as money of ``currency``, rounded half up to its minor units (yen whole, dinars 3)."""
    return Money(amount=round_to_minor_units(amount, currency), currency=currency)


def _figure(amount: Decimal, currency: str | None) -> str:
    """An amount of ``currency`` in an explanation: as many decimals as the currency has (two when
    the currency is not known)."""
    return format_amount(amount, currency) if currency else f"{amount:,.2f}"


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
    """Reprice each invoice named at the contract prices valid on its date; credit any overcharge.

    Invoice by invoice: one posting for each invoice above its contract, none for those that are
    not. When any of several invoices lacks data the request waits for it; when any needs a person,
    the whole request goes to one, with what was computed for the others: a dispute is never half
    answered.
    """
    invoice_ids = event.details.invoice_ids
    if not invoice_ids:
        return ForPerson("no_invoice", "The request names no invoice; a colleague will handle it.")
    if len(invoice_ids) == 1:
        return _reprice_one(event, facts, invoice_ids[0], expected=event.details.expected_amount)
    outcomes = [_reprice_one(event, facts, invoice_id, expected=None) for invoice_id in invoice_ids]
    waiting = [outcome for outcome in outcomes if isinstance(outcome, ForPerson) and outcome.awaiting]
    if waiting:
        return waiting[0]
    summary = " ".join(
        f"Invoice {invoice_id}: {outcome.explanation}"
        for invoice_id, outcome in zip(invoice_ids, outcomes, strict=True)
    )
    expected = event.details.expected_amount
    summary += f" You expected {expected} in all." if expected is not None else ""
    for_person = [outcome for outcome in outcomes if isinstance(outcome, ForPerson)]
    if for_person:
        return ForPerson(for_person[0].reason, f"{summary} A colleague will finish this request.")
    postings = tuple(outcome for outcome in outcomes if isinstance(outcome, Posting))
    if not postings:
        return NotSupported("claim_not_supported", f"{summary} Nothing is credited.")
    corrected = _listing([posting.document_id for posting in postings])
    unchanged = [invoice_id for invoice_id, outcome in zip(invoice_ids, outcomes, strict=True)
                 if isinstance(outcome, NotSupported)]  # fmt: skip
    kept = (
        f"; {_listing(unchanged)} stay{'s' if len(unchanged) == 1 else ''} as invoiced" if unchanged else ""
    )
    return Postings(
        postings, f"Corrected invoice{'s' if len(postings) > 1 else ''} {corrected}{kept}. {summary}"
    )


def _listing(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _reprice_one(
    event: RequestRouted, facts: Facts, invoice_id: str, *, expected: Money | None
) -> Posting | NotSupported | ForPerson:
    """Reprice one invoice's lines at its contract's prices valid on the invoice date."""
    invoice = facts.invoices.get(invoice_id)
    if invoice is None:
        return _missing(f"Invoice {invoice_id}")
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
        invoiced = f"{line.sku} {_quantity(line.quantity)} x {_figure(line.unit_price, invoice.currency)}"
        contract_price = prices.get(line.sku)
        if contract_price is None:
            steps.append(f"{invoiced}: no contract price, unchanged")
        elif line.unit_price > contract_price:
            difference = round_to_minor_units(
                line.quantity * (line.unit_price - contract_price), invoice.currency
            )
            overcharge += difference
            steps.append(
                f"{invoiced}, contract {_figure(contract_price, invoice.currency)}: "
                f"{_figure(difference, invoice.currency)} too much"
            )
        else:
            steps.append(
                f"{invoiced}, contract {_figure(contract_price, invoice.currency)}: not above the contract"
            )
    basis = (
        f"invoice {invoice.invoice_id} repriced at contract {contract.contract_id} "
        f"valid on {invoice.issued_on.isoformat()}: " + "; ".join(steps)
    )
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


def reference_fits(reference: str | None, invoice_id: str) -> bool | None:
    """Does the bank reference name this invoice (True), another one (False), or none (None)?

    Numbers are compared normalised (``RE 2026 42`` names ``RE/2026/0042``). "Another one" is a
    number behind an invoice word or code (``INV-9``, ``Rechnung 4712``) that is not this invoice.
    """
    if not reference:
        return None
    if any(same_number(number, invoice_id) for number in reference_numbers(reference)):
        return True
    return False if find_document_numbers(reference, "invoice") else None


def remaining_of(payment: Payment) -> Decimal:
    """What of a payment is not applied yet. An ``applied`` payment that lists no applications is
    taken as applied in full; an unapplied one as open in full."""
    if not payment.applied_to:
        return payment.amount.amount if payment.status == "unapplied" else Decimal(0)
    return payment.amount.amount - sum((applied.amount for applied in payment.applied_to), Decimal(0))


def _describe_payment(payment: Payment) -> str:
    reference = f", reference '{payment.reference}'" if payment.reference else ""
    remaining = remaining_of(payment)
    currency = payment.amount.currency
    unapplied = (
        "" if remaining == payment.amount.amount else f", {_figure(remaining, currency)} of it unapplied"
    )
    return (
        f"{payment.payment_id} ({payment.amount}, received {payment.received_on.isoformat()}"
        f"{reference}{unapplied})"
    )


@dataclass(frozen=True)
class _Candidate:
    """A payment that could be the one, with what speaks for it."""

    payment: Payment
    remaining: Decimal
    names: tuple[Invoice, ...]  # the customer's invoices its bank reference names, in its order
    names_ours: bool
    names_other: bool
    amount_fits: bool
    date_fits: bool | None  # None: no date to compare with


def _invoices_named_by(payment: Payment, facts: Facts, customer_id: str) -> tuple[Invoice, ...]:
    named: dict[str, Invoice] = {}
    for number in reference_numbers(payment.reference or ""):
        for invoice in facts.invoices_by_number.get(number, ()):
            if invoice.customer_id == customer_id:
                named.setdefault(invoice.invoice_id, invoice)
    return tuple(named.values())


def allocate_payment(event: RequestRouted, facts: Facts) -> Proposal:
    """Find the payment the customer means, the way a cash application team would, and allocate it.

    Candidates are the customer's unapplied and partly applied payments in the invoices' currency
    (or the ones the request names). They are ranked by what speaks for them: a bank reference
    naming the invoice (normalised numbers), then the amount (what the customer says they paid,
    else the disputed amount, else the invoices' open amount) together with the date (within
    :data:`PAYMENT_DATE_TOLERANCE_DAYS` of a date the customer gives), then the amount alone when
    no date is known. A reference naming other invoices only rules a payment out. The best rank
    with exactly one payment wins; several go to a person with the candidates listed; none means
    the payment may not be posted yet: the request waits for it (``awaiting``), then goes to a person.

    The payment is allocated invoice by invoice, in the order its reference names them (else the
    request's), each for at most its open amount: a smaller payment leaves the invoice partly open,
    one naming several invoices is split across them.
    """
    details = event.details
    invoices: list[Invoice] = []
    for invoice_id in details.invoice_ids:
        invoice = facts.invoices.get(invoice_id)
        if invoice is None:
            return _missing(f"Invoice {invoice_id}")
        invoices.append(invoice)
    missing = [payment_id for payment_id in details.payment_ids if payment_id not in facts.payments]
    if missing:
        return _missing(f"Payment {missing[0]}")
    open_invoices = [invoice for invoice in invoices if invoice.open_amount.amount > 0]
    if invoices and not open_invoices:
        listed = _listing([f"{invoice.invoice_id} ({invoice.open_amount})" for invoice in invoices])
        return NotSupported(
            "invoice_not_open",
            f"Invoice {listed} has nothing open: a payment has already been applied to it.",
        )
    currency = invoices[0].currency if invoices else None
    unapplied = sorted(
        (
            payment
            for payment in facts.payments.values()
            if payment.customer_id == event.customer_id
            and remaining_of(payment) > 0
            and (currency is None or payment.amount.currency == currency)
        ),
        key=lambda payment: (payment.received_on, payment.payment_id),
    )
    targets, target_words = _target_amounts(event, open_invoices)
    dates = (details.payment_date,) if details.payment_date else details.mentioned_dates
    pool = [p for p in unapplied if p.payment_id in details.payment_ids] if details.payment_ids else unapplied
    candidates = [
        _candidate(
            payment,
            open_invoices=open_invoices,
            targets=targets,
            dates=dates,
            facts=facts,
            customer_id=event.customer_id,
        )
        for payment in pool
    ]
    ranked, searched = _rank(candidates, details.payment_ids, target_words, dates, open_invoices)
    if len(ranked) == 1:
        return _allocation(ranked[0], open_invoices, searched)
    subject = (
        f"invoice {_listing([i.invoice_id for i in open_invoices])}" if open_invoices else "your request"
    )
    if ranked:
        listing = "; ".join(_describe_payment(candidate.payment) for candidate in ranked)
        return ForPerson(
            "several_payments_match",
            f"{len(ranked)} payments could be the one for {subject} ({searched}): {listing}. "
            "A colleague will choose.",
            candidates=tuple(candidate.payment.payment_id for candidate in ranked),
        )
    listing = "; ".join(_describe_payment(payment) for payment in unapplied) or "none"
    return ForPerson(
        "payment_not_found",
        f"No unapplied payment matches {subject} ({searched}). Unapplied and partly applied payments "
        f"of the customer: {listing}. A colleague will look into it.",
        awaiting=f"A payment matching {subject} ({searched})",
        candidates=tuple(payment.payment_id for payment in unapplied),
    )


def _target_amounts(event: RequestRouted, open_invoices: Sequence[Invoice]) -> tuple[set[Decimal], str]:
    """The amounts a payment for this request could be, and how the search says so."""
    details = event.details
    currency = open_invoices[0].currency if open_invoices else None
    paid: Decimal | None = None
    if details.paid_amount is not None:
        paid, currency = details.paid_amount.amount, details.paid_amount.currency
    else:
        stated = next((stated for stated in details.stated_amounts if stated.role == "paid"), None)
        if stated is not None:
            paid, currency = stated.amount, stated.currency or currency
    if paid is not None:
        return {paid}, f"amount {_figure(paid, currency)} paid"
    if details.disputed_amount is not None:
        return {details.disputed_amount.amount}, f"amount {details.disputed_amount}"
    opens = [invoice.open_amount.amount for invoice in open_invoices]
    if not opens:
        return set(), "no amount"
    total = sum(opens, Decimal(0))
    figure = _figure(total, currency)
    words = f"open amount {figure}" if len(opens) == 1 else f"open amounts {figure} in all"
    return {total, *opens}, words


def _candidate(
    payment: Payment,
    *,
    open_invoices: Sequence[Invoice],
    targets: set[Decimal],
    dates: Sequence[date],
    facts: Facts,
    customer_id: str,
) -> _Candidate:
    names = _invoices_named_by(payment, facts, customer_id)
    ours = {invoice.invoice_id for invoice in open_invoices}
    fits = [reference_fits(payment.reference, invoice_id) for invoice_id in ours]
    names_ours = any(invoice.invoice_id in ours for invoice in names) or any(fit is True for fit in fits)
    names_other = not names_ours and (bool(names) or any(fit is False for fit in fits))
    date_fits = (
        any(abs((payment.received_on - day).days) <= PAYMENT_DATE_TOLERANCE_DAYS for day in dates)
        if dates
        else None
    )
    return _Candidate(
        payment=payment,
        remaining=remaining_of(payment),
        names=names,
        names_ours=names_ours,
        names_other=names_other and bool(open_invoices),
        amount_fits=remaining_of(payment) in targets,
        date_fits=date_fits,
    )


def _rank(
    candidates: Sequence[_Candidate],
    named_payments: Sequence[str],
    target_words: str,
    dates: Sequence[date],
    open_invoices: Sequence[Invoice],
) -> tuple[list[_Candidate], str]:
    """The candidates of the best rank that has any, and the search that found them, in words."""
    if named_payments:
        return list(candidates), "payment " + ", ".join(named_payments) + " named"
    when = ", ".join(day.isoformat() for day in dates)
    date_words = f"received within {PAYMENT_DATE_TOLERANCE_DAYS} days of {when}"
    numbers = _listing([invoice.invoice_id for invoice in open_invoices]) if open_invoices else ""
    ranks: list[tuple[str, list[_Candidate]]] = [
        (
            f"bank reference naming {numbers}",
            [
                c
                for c in candidates
                if open_invoices and c.names_ours and (c.date_fits is not False or c.amount_fits)
            ],
        ),
        (
            f"{target_words}, {date_words}",
            [c for c in candidates if c.amount_fits and c.date_fits and not c.names_other],
        ),
        (
            f"{target_words}, no date given",
            [c for c in candidates if c.amount_fits and c.date_fits is None and not c.names_other],
        ),
    ]
    for words, ranked in ranks:
        if ranked:
            return ranked, words
    tried = [f"bank reference naming {numbers}"] if open_invoices else []
    tried.append(f"{target_words}" + (f", {date_words}" if dates else ""))
    return [], "; ".join(tried)


def _allocation(candidate: _Candidate, open_invoices: Sequence[Invoice], searched: str) -> Proposal:
    """The payment applied invoice by invoice, each for at most its open amount."""
    payment = candidate.payment
    in_currency = [invoice for invoice in candidate.names if invoice.currency == payment.amount.currency]
    targets = [invoice for invoice in in_currency if invoice.open_amount.amount > 0] or list(open_invoices)
    if not targets:
        return ForPerson(
            "payment_found_no_invoice",
            f"We found your payment {_describe_payment(payment)} ({searched}), but it names no open invoice "
            "of yours; a colleague will apply it.",
            candidates=(payment.payment_id,),
        )
    left = candidate.remaining
    postings: list[Posting] = []
    for invoice in targets:
        allocated = min(left, invoice.open_amount.amount)
        if allocated <= 0:
            break
        left -= allocated
        allocation = _money(allocated, invoice.currency)
        remaining = invoice.open_amount - allocation
        postings.append(
            Posting(
                kind=ResolutionKind.PAYMENT_ALLOCATION,
                amount=allocation,
                reason_code="payment_not_posted",
                document_id=f"{payment.payment_id}>{invoice.invoice_id}",
                invoice_id=invoice.invoice_id,
                payment_id=payment.payment_id,
                original_amount=invoice.open_amount,
                corrected_amount=remaining,
                explanation=(
                    f"{allocation} to invoice {invoice.invoice_id}: open amount from {invoice.open_amount} "
                    f"to {remaining}"
                ),
            )
        )
    found = f"We found your payment {_describe_payment(payment)} ({searched}) and applied "
    if len(postings) == 1:
        (posting,) = postings
        return replace(posting, explanation=f"{found}{posting.explanation}.")
    split = "; ".join(posting.explanation for posting in postings)
    order = "in the order of its bank reference" if candidate.names else "in the order of your request"
    return Postings(tuple(postings), f"{found}it across {len(postings)} invoices, {order}: {split}.")


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
    tolerated = tolerance.check(amount, invoice.total)
    remaining = open_amount - amount
    return Posting(
        kind=ResolutionKind.WRITE_OFF,
        amount=amount,
        reason_code="write_off",
        document_id=invoice.invoice_id,
        invoice_id=invoice.invoice_id,
        original_amount=open_amount,
        corrected_amount=remaining,
        within_tolerance=tolerated.within,
        explanation=(
            f"Write-off of {amount} on invoice {invoice.invoice_id} (open amount from {open_amount} to "
            f"{remaining}); {tolerated.explanation}."
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
    computation = "; ".join(
        f"{document}: {_figure(credit, currency)} {how}" for document, credit, currency, how in sources
    )
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
