"""Validation's rules: is this request about a real, active customer and its own documents?

Pure functions over the request and the reference records; the service feeds them from its own
views of the reference topics. Every check that ran is returned, passed or failed, so the audit
record can show them; a rejection carries a machine reason code and a sentence the customer can
act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from shared.contract import Customer, CustomerStatus, Invoice, KycStatus, RequestStatus, RequestType
from shared.events import CheckResult, InvoiceSnapshot, RequestDetails

MONEY_MOVING_TYPES = frozenset({RequestType.REFUND, RequestType.WRITE_OFF, RequestType.CREDIT_LIMIT_CHANGE})
INVOICE_TYPES = frozenset({RequestType.BILLING_DISPUTE, RequestType.INVOICE_CORRECTION})


@dataclass(frozen=True)
class Verdict:
    """The outcome: validated, rejected or on hold, with every check that ran."""

    outcome: RequestStatus  # VALIDATED, REJECTED or ON_HOLD
    checks: tuple[CheckResult, ...]
    customer: Customer | None = None
    invoices: tuple[InvoiceSnapshot, ...] = ()
    reason: str | None = None
    message: str = ""


@dataclass
class _Checks:
    results: list[CheckResult] = field(default_factory=list)

    def passed(self, check: str, detail: str) -> None:
        self.results.append(CheckResult(check=check, passed=True, detail=detail))

    def failed(self, check: str, detail: str) -> None:
        self.results.append(CheckResult(check=check, passed=False, detail=detail))


def identify_customer(
    details: RequestDetails, candidates: list[Customer]
) -> tuple[Customer | None, str | None, str]:
    """The customer a request is about: by id (CRM), or by the sender among the contacts (email).

    Returns the customer, or a reason code and message saying why none could be chosen.
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
    candidates: list[Customer],
    invoices: dict[str, Invoice | None],
    *,
    today: date,
) -> Verdict:
    """The verdict on a request, given the customers it may be about and the invoices it names."""
    customer, reason, message = identify_customer(details, candidates)
    if customer is None:
        return Verdict(
            RequestStatus.REJECTED,
            (CheckResult(check="customer_exists", passed=False, detail=message),),
            reason=reason,
            message=message,
        )
    return validate_request(details, customer, invoices, today=today)


def validate_request(
    details: RequestDetails,
    customer: Customer,
    invoices: dict[str, Invoice | None],
    *,
    today: date,
) -> Verdict:
    """Check the customer and the documents of a request whose customer is known."""
    checks = _Checks()
    checks.passed("customer_exists", f"customer {customer.customer_id} ({customer.name})")

    def reject(reason: str, message: str) -> Verdict:
        return Verdict(RequestStatus.REJECTED, tuple(checks.results), customer, (), reason, message)

    if customer.status is not CustomerStatus.ACTIVE:
        checks.failed("customer_active", f"customer status is {customer.status.value}")
        return reject(
            f"customer_{customer.status.value}",
            f"Your customer account is {customer.status.value}; please contact your account manager.",
        )
    checks.passed("customer_active", "customer status is active")

    if details.request_type in MONEY_MOVING_TYPES:
        verdict = _check_kyc(details, customer, checks, today)
        if verdict is not None:
            return verdict

    if details.request_type in INVOICE_TYPES and not details.invoice_ids:
        checks.failed("invoice_named", "no invoice number in the request")
        return reject("missing_invoice", "Please tell us the number of the invoice this request is about.")

    snapshots: list[InvoiceSnapshot] = []
    for invoice_id in details.invoice_ids:
        invoice = invoices.get(invoice_id)
        if invoice is None:
            checks.failed("invoice_exists", f"{invoice_id} is not known")
            return reject("unknown_invoice", f"We cannot find invoice {invoice_id}; please check the number.")
        if invoice.customer_id != customer.customer_id:
            checks.failed("invoice_owned", f"{invoice_id} belongs to another customer")
            return reject(
                "invoice_not_owned", f"Invoice {invoice_id} is not on your account; please check the number."
            )
        checks.passed("invoice_exists", f"{invoice_id} total {invoice.total}, {invoice.status}")
        snapshots.append(
            InvoiceSnapshot(
                invoice_id=invoice.invoice_id,
                total=invoice.total,
                open_amount=invoice.open_amount,
                status=invoice.status,
            )
        )

    amount_verdict = _check_amounts(details, snapshots, checks)
    if amount_verdict is not None:
        reason, message = amount_verdict
        return reject(reason, message)
    return Verdict(
        RequestStatus.VALIDATED,
        tuple(checks.results),
        customer,
        tuple(snapshots),
        message="Your request has been checked and is being assigned to a team.",
    )


def _check_kyc(details: RequestDetails, customer: Customer, checks: _Checks, today: date) -> Verdict | None:
    expired = customer.kyc_expires_on is not None and customer.kyc_expires_on < today
    if customer.kyc_status is KycStatus.VERIFIED and not expired:
        checks.passed("kyc_verified", f"KYC verified until {customer.kyc_expires_on or 'no expiry'}")
        return None
    if customer.kyc_status is KycStatus.PENDING:
        checks.failed("kyc_verified", "KYC verification is pending")
        return Verdict(
            RequestStatus.ON_HOLD,
            tuple(checks.results),
            customer,
            (),
            "kyc_pending",
            "Your account verification is still in progress; we will continue as soon as it is complete.",
        )
    status = "expired" if expired or customer.kyc_status is KycStatus.EXPIRED else customer.kyc_status.value
    checks.failed("kyc_verified", f"KYC is {status}")
    request_type = details.request_type.value.replace("_", " ") if details.request_type else "request"
    return Verdict(
        RequestStatus.REJECTED,
        tuple(checks.results),
        customer,
        (),
        f"kyc_{status}",
        f"We cannot process a {request_type} while your account verification is {status}; "
        "please renew it with your account manager.",
    )


def _check_amounts(
    details: RequestDetails, invoices: list[InvoiceSnapshot], checks: _Checks
) -> tuple[str, str] | None:
    if not invoices:
        return None
    invoice = invoices[0]
    for label, amount in (
        ("disputed_amount", details.disputed_amount),
        ("expected_amount", details.expected_amount),
    ):
        if amount is None:
            continue
        if amount.currency != invoice.total.currency:
            checks.failed(
                "currency_matches", f"{label} in {amount.currency}, invoice in {invoice.total.currency}"
            )
            return (
                "currency_mismatch",
                f"The amount you gave is in {amount.currency} but invoice {invoice.invoice_id} is in "
                f"{invoice.total.currency}.",
            )
        if label == "disputed_amount" and not (0 < amount.amount <= invoice.total.amount):
            checks.failed("amount_in_range", f"disputed {amount}, invoice total {invoice.total}")
            return (
                "amount_out_of_range",
                "The disputed amount must be more than zero and at most the invoice total of "
                f"{invoice.total}.",
            )
        if label == "expected_amount" and amount.amount < 0:
            checks.failed("amount_in_range", f"expected {amount} is negative")
            return "amount_out_of_range", "The amount you expect cannot be negative."
        checks.passed("amount_in_range", f"{label} {amount} against invoice total {invoice.total}")
    return None
