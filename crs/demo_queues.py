"""Demo requests that wait for a person in every queue: what the console shows after `make run`.

The demo traffic (crs/traffic.py) is mostly what the automation settles by itself. These few
requests are chosen from the demo dataset so that each queue of the routing rules and the
approvals inbox holds at least one open request a person has to take up:

- accounts receivable: a billing dispute whose credit memo is above the policy's automatic tier
  (it waits for a team lead's approval);
- cash application: a payment query naming two unapplied payments (a person chooses the one);
- credit control: a credit-limit change (it waits for a team lead's approval);
- collections: a write-off of two invoices at once (a person handles them one by one);
- master data: an account update (no automation: always a person's);
- customer service: a contract question, a service request, and an email nobody could classify.

They go in through the contract's inbound topics, like any request, with fixed case ids and
Message-IDs and fixed content (times derived from the dataset's ``as_of``): publishing them again
is a redelivery, which changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from crs.demo_data import AR_MAILBOX, DemoDataset
from shared.contract import CrmRequest, EmailRequest
from shared.money import Money
from shared.topics import CRM_REQUESTS, EMAIL_REQUESTS

QUEUES: Final = (
    "accounts_receivable",
    "cash_application",
    "credit_control",
    "collections",
    "master_data",
    "customer_service",
)
"""The queues of services/routing/rules.toml, each of which gets at least one demo request."""

_JSON: Final = {"mode": "json", "by_alias": True, "exclude_unset": True}
_CREDIT_LIMIT_RAISE: Final = Decimal("5000.00")
"""Small enough that one team lead's approval is enough (approval_policy.toml: a change up to
10,000.00 USD once converted; 5,000 of the demo's USD, EUR or GBP are below it)."""


@dataclass(frozen=True)
class DemoRequest:
    """One inbound request of the queue demo: the queue it is meant for and why it waits there."""

    queue: str
    waits_for: str
    topic: str
    key: str
    value: dict[str, Any]
    status: str = "routed"
    """Where it rests: ``routed`` (with its queue) or ``awaiting_approval``."""


def queue_demo_requests(dataset: DemoDataset) -> list[DemoRequest]:
    """The queue demo's requests for ``dataset``: the same dataset gives the same requests.

    Each request has a customer of its own (no request is linked to another as a duplicate).
    A request whose kind of data the dataset lacks (a tiny dataset) is left out.
    """
    picker = _Picker(dataset)
    builders: tuple[Callable[[_Picker, int], DemoRequest | None], ...] = (
        _dispute_above_automatic_credit,
        _payment_query_with_two_candidates,
        _credit_limit_change,
        _write_off_of_two_invoices,
        _account_update,
        _contract_query,
        _service_request,
        _unclassified_email,
    )
    requests = []
    for number, build in enumerate(builders, start=1):
        request = build(picker, number)
        if request is not None:
            requests.append(request)
    return requests


async def publish_queue_demo(kafka: str, dataset: DemoDataset) -> list[DemoRequest]:
    """Publish the queue demo's requests (again: a redelivery, nothing new); returns them."""
    from crs.io import producer, publish_json

    requests = queue_demo_requests(dataset)
    async with producer(kafka) as client:
        for request in requests:
            await publish_json(client, request.topic, request.key, request.value)
    return requests


def describe(requests: Iterable[DemoRequest]) -> str:
    """One line per request, for `make run` to print, and the queues left without one."""
    shown = list(requests)
    lines = [f"  {request.queue:<20} {request.key}: {request.waits_for}" for request in shown]
    missing = [queue for queue in QUEUES if queue not in {request.queue for request in shown}]
    if missing:
        lines.append(f"  (none for {', '.join(missing)}: the dataset is too small; try more --customers)")
    return "\n".join(lines)


# -- choosing the data --------------------------------------------------------------------------


class _Picker:
    """Customers that fit a demo (active, KYC valid for a year after ``as_of``), each used once."""

    def __init__(self, dataset: DemoDataset) -> None:
        self.dataset = dataset
        shared = {email for email, _ in dataset.shared_contact_owners}
        valid_until = (dataset.as_of + timedelta(days=365)).isoformat()
        self._fit = [
            record.value
            for record in dataset.customers
            if record.value["status"] == "active"
            and record.value["kyc_status"] == "verified"
            and (record.value.get("kyc_expires_on") or "9999") > valid_until
            and any(contact["email"] not in shared for contact in record.value["contacts"])
        ]
        self._shared = shared
        self._used: set[str] = set()

    def customers(self) -> list[dict[str, Any]]:
        """The fitting customers not used yet, in the dataset's order."""
        return [customer for customer in self._fit if customer["customer_id"] not in self._used]

    def take(self, customer: dict[str, Any]) -> dict[str, Any]:
        self._used.add(customer["customer_id"])
        return customer

    def contact(self, customer: dict[str, Any]) -> dict[str, str]:
        """The customer's first own contact (a shared one would not identify the customer)."""
        return next(c for c in customer["contacts"] if c["email"] not in self._shared)

    def open_invoices(self, customer: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            invoice
            for invoice in self.dataset.invoices_of(customer["customer_id"])
            if invoice["status"] in ("open", "partially_paid")
        ]

    def submitted_at(self, number: int) -> datetime:
        """A fixed time on the dataset's day: the same content every time it is published."""
        return datetime.combine(self.dataset.as_of, time(9, 0), tzinfo=UTC) + timedelta(minutes=number)


def _case_id(picker: _Picker, number: int) -> str:
    return f"DEMO-QUEUE-{picker.dataset.seed}-{number:02d}"


def _crm(picker: _Picker, number: int, customer: dict[str, Any], **fields: Any) -> dict[str, Any]:
    contact = picker.contact(customer)
    case = CrmRequest(
        case_id=_case_id(picker, number),
        customer_id=customer["customer_id"],
        contact={"name": contact["name"], "email": contact["email"]},
        submitted_at=picker.submitted_at(number),
        **fields,
    )
    return case.model_dump(**_JSON)  # type: ignore[arg-type]


def _crm_request(
    queue: str,
    waits_for: str,
    picker: _Picker,
    number: int,
    customer: dict[str, Any],
    *,
    status: str = "routed",
    **fields: Any,
) -> DemoRequest:
    value = _crm(picker, number, picker.take(customer), **fields)
    return DemoRequest(queue, waits_for, CRM_REQUESTS, value["case_id"], value, status=status)


def _overcharge(dataset: DemoDataset, invoice: dict[str, Any]) -> Decimal:
    contract = dataset.contract(invoice["contract_id"])
    prices = {price["sku"]: Decimal(price["unit_price"]) for price in contract["prices"]}
    return sum(
        (
            Decimal(line["quantity"]) * (Decimal(line["unit_price"]) - prices[line["sku"]])
            for line in invoice["lines"]
            if line["sku"] in prices and Decimal(line["unit_price"]) > prices[line["sku"]]
        ),
        Decimal(0),
    )


def _dispute_above_automatic_credit(picker: _Picker, number: int) -> DemoRequest | None:
    """The overpriced open invoice with the largest overcharge: its credit memo needs a team
    lead's approval when above the policy's automatic tier (1,000.00 USD once converted: the
    default dataset's is)."""
    dataset = picker.dataset
    fitting = {customer["customer_id"]: customer for customer in picker.customers()}
    invoices = [
        dataset.invoice(invoice_id)
        for invoice_id in dataset.overpriced_invoice_ids
        if invoice_id != dataset.dispute_invoice_id
    ]
    candidates = [
        invoice
        for invoice in invoices
        if invoice["status"] in ("open", "partially_paid") and invoice["customer_id"] in fitting
    ]
    if not candidates:
        return None
    invoice = max(
        candidates, key=lambda candidate: (_overcharge(dataset, candidate), candidate["invoice_id"])
    )
    dispute = dataset.dispute_for(
        invoice["invoice_id"],
        case_id=_case_id(picker, number),
        submitted_at=_rfc3339(picker.submitted_at(number)),
    )
    picker.take(fitting[invoice["customer_id"]])
    return DemoRequest(
        "accounts_receivable",
        "a team lead's approval of the credit memo",
        CRM_REQUESTS,
        dispute["case_id"],
        dispute,
        status="awaiting_approval",
    )


def _payment_query_with_two_candidates(picker: _Picker, number: int) -> DemoRequest | None:
    """A customer with two unapplied payments in one currency asks which was applied: a person chooses."""
    unapplied: dict[tuple[str, str], list[str]] = {}
    for record in picker.dataset.payments:
        payment = record.value
        if payment["status"] == "unapplied" and not payment.get("applied_to"):
            unapplied.setdefault((payment["customer_id"], payment["amount"]["currency"]), []).append(
                payment["payment_id"]
            )
    for customer in picker.customers():
        for (owner, _), payment_ids in sorted(unapplied.items()):
            if owner == customer["customer_id"] and len(payment_ids) >= 2:
                first, second = sorted(payment_ids)[:2]
                return _crm_request(
                    "cash_application",
                    "a person to choose between two payments",
                    picker,
                    number,
                    customer,
                    type="payment_query",
                    subject="Which of our payments did you apply?",
                    description=f"We sent two transfers, {first} and {second}. Please apply the right one to "
                    "our open invoice and tell us which.",
                    payment_ids=[first, second],
                )
    return None


def _credit_limit_change(picker: _Picker, number: int) -> DemoRequest | None:
    for customer in picker.customers():
        limit = customer.get("credit_limit")
        if limit is None:
            continue
        requested = Money(amount=Decimal(limit["amount"]) + _CREDIT_LIMIT_RAISE, currency=limit["currency"])
        return _crm_request(
            "credit_control",
            "a team lead's approval of the new limit",
            picker,
            number,
            customer,
            status="awaiting_approval",
            type="credit_limit_change",
            subject="Please raise our credit limit",
            description="Our orders are growing; please raise our credit limit by "
            f"{_CREDIT_LIMIT_RAISE:,.2f} {requested.currency}.",
            requested_credit_limit=requested,
        )
    return None


def _write_off_of_two_invoices(picker: _Picker, number: int) -> DemoRequest | None:
    for customer in picker.customers():
        invoices = picker.open_invoices(customer)
        if len(invoices) >= 2:
            named = [invoice["invoice_id"] for invoice in invoices[:2]]
            return _crm_request(
                "collections",
                "a person to handle two invoices one by one",
                picker,
                number,
                customer,
                type="write_off",
                subject="Small balances left on two invoices",
                description=f"Please write off what is left open on invoices {named[0]} and {named[1]}.",
                invoice_ids=named,
            )
    return None


def _account_update(picker: _Picker, number: int) -> DemoRequest | None:
    customers = picker.customers()
    if not customers:
        return None
    return _crm_request(
        "master_data",
        "a person to update the customer master",
        picker,
        number,
        customers[0],
        type="account_update",
        subject="New billing address",
        description="From next month please send our invoices to Hafenstrasse 12, 8005 Zurich.",
    )


def _contract_query(picker: _Picker, number: int) -> DemoRequest | None:
    for customer in picker.customers():
        contracts = [
            record.value
            for record in picker.dataset.contracts
            if record.value["customer_id"] == customer["customer_id"]
        ]
        if contracts:
            latest = max(contracts, key=lambda contract: contract["valid_from"])
            return _crm_request(
                "customer_service",
                "a person to answer a question about a contract",
                picker,
                number,
                customer,
                type="contract_query",
                subject=f"Notice period of contract {latest['contract_id']}",
                description="What notice period applies if we do not renew this contract?",
                contract_id=latest["contract_id"],
            )
    return None


def _service_request(picker: _Picker, number: int) -> DemoRequest | None:
    customers = picker.customers()
    if not customers:
        return None
    return _crm_request(
        "customer_service",
        "a person to carry out a service request",
        picker,
        number,
        customers[0],
        type="service_request",
        subject="Statements by email, please",
        description="Please send our monthly statement of account by email from now on.",
    )


def _unclassified_email(picker: _Picker, number: int) -> DemoRequest | None:
    customers = picker.customers()
    if not customers:
        return None
    customer = picker.take(customers[0])
    contact = picker.contact(customer)
    domain = contact["email"].rsplit("@", 1)[1]
    message_id = f"<demo-queue-{picker.dataset.seed}-{number:02d}@{domain}>"
    email = EmailRequest.model_validate(
        {
            "message_id": message_id,
            "from": f"{contact['name']} <{contact['email']}>",
            "to": [AR_MAILBOX],
            "subject": "A call this week?",
            "body_text": f"Hello,\n\ncould someone call me back this week when it suits you?\n\n"
            f"Thanks,\n{contact['name']}\n{customer['name']}\n",
            "received_at": _rfc3339(picker.submitted_at(number)),
        }
    )
    return DemoRequest(
        "customer_service",
        "a person to classify an email nobody could",
        EMAIL_REQUESTS,
        message_id,
        email.model_dump(**_JSON),  # type: ignore[arg-type]
    )


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
