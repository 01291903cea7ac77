"""Validation's rules: is this request complete, about a real, active customer and its own documents?

Pure functions over the request and the reference records; the service feeds them from its own
views of the reference topics. Every check that ran is returned, passed or failed, so the audit
record can show them; a rejection carries a machine reason code and a sentence the customer can
act on.

Three outcomes: validated; rejected (the customer must act, or cannot be served); on hold (we wait
for something outside: an invoice, payment or contract the ERP has not published yet, or a KYC
verification in progress). A hold is decided again whenever what it waits for may have changed;
once ``hold_expired``, missing documents turn into rejections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeVar

from shared.contract import (
    Customer,
    CustomerContract,
    CustomerStatus,
    Invoice,
    KycStatus,
    Payment,
    RequestStatus,
    RequestType,
)
from shared.events import CheckResult, InvoiceSnapshot, RequestDetails
from shared.money import Money

MONEY_MOVING_TYPES = frozenset({RequestType.REFUND, RequestType.WRITE_OFF, RequestType.CREDIT_LIMIT_CHANGE})
INVOICE_TYPES = frozenset(
    {RequestType.BILLING_DISPUTE, RequestType.INVOICE_CORRECTION, RequestType.WRITE_OFF}
)

AWAITING_REFERENCE_DATA = "awaiting_reference_data"
KYC_PENDING = "kyc_pending"

AwaitedKind = Literal["invoice", "payment", "contract", "kyc"]


def awaited(kind: AwaitedKind, key: str) -> str:
    """How a hold names what it waits for: ``invoice:INV-2026-000123``, ``kyc:CUST-00012``."""
    return f"{kind}:{key}"


def split_awaited(item: str) -> tuple[str, str]:
    """The kind and the key of an :func:`awaited` name."""
    kind, _, key = item.partition(":")
    return kind, key


@dataclass(frozen=True)
class References:
    """The reference records a request names, as validation's views hold them now (None: unknown)."""

    invoices: Mapping[str, Invoice | None] = field(default_factory=dict)
    payments: Mapping[str, Payment | None] = field(default_factory=dict)
    contracts: Mapping[str, CustomerContract | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The outcome: validated, rejected or on hold, with every check that ran."""

    outcome: RequestStatus  # VALIDATED, REJECTED or ON_HOLD
    checks: tuple[CheckResult, ...]
    customer: Customer | None = None
    invoices: tuple[InvoiceSnapshot, ...] = ()
    reason: str | None = None
    message: str = ""
    waiting_for: tuple[str, ...] = ()


@dataclass
class _Checks:
    results: list[CheckResult] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)

    def passed(self, check: str, detail: str) -> None:
        self.results.append(CheckResult(check=check, passed=True, detail=detail))

    def failed(self, check: str, detail: str) -> None:
        self.results.append(CheckResult(check=check, passed=False, detail=detail))


class _Rejected(Exception):
    """A rule failed: control flow inside this module, it never escapes :func:`validate_request`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


def identify_customer(
    details: RequestDetails, candidates: Sequence[Customer]
) -> tuple[Customer | None, str | None, str]:
    """The customer a request is about: by id (CRM), or by the sender among the contacts (email).

    Returns the customer, or a reason code and message saying why none could be chosen. A contact
    address shared by two customers is ambiguous: we ask rather than guess.
    """
    if details.customer_id is not None:
        match = [c for c in candidates if c.customer_id == details.customer_id]
        if match:
            return match[0], None, ""
        return None, "unknown_customer", f"We do not know a customer account {details.customer_id}."
    if len(candidates) == 1:
        return candidates[0], None, ""
    if not candidates:
        return (
            None,
            "unknown_sender",
            "We could not match your email address to a customer account; please write from the "
            "address we have on file or use the customer portal.",
        )
    return (
        None,
        "ambiguous_sender",
        "Your email address belongs to more than one customer account; please tell us the account "
        "number or use the customer portal.",
    )


def decide(
    details: RequestDetails,
    candidates: Sequence[Customer],
    references: References,
    *,
    today: date,
    hold_expired: bool = False,
) -> Verdict:
    """The verdict on a request, given the customers it may be about and the documents it names."""
    customer, reason, message = identify_customer(details, candidates)
    if customer is None:
        return Verdict(
            RequestStatus.REJECTED,
            (CheckResult(check="customer_exists", passed=False, detail=message),),
            reason=reason,
            message=message,
        )
    return validate_request(details, customer, references, today=today, hold_expired=hold_expired)


def validate_request(
    details: RequestDetails,
    customer: Customer,
    references: References,
    *,
    today: date,
    hold_expired: bool = False,
) -> Verdict:
    """Check a request whose customer is known: account, completeness, KYC, documents, amounts."""
    checks = _Checks()
    checks.passed("customer_exists", f"customer {customer.customer_id} ({customer.name})")
    snapshots: list[InvoiceSnapshot] = []
    try:
        _check_account(customer, checks)
        _check_complete(details, checks)
        if details.request_type in MONEY_MOVING_TYPES:
            _check_kyc(details, customer, checks, today)
        invoices = _known_and_owned(
            "invoice",
            details.invoice_ids,
            references.invoices,
            customer,
            checks,
            hold_expired=hold_expired,
            describe=lambda invoice: f"{invoice.invoice_id} total {invoice.total}, {invoice.status}",
        )
        payments = _known_and_owned(
            "payment",
            details.payment_ids,
            references.payments,
            customer,
            checks,
            hold_expired=hold_expired,
            describe=lambda payment: f"{payment.payment_id} of {payment.amount}, {payment.status}",
        )
        _check_contracts(details, customer, invoices, references, checks, hold_expired=hold_expired)
        _check_amounts(details, customer, invoices, payments, checks)
        snapshots = [_snapshot(invoice) for invoice in invoices]
    except _Rejected as rejection:
        return Verdict(
            RequestStatus.REJECTED,
            tuple(checks.results),
            customer,
            reason=rejection.reason,
            message=rejection.message,
        )
    if checks.waiting_for:
        return _hold(customer, checks)
    return Verdict(
        RequestStatus.VALIDATED,
        tuple(checks.results),
        customer,
        tuple(snapshots),
        message="Your request has been checked and is being assigned to a team.",
    )


def _hold(customer: Customer, checks: _Checks) -> Verdict:
    kinds = {split_awaited(item)[0] for item in checks.waiting_for}
    documents = [split_awaited(item) for item in checks.waiting_for if not item.startswith("kyc:")]
    parts = [f"{kind} {key}" for kind, key in documents]
    if kinds == {"kyc"}:
        reason = KYC_PENDING
        message = (
            "Your account verification is still in progress; we will continue as soon as it is complete."
        )
    else:
        reason = AWAITING_REFERENCE_DATA
        message = (
            f"We cannot find {_join(parts)} in our records yet; we will continue as soon as "
            "it reaches us, or tell you if it does not."
        )
        if "kyc" in kinds:
            message += " Your account verification is also still in progress."
    return Verdict(
        RequestStatus.ON_HOLD,
        tuple(checks.results),
        customer,
        reason=reason,
        message=message,
        waiting_for=tuple(checks.waiting_for),
    )


def hold_expired(waiting_for: Sequence[str], reject_after: datetime, *, now: datetime) -> bool:
    """Past its time limit while waiting for a document (a wait for KYC alone has no limit)."""
    waits_for_documents = any(split_awaited(item)[0] != "kyc" for item in waiting_for)
    return waits_for_documents and now >= reject_after


def wait_may_be_over(
    waiting_for: Sequence[str], customers: Mapping[str, Customer], known: References
) -> bool:
    """Has anything a hold waits for arrived (a document) or changed (a KYC no longer pending)?"""
    documents: dict[str, Mapping[str, object | None]] = {
        "invoice": known.invoices,
        "payment": known.payments,
        "contract": known.contracts,
    }
    for item in waiting_for:
        kind, key = split_awaited(item)
        if kind == "kyc":
            customer = customers.get(key)
            if customer is not None and customer.kyc_status is not KycStatus.PENDING:
                return True
        elif documents.get(kind, {}).get(key) is not None:
            return True
    return False


def _check_account(customer: Customer, checks: _Checks) -> None:
    if customer.status is not CustomerStatus.ACTIVE:
        checks.failed("customer_active", f"customer status is {customer.status.value}")
        raise _Rejected(
            f"customer_{customer.status.value}",
            f"Your customer account is {customer.status.value}; please contact your account manager.",
        )
    checks.passed("customer_active", "customer status is active")


def missing_pieces(details: RequestDetails) -> tuple[str, str] | None:
    """What a request of its type must name and does not: a reason code and the missing words.

    A dispute, correction or write-off names an invoice; a credit-limit change the new limit; a
    payment query a payment, or the amount and the date paid; a refund what is to be refunded.
    """
    request_type = details.request_type
    if request_type in INVOICE_TYPES and not details.invoice_ids:
        return "missing_invoice", "the number of the invoice this request is about"
    if request_type is RequestType.CREDIT_LIMIT_CHANGE and details.requested_credit_limit is None:
        return "missing_requested_limit", "the new credit limit you ask for, with its currency"
    if request_type is RequestType.PAYMENT_QUERY and not details.payment_ids:
        has_amount = details.disputed_amount is not None or bool(details.mentioned_amounts)
        has_date = bool(details.mentioned_dates)
        if has_amount and not has_date:
            return "missing_payment_details", "the date you made the payment"
        if has_date and not has_amount:
            return "missing_payment_details", "the amount you paid, with its currency"
        if not (has_amount and has_date):
            return (
                "missing_payment_details",
                "the payment's reference number, or the amount and the date you paid",
            )
    if request_type is RequestType.REFUND and not (
        details.invoice_ids or details.payment_ids or details.disputed_amount or details.mentioned_amounts
    ):
        return (
            "missing_refund_details",
            "what is to be refunded: the invoice or payment number, or the amount",
        )
    return None


def _check_complete(details: RequestDetails, checks: _Checks) -> None:
    missing = missing_pieces(details)
    request_type = details.request_type.value if details.request_type else "unclassified"
    if missing is None:
        checks.passed("request_complete", f"{request_type}: everything its type needs is named")
        return
    reason, words = missing
    checks.failed("request_complete", f"{request_type}: missing {words}")
    raise _Rejected(reason, f"Please tell us {words}, so that we can handle your request.")


def _check_kyc(details: RequestDetails, customer: Customer, checks: _Checks, today: date) -> None:
    expired = customer.kyc_expires_on is not None and customer.kyc_expires_on < today
    if customer.kyc_status is KycStatus.VERIFIED and not expired:
        checks.passed("kyc_verified", f"KYC verified until {customer.kyc_expires_on or 'no expiry'}")
        return
    if customer.kyc_status is KycStatus.PENDING:
        checks.failed("kyc_verified", "KYC verification is pending")
        checks.waiting_for.append(awaited("kyc", customer.customer_id))
        return
    status = "expired" if expired or customer.kyc_status is KycStatus.EXPIRED else customer.kyc_status.value
    checks.failed("kyc_verified", f"KYC is {status}")
    request_type = details.request_type.value.replace("_", " ") if details.request_type else "request"
    raise _Rejected(
        f"kyc_{status}",
        f"We cannot process a {request_type} while your account verification is {status}; "
        "please renew it with your account manager.",
    )


DocumentT = TypeVar("DocumentT", Invoice, Payment, CustomerContract)


def _known_and_owned(
    kind: AwaitedKind,
    keys: Iterable[str],
    records: Mapping[str, DocumentT | None],
    customer: Customer,
    checks: _Checks,
    *,
    hold_expired: bool,
    describe: Callable[[DocumentT], str],
) -> list[DocumentT]:
    """The named documents that exist and are the customer's; an unknown one is waited for."""
    known: list[DocumentT] = []
    for key in keys:
        record = records.get(key)
        if record is None:
            _unknown_document(kind, key, checks, hold_expired=hold_expired)
            continue
        if record.customer_id != customer.customer_id:
            checks.failed(f"{kind}_owned", f"{key} belongs to another customer")
            raise _Rejected(
                f"{kind}_not_owned",
                f"{kind.capitalize()} {key} is not on your account; please check the number.",
            )
        checks.passed(f"{kind}_exists", describe(record))
        known.append(record)
    return known


def _check_contracts(
    details: RequestDetails,
    customer: Customer,
    invoices: list[Invoice],
    references: References,
    checks: _Checks,
    *,
    hold_expired: bool,
) -> None:
    named = dict.fromkeys(
        [
            *([details.contract_id] if details.contract_id else []),
            *(i.contract_id for i in invoices if i.contract_id),
        ]
    )
    contracts = {
        contract.contract_id: contract
        for contract in _known_and_owned(
            "contract",
            named,
            references.contracts,
            customer,
            checks,
            hold_expired=hold_expired,
            describe=lambda contract: f"{contract.contract_id} valid {_validity(contract)}",
        )
    }
    for invoice in invoices:
        contract = contracts.get(invoice.contract_id or "")
        if contract is None:
            continue
        covered = contract.valid_from <= invoice.issued_on and (
            contract.valid_to is None or invoice.issued_on <= contract.valid_to
        )
        if not covered:
            checks.failed(
                "contract_covers_invoice",
                f"{invoice.invoice_id} issued {invoice.issued_on}, contract {contract.contract_id} "
                f"valid {_validity(contract)}",
            )
            raise _Rejected(
                "invoice_outside_contract",
                f"Invoice {invoice.invoice_id} is dated {invoice.issued_on}, outside contract "
                f"{contract.contract_id} (valid {_validity(contract)}); please check the documents.",
            )
        checks.passed(
            "contract_covers_invoice",
            f"{invoice.invoice_id} issued {invoice.issued_on} within {contract.contract_id}",
        )


def _unknown_document(kind: AwaitedKind, key: str, checks: _Checks, *, hold_expired: bool) -> None:
    """A document we do not know yet: wait for it, or once the hold has expired, reject."""
    checks.failed(f"{kind}_exists", f"{key} is not known")
    if hold_expired:
        raise _Rejected(f"unknown_{kind}", f"We cannot find {kind} {key}; please check the number.")
    checks.waiting_for.append(awaited(kind, key))


def _check_amounts(
    details: RequestDetails,
    customer: Customer,
    invoices: list[Invoice],
    payments: list[Payment],
    checks: _Checks,
) -> None:
    invoice_currencies = {invoice.total.currency for invoice in invoices}
    for payment in payments:
        if invoice_currencies and payment.amount.currency not in invoice_currencies:
            _currency_mismatch(
                checks, f"payment {payment.payment_id}", payment.amount, "the invoice", invoice_currencies
            )
    for label, amount in (
        ("disputed amount", details.disputed_amount),
        ("expected amount", details.expected_amount),
    ):
        if amount is None:
            continue
        if invoice_currencies and amount.currency not in invoice_currencies:
            _currency_mismatch(checks, f"the {label}", amount, "the invoice", invoice_currencies)
        if label == "expected amount":
            if amount.amount < 0:
                checks.failed("amount_in_range", f"expected {amount} is negative")
                raise _Rejected("amount_out_of_range", "The amount you expect cannot be negative.")
            checks.passed("amount_in_range", f"expected {amount} is not negative")
            continue
        total = _total_in(invoices, amount.currency)
        if amount.amount <= 0 or (total is not None and amount.amount > total):
            limit = f" and at most the invoice total of {Money(amount=total, currency=amount.currency)}"
            checks.failed("amount_in_range", f"disputed {amount}, invoice total {total}")
            raise _Rejected(
                "amount_out_of_range",
                f"The disputed amount must be more than zero{limit if total is not None else ''}.",
            )
        checks.passed("amount_in_range", f"disputed {amount} within invoice total {total}")
    requested = details.requested_credit_limit
    if requested is not None:
        current = customer.credit_limit
        if current is not None and requested.currency != current.currency:
            _currency_mismatch(
                checks, "the requested credit limit", requested, "your credit limit", {current.currency}
            )
        if requested.amount <= 0:
            checks.failed("amount_in_range", f"requested credit limit {requested} is not positive")
            raise _Rejected("amount_out_of_range", "The credit limit you ask for must be more than zero.")
        checks.passed("amount_in_range", f"requested credit limit {requested}, current {current or 'none'}")


def _currency_mismatch(checks: _Checks, what: str, amount: Money, against: str, currencies: set[str]) -> None:
    expected = "/".join(sorted(currencies))
    checks.failed("currency_matches", f"{what} in {amount.currency}, {against} in {expected}")
    raise _Rejected(
        "currency_mismatch", f"{what.capitalize()} is in {amount.currency} but {against} is in {expected}."
    )


def _total_in(invoices: list[Invoice], currency: str) -> Decimal | None:
    totals = [invoice.total.amount for invoice in invoices if invoice.total.currency == currency]
    return sum(totals, Decimal(0)) if totals else None


def _snapshot(invoice: Invoice) -> InvoiceSnapshot:
    return InvoiceSnapshot(
        invoice_id=invoice.invoice_id,
        total=invoice.total,
        open_amount=invoice.open_amount,
        status=invoice.status,
    )


def _validity(contract: CustomerContract) -> str:
    return f"{contract.valid_from} to {contract.valid_to or 'open end'}"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# --------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------

DuplicateCriterion = Literal["type", "invoice", "payment"]


@dataclass(frozen=True)
class DuplicateRule:
    """When a new request repeats an open one of the same customer (configuration).

    Every criterion must hold: ``type`` the same request type, ``invoice`` at least one invoice in
    common, ``payment`` at least one payment in common. A request that names nothing a document
    criterion needs is never a duplicate: two general questions are two questions.
    """

    window: timedelta
    criteria: tuple[DuplicateCriterion, ...] = ("type", "invoice")


@dataclass(frozen=True)
class OpenRequest:
    """A request validation passed on that has not been closed or rejected since."""

    request_id: str
    customer_id: str
    request_type: RequestType | None
    invoice_ids: tuple[str, ...]
    payment_ids: tuple[str, ...]
    opened_at: datetime


def find_duplicate(
    request_id: str,
    customer_id: str,
    details: RequestDetails,
    open_requests: Sequence[OpenRequest],
    rule: DuplicateRule,
    *,
    now: datetime,
) -> OpenRequest | None:
    """The earliest open request of the same customer this one repeats, if any."""
    matches = [
        earlier
        for earlier in open_requests
        if earlier.request_id != request_id
        and earlier.customer_id == customer_id
        and earlier.opened_at >= now - rule.window
        and all(_matches(criterion, earlier, details) for criterion in rule.criteria)
    ]
    return min(matches, key=lambda earlier: earlier.opened_at, default=None)


def _matches(criterion: DuplicateCriterion, earlier: OpenRequest, details: RequestDetails) -> bool:
    if criterion == "type":
        return details.request_type is not None and earlier.request_type == details.request_type
    if criterion == "invoice":
        return bool(set(earlier.invoice_ids) & set(details.invoice_ids))
    return bool(set(earlier.payment_ids) & set(details.payment_ids))


def duplicate_message(earlier: OpenRequest) -> str:
    return (
        f"This repeats your open request {earlier.request_id}; we have linked the two and will answer "
        "there, so nothing is handled twice."
    )
