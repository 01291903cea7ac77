"""Validation's rules: is this request complete, about a real, active customer and its own documents?

Pure functions over the request and the reference records; the service feeds them from its own
views of the reference topics. Every check that ran is returned, passed or failed, so the audit
record can show them; a rejection carries a machine reason code and a sentence the customer can
act on.

Three outcomes: validated; rejected (the customer cannot be served, or must act in a way answering
cannot fix); on hold (we wait for something outside: an invoice, payment or contract the ERP has
not published yet, a KYC verification in progress, or the customer, who must answer a question:
which of two invoices, which invoice at all). A hold is decided again whenever what it waits for
may have changed; once ``hold_expired``, missing documents turn into rejections.

The documents a request names are found among the customer's own by :mod:`.documents`: numbers
in any format, from structured fields and from the text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

from services.validation.documents import NamedDocuments, name_documents
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
from shared.document_numbers import same_number
from shared.events import MAX_STATED_AMOUNTS, CheckResult, InvoiceSnapshot, RequestDetails
from shared.money import Money

MONEY_MOVING_TYPES = frozenset({RequestType.REFUND, RequestType.WRITE_OFF, RequestType.CREDIT_LIMIT_CHANGE})
INVOICE_TYPES = frozenset(
    {RequestType.BILLING_DISPUTE, RequestType.INVOICE_CORRECTION, RequestType.WRITE_OFF}
)

AWAITING_REFERENCE_DATA = "awaiting_reference_data"
AWAITING_CUSTOMER = "awaiting_customer"
KYC_PENDING = "kyc_pending"

AwaitedKind = Literal[
    "invoice",
    "payment",
    "contract",
    "kyc",
    "customer",
    "invoice_number",
    "payment_number",
    "invoice_choice",
    "payment_choice",
]
DOCUMENT_KINDS = frozenset({"invoice", "payment", "contract"})
"""What a hold waits for that the ERP sends: after the hold's time limit, an unknown document."""


def awaited(kind: AwaitedKind, key: str) -> str:
    """How a hold names what it waits for.

    ``invoice:INV-2026-000123`` (a document by its id), ``kyc:CUST-00012``, ``customer:which_invoice``
    (an answer from the customer: ``invoice``, ``which_invoice``, ``which_payment``,
    ``payment_details``), ``invoice_number:4711`` (a number from the text that names none of the
    customer's invoices yet: the hold is decided again when one with that number arrives),
    ``invoice_choice:RE-42`` (one of the invoices a number matched ambiguously: the customer's
    answer picks one of them).
    """
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
    invoices_by_number: Mapping[str, Sequence[Invoice]] = field(default_factory=dict)
    """Every invoice (of any customer) whose normalised number matches each number looked up."""
    payments_by_number: Mapping[str, Sequence[Payment]] = field(default_factory=dict)


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
    details: RequestDetails | None = None
    """The request as validation understood it: the documents it names by their ERP ids, amounts
    from the text in the invoices' currency. What goes on to routing when validated."""


@dataclass
class _Checks:
    results: list[CheckResult] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    """Questions for the customer, each a sentence: the request waits for the answer."""

    def ask(self, what: str, question: str, *also_waiting_for: str) -> None:
        self.waiting_for.extend([awaited("customer", what), *also_waiting_for])
        self.questions.append(question)

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
    """Check a request whose customer is known: account, documents named, completeness, KYC,
    documents, amounts.

    A rejection wins over a question to the customer, which wins over waiting for reference data
    or KYC: what cannot be fixed is said first, and a customer is asked before we wait.
    """
    checks = _Checks()
    checks.passed("customer_exists", f"customer {customer.customer_id} ({customer.name})")
    snapshots: list[InvoiceSnapshot] = []
    understood = details
    try:
        _check_account(customer, checks)
        named_invoices = _named_invoices(details, customer, references, checks)
        named_payments = _named_payments(details, customer, references, checks)
        understood = details.model_copy(
            update={
                "invoice_ids": _ids(named_invoices, lambda invoice: invoice.invoice_id),
                "payment_ids": _ids(named_payments, lambda payment: payment.payment_id),
            }
        )
        _check_complete(understood, named_invoices, named_payments, checks)
        if details.request_type in MONEY_MOVING_TYPES:
            _check_kyc(details, customer, checks, today)
        invoices = [*named_invoices.documents]
        for invoice in invoices:
            checks.passed("invoice_exists", _describe_invoice(invoice))
        invoices += _known_and_owned(
            "invoice",
            named_invoices.unmatched_fields,
            references.invoices,
            customer,
            checks,
            hold_expired=hold_expired,
            describe=_describe_invoice,
        )
        payments = [*named_payments.documents]
        for payment in payments:
            checks.passed("payment_exists", _describe_payment(payment))
        payments += _known_and_owned(
            "payment",
            named_payments.unmatched_fields,
            references.payments,
            customer,
            checks,
            hold_expired=hold_expired,
            describe=_describe_payment,
        )
        _check_contracts(understood, customer, invoices, references, checks, hold_expired=hold_expired)
        understood = _amounts_in_document_currency(understood, invoices, payments, checks)
        _check_amounts(understood, customer, invoices, payments, checks)
        snapshots = [_snapshot(invoice) for invoice in invoices]
    except _Rejected as rejection:
        return Verdict(
            RequestStatus.REJECTED,
            tuple(checks.results),
            customer,
            reason=rejection.reason,
            message=rejection.message,
            details=understood,
        )
    if checks.questions:
        return _ask(customer, checks, understood)
    if checks.waiting_for:
        return _hold(customer, checks, understood)
    return Verdict(
        RequestStatus.VALIDATED,
        tuple(checks.results),
        customer,
        tuple(snapshots),
        message="Your request has been checked and is being assigned to a team.",
        details=understood,
    )


def _describe_invoice(invoice: Invoice) -> str:
    return f"{invoice.invoice_id} total {invoice.total}, {invoice.status}"


def _describe_payment(payment: Payment) -> str:
    return f"{payment.payment_id} of {payment.amount}, {payment.status}"


def _named_invoices(
    details: RequestDetails, customer: Customer, references: References, checks: _Checks
) -> NamedDocuments[Invoice]:
    # Numbers in the text count where the structured field is empty: a CRM agent who filled in
    # the invoices said which ones the request is about; others in the text are context.
    from_text = not details.invoice_ids
    named = name_documents(
        customer_id=customer.customer_id,
        fields=details.invoice_ids,
        text=details.invoice_candidates if from_text else (),
        loose=details.loose_candidates if from_text else (),
        exact=references.invoices,
        by_number=references.invoices_by_number,
        id_of=lambda invoice: invoice.invoice_id,
    )
    _record_readings(named, "invoice", checks)
    return named


def _named_payments(
    details: RequestDetails, customer: Customer, references: References, checks: _Checks
) -> NamedDocuments[Payment]:
    named = name_documents(
        customer_id=customer.customer_id,
        fields=details.payment_ids,
        text=details.payment_candidates if not details.payment_ids else (),
        loose=(),
        exact=references.payments,
        by_number=references.payments_by_number,
        id_of=lambda payment: payment.payment_id,
    )
    _record_readings(named, "payment", checks)
    return named


def _record_readings(
    named: NamedDocuments[Any], kind: Literal["invoice", "payment"], checks: _Checks
) -> None:
    """Which numbers named which documents, when that took more than the ids as given; and the
    question when a number names several of the customer's documents."""
    as_given = all(
        reading.source == "field" and reading.document_ids in ((), (reading.written,))
        for reading in named.readings
    )
    if named.readings and not as_given:
        checks.passed(f"{kind}_numbers_read", named.describe(kind.capitalize()))
    for reading in named.ambiguous:
        choices = _join(list(reading.document_ids), "or")
        checks.failed(f"{kind}_identified", f"{reading.written} matches {choices}")
        checks.ask(
            f"which_{kind}",
            f"The {kind} number {reading.written} matches more than one of your {kind}s ({choices}): "
            f"please tell us which one you mean.",
            *(awaited(choice_kind(kind), document_id) for document_id in reading.document_ids),
        )


def _ids(named: NamedDocuments[Any], id_of: Callable[[Any], str]) -> tuple[str, ...]:
    """The documents named, by their ERP ids, then the structured numbers still unknown."""
    return tuple(dict.fromkeys([*(id_of(document) for document in named.documents), *named.unmatched_fields]))


def _amounts_in_document_currency(
    details: RequestDetails, invoices: list[Invoice], payments: list[Payment], checks: _Checks
) -> RequestDetails:
    """Amounts the customer wrote without a currency, with a role, in the documents' currency.

    Only when the documents the request names are all in one currency; a role's field the
    customer (or the CRM) already filled stays as it is.
    """
    currencies = {invoice.currency for invoice in invoices} or {p.amount.currency for p in payments}
    fields = {"disputed": "disputed_amount", "expected": "expected_amount", "paid": "paid_amount"}
    update: dict[str, Money] = {}
    for stated in details.stated_amounts:
        if stated.role is None:
            continue
        name = fields[stated.role]
        if getattr(details, name) is not None or name in update:
            continue
        currency = stated.currency or (next(iter(currencies)) if len(currencies) == 1 else None)
        if currency is None:
            continue
        update[name] = Money(amount=stated.amount, currency=currency)
        if stated.currency is None:
            checks.passed("amount_currency", f"{stated.role} amount {update[name]}: the documents' currency")
    return details.model_copy(update=update) if update else details


def _ask(customer: Customer, checks: _Checks, understood: RequestDetails) -> Verdict:
    """On hold until the customer answers: the question is the message (the contract's rule).

    The hold keeps what it waits for (``customer:<what>``): the answer (a reply in the email
    thread, the CRM case published again with the missing piece) resumes it, and it is decided
    again when a document it names by number arrives.
    """
    message = " ".join(checks.questions)
    asked = ("customer:", "invoice_number:", "payment_number:", "invoice_choice:", "payment_choice:")
    others = [item for item in checks.waiting_for if not item.startswith(asked)]
    if others:
        message += (
            " We are also waiting for "
            + _join(
                [
                    f"{kind} {key}" if kind != "kyc" else "your account verification"
                    for kind, key in map(split_awaited, others)
                ]
            )
            + "."
        )
    return Verdict(
        RequestStatus.ON_HOLD,
        tuple(checks.results),
        customer,
        reason=AWAITING_CUSTOMER,
        message=message,
        waiting_for=tuple(dict.fromkeys(checks.waiting_for)),
        details=understood,
    )


def _hold(customer: Customer, checks: _Checks, understood: RequestDetails | None = None) -> Verdict:
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
        details=understood,
    )


def hold_expired(waiting_for: Sequence[str], reject_after: datetime, *, now: datetime) -> bool:
    """Past its time limit while waiting for a document the ERP sends (a wait for KYC or for the
    customer's answer has no limit here)."""
    waits_for_documents = any(split_awaited(item)[0] in DOCUMENT_KINDS for item in waiting_for)
    return waits_for_documents and now >= reject_after


def wait_may_be_over(
    waiting_for: Sequence[str],
    customers: Mapping[str, Customer],
    known: References,
    *,
    customer_id: str | None = None,
) -> bool:
    """Has anything a hold waits for arrived (a document, also one found by its normalised number)
    or changed (a KYC no longer pending)?"""
    documents: dict[str, Mapping[str, object | None]] = {
        "invoice": known.invoices,
        "payment": known.payments,
        "contract": known.contracts,
    }
    numbered: dict[str, Mapping[str, Sequence[Invoice | Payment]]] = {
        "invoice": known.invoices_by_number,
        "payment": known.payments_by_number,
        "invoice_number": known.invoices_by_number,
        "payment_number": known.payments_by_number,
    }
    for item in waiting_for:
        kind, key = split_awaited(item)
        if any(customer_id in (None, found.customer_id) for found in numbered.get(kind, {}).get(key, ())):
            return True
        if kind == "kyc":
            customer = customers.get(key)
            if customer is not None and customer.kyc_status is not KycStatus.PENDING:
                return True
        elif documents.get(kind, {}).get(key) is not None:
            return True
    return False


def choice_kind(kind: Literal["invoice", "payment"]) -> AwaitedKind:
    """How a hold names one of the documents an ambiguous number matched."""
    return "invoice_choice" if kind == "invoice" else "payment_choice"


def waits_only_for_the_customer(waiting_for: Sequence[str]) -> bool:
    """Whether a hold waits for nothing but the customer's answer (no document, no KYC)."""
    return all(
        split_awaited(item)[0] in ("customer", "invoice_choice", "payment_choice") for item in waiting_for
    )


def with_answer(
    details: RequestDetails, answer: RequestDetails, waiting_for: Sequence[str]
) -> RequestDetails:
    """The request as it stands once the customer's answer is added to it.

    What the answer names is the customer's word on it: the invoice (payment) numbers of the
    answer replace those the request had, and when the request asked which of several documents
    a number meant, the first of them the answer names is the one. Amounts and dates the request
    had no value for are taken from the answer; those it had stay. The type stays as it was
    (classified, or as the CRM gave it), unless it had none.
    """
    update: dict[str, Any] = {}
    for kind in ("invoice", "payment"):
        candidates: tuple[str, ...] = getattr(answer, f"{kind}_candidates")
        loose = answer.loose_candidates if kind == "invoice" else ()
        choices = [key for item_kind, key in map(split_awaited, waiting_for) if item_kind == f"{kind}_choice"]
        chosen = _chosen(choices, (*candidates, *loose))
        if chosen is not None:
            update[f"{kind}_candidates"] = (chosen,)
            if kind == "invoice":
                update["loose_candidates"] = ()
        elif candidates or loose:
            update[f"{kind}_candidates"] = candidates
            if kind == "invoice":
                update["loose_candidates"] = loose
    for name in (
        "disputed_amount",
        "expected_amount",
        "requested_credit_limit",
        "paid_amount",
        "payment_date",
        "contract_id",
        "request_type",
    ):
        if getattr(details, name) is None and getattr(answer, name) is not None:
            update[name] = getattr(answer, name)
    update["stated_amounts"] = tuple(dict.fromkeys([*details.stated_amounts, *answer.stated_amounts]))[
        :MAX_STATED_AMOUNTS
    ]
    update["mentioned_amounts"] = tuple(
        dict.fromkeys([*details.mentioned_amounts, *answer.mentioned_amounts])
    )
    update["mentioned_dates"] = tuple(dict.fromkeys([*details.mentioned_dates, *answer.mentioned_dates]))
    update["attachments"] = tuple(dict.fromkeys([*details.attachments, *answer.attachments]))
    return details.model_copy(update=update)


def _chosen(choices: Sequence[str], written: Sequence[str]) -> str | None:
    """The first of ``choices`` the answer names: as written first ("INV-42", not "RE-42" whose
    number is the same once prefixes are set aside), then by its normalised number."""
    for matches in (lambda a, b: a.strip().upper() == b.strip().upper(), same_number):
        for number in written:
            for choice in choices:
                if matches(number, choice):
                    return choice
    return None


def _check_account(customer: Customer, checks: _Checks) -> None:
    if customer.status is not CustomerStatus.ACTIVE:
        checks.failed("customer_active", f"customer status is {customer.status.value}")
        raise _Rejected(
            f"customer_{customer.status.value}",
            f"Your customer account is {customer.status.value}; please contact your account manager.",
        )
    checks.passed("customer_active", "customer status is active")


def missing_pieces(details: RequestDetails) -> tuple[str, str] | None:
    """What a request of its type must name and does not, that the customer can give by answering:
    what is missing (``customer:<what>`` of the hold) and the question that asks for it. A
    credit-limit change names the new limit; a refund what is to be refunded. (An invoice or
    payment the customer did not name is asked in :func:`_check_complete` too.)
    """
    request_type = details.request_type
    if request_type is RequestType.CREDIT_LIMIT_CHANGE and details.requested_credit_limit is None:
        return (
            "credit_limit",
            "Which new credit limit do you ask for? Please tell us the amount and its currency.",
        )
    if request_type is RequestType.REFUND and not (
        details.invoice_ids
        or details.payment_ids
        or details.disputed_amount
        or details.mentioned_amounts
        or details.stated_amounts
        or details.invoice_candidates
        or details.payment_candidates
    ):
        return (
            "refund_details",
            "What should we refund? Please tell us the invoice or payment number, or the amount.",
        )
    return None


def _has_amount(details: RequestDetails) -> bool:
    return bool(
        details.disputed_amount or details.paid_amount or details.mentioned_amounts or details.stated_amounts
    )


def _check_complete(
    details: RequestDetails,
    invoices: NamedDocuments[Invoice],
    payments: NamedDocuments[Payment],
    checks: _Checks,
) -> None:
    """What the request's type needs: the customer is asked for what is missing (answering is
    the way: the request waits on hold, ``awaiting_customer``, and resumes on the answer).

    A credit-limit change names the new limit, a refund what to refund. A dispute, correction or
    write-off names an invoice; a payment query something to look for (an invoice, a payment, or
    the amount paid: a missing date is never by itself a reason to refuse, the payment is looked
    for without it). Numbers in the text that name none of the customer's documents are asked
    about, and the request is decided again if a document with that number arrives.
    """
    request_type = details.request_type
    label = request_type.value if request_type else "unclassified"
    missing = missing_pieces(details)
    if missing is not None:
        what, question = missing
        checks.failed("request_complete", f"{label}: missing {what.replace('_', ' ')}")
        checks.ask(what, question)
        return
    names_invoice = bool(invoices.documents or invoices.unmatched_fields or invoices.ambiguous)
    names_payment = bool(payments.documents or payments.unmatched_fields or payments.ambiguous)
    unmatched = [("invoice", number) for number in invoices.unmatched_text]
    unmatched += [("payment", number) for number in payments.unmatched_text]
    not_found = ""
    if unmatched:
        listed = _join([f"{kind} {number}" for kind, number in unmatched])
        plural = "s" if len(unmatched) > 1 else ""
        not_found = f"We could not find {listed} among your documents: please check the number{plural}."
    number_waits = [
        awaited("invoice_number" if kind == "invoice" else "payment_number", number)
        for kind, number in unmatched
    ]
    if request_type in INVOICE_TYPES and not names_invoice:
        checks.failed("request_complete", f"{label}: no invoice of the customer named")
        if unmatched:
            checks.ask("invoice", not_found, *number_waits)
        else:
            checks.ask("invoice", "Which invoice is this request about? Please tell us its number.")
        return
    if request_type is RequestType.PAYMENT_QUERY and not (
        names_invoice or names_payment or _has_amount(details)
    ):
        checks.failed("request_complete", f"{label}: no invoice, payment or amount to look for")
        if unmatched:
            checks.ask("payment_details", not_found, *number_waits)
        else:
            checks.ask(
                "payment_details",
                "Please tell us which invoice you paid (its number), or the payment's reference, or the "
                "amount you paid and when, so that we can find your payment.",
            )
        return
    checks.passed("request_complete", f"{label}: everything its type needs is named")


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


def _join(parts: list[str], word: str = "and") -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" {word} " + parts[-1]


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


def duplicate_message(earlier_request_id: str) -> str:
    """What the customer is told when a request repeats their open request ``earlier_request_id``."""
    return (
        f"This repeats your open request {earlier_request_id}; we have linked the two and will answer "
        "there, so nothing is handled twice."
    )
