"""Deterministic demo reference data for the Customer Request System.

The generator builds the four reference-data topics of the external contract
(``customers.master.v1``, ``erp.contracts.v1``, ``erp.invoices.v1``,
``erp.payments.v1``) for an imaginary IT supplier, Lumenbridge Systems, and its
business customers. It is pure Python: no Kafka, no I/O, no global random state.
One ``random.Random(seed)`` drives everything, so a seed always gives the same
data, which is what makes demos repeatable and tests exact.

The data is deliberately imperfect in the ways finance operations are:

* about 8 % of invoices bill one line above the contract price
  (:attr:`DemoDataset.overpriced_invoice_ids`): material for billing disputes;
* about 5 % of payments are unapplied (:attr:`DemoDataset.unapplied_payment_ids`),
  their bank reference naming the invoice in a messy form, or not at all;
* a few contacts are shared by two customers (:data:`SHARED_CONTACTS`): an
  email from them cannot name its customer by the sender address alone;
* customers are blocked or closed, KYC is pending, expired or failed.

Money is never a float: amounts are computed with :class:`~decimal.Decimal`, rounded to the
currency's minor units. Every record is a model of the contract (``shared/contract.py``), so
what the generator publishes is what the services accept; the word lists and the price list it
draws from are data, in ``crs/demo_data.toml``.
"""

from __future__ import annotations

import random
import tomllib
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Final, TypeVar

from shared.contract import (
    Contact,
    ContractPrice,
    CrmRequest,
    Customer,
    CustomerContract,
    EmailRequest,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentApplication,
)
from shared.money import Money, format_amount, round_to_minor_units
from shared.topics import CONTRACTS, CUSTOMERS, INVOICES, PAYMENTS

__all__ = [
    "AR_MAILBOX",
    "CONTRACT_ID_PATTERN",
    "CONTRACT_ID_PREFIX",
    "CUSTOMER_ID_PATTERN",
    "CUSTOMER_ID_PREFIX",
    "INVOICE_ID_PATTERN",
    "INVOICE_ID_PREFIX",
    "PAYMENT_ID_PATTERN",
    "PAYMENT_ID_PREFIX",
    "PRODUCT_CATALOGUE",
    "SHARED_CONTACTS",
    "DemoDataset",
    "DemoRecord",
    "Product",
    "SharedContact",
    "contract_id",
    "customer_id",
    "generate_demo_data",
    "invoice_id",
    "payment_id",
]

T = TypeVar("T")

# --------------------------------------------------------------------------------------
# Identifiers
# --------------------------------------------------------------------------------------

CUSTOMER_ID_PREFIX: Final = "CUST-"
CONTRACT_ID_PREFIX: Final = "CTR-"
INVOICE_ID_PREFIX: Final = "INV-"
PAYMENT_ID_PREFIX: Final = "PAY-"

# Regular expressions (as strings, to embed or compile) matching the canonical forms.
# The sequence part is "at least" so numbers still match once a sequence outgrows its
# zero padding (a year with more than 999,999 invoices).
CUSTOMER_ID_PATTERN: Final = r"CUST-\d{5,}"
CONTRACT_ID_PATTERN: Final = r"CTR-\d{4}-\d{4,}"
INVOICE_ID_PATTERN: Final = r"INV-\d{4}-\d{6,}"
PAYMENT_ID_PATTERN: Final = r"PAY-\d{4}-\d{6,}"

DEFAULT_ID_YEAR: Final = 2026
DEFAULT_SEED: Final = 42


def id_block(seed: int) -> int:
    """Which block of ids a seed's dataset uses, so datasets of two seeds never share an id.

    The default seed keeps the plain numbers (``CUST-00001``); seed ``s`` numbers from
    ``s * 100,000`` customers, ``s * 10,000`` contracts and ``s * 1,000,000`` invoices and payments
    (``CUST-100001`` for seed 1). Seed 0 takes the default seed's block, 42, in exchange. Up to
    99,999 customers per dataset stay within their block.
    """
    if seed == DEFAULT_SEED:
        return 0
    return DEFAULT_SEED if seed == 0 else seed


AR_MAILBOX: Final = "receivables@lumenbridge.example"
"""The supplier's accounts-receivable mailbox: where customers' emails arrive."""


def _require_positive(n: int) -> None:
    if n < 1:
        raise ValueError(f"sequence numbers start at 1, got {n}")


def customer_id(n: int) -> str:
    """The customer id with sequence number ``n``: ``customer_id(1) == "CUST-00001"``."""
    _require_positive(n)
    return f"{CUSTOMER_ID_PREFIX}{n:05d}"


def contract_id(n: int, year: int = DEFAULT_ID_YEAR) -> str:
    """The ``n``-th contract starting in ``year``: ``contract_id(1) == "CTR-2026-0001"``."""
    _require_positive(n)
    return f"{CONTRACT_ID_PREFIX}{year:04d}-{n:04d}"


def invoice_id(n: int, year: int = DEFAULT_ID_YEAR) -> str:
    """The ``n``-th invoice issued in ``year``: ``invoice_id(1) == "INV-2026-000001"``."""
    _require_positive(n)
    return f"{INVOICE_ID_PREFIX}{year:04d}-{n:06d}"


def payment_id(n: int, year: int = DEFAULT_ID_YEAR) -> str:
    """The ``n``-th payment received in ``year``: ``payment_id(1) == "PAY-2026-000001"``."""
    _require_positive(n)
    return f"{PAYMENT_ID_PREFIX}{year:04d}-{n:06d}"


# --------------------------------------------------------------------------------------
# Catalogue and word lists
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """One line of the supplier's price list; ``list_price`` is in USD."""

    sku: str
    description: str
    list_price: Decimal
    min_quantity: int
    max_quantity: int


_DATA: Final = tomllib.loads(Path(__file__).with_name("demo_data.toml").read_text(encoding="utf-8"))

PRODUCT_CATALOGUE: Final[tuple[Product, ...]] = tuple(
    Product(item["sku"], item["description"], Decimal(item["list_price"]), *item["quantity"])
    for item in _DATA["products"]
)
_PRODUCTS_BY_SKU: Final = {product.sku: product for product in PRODUCT_CATALOGUE}
_LIST_PRICE_RATE: Final = {currency: Decimal(rate) for currency, rate in _DATA["list_price_rate"].items()}
_LEGAL_FORMS: Final[dict[str, tuple[str, ...]]] = {
    currency: tuple(forms) for currency, forms in _DATA["legal_forms"].items()
}
_WORDS: Final[dict[str, list[Any]]] = _DATA["words"]
_PLACE_WORDS: Final[tuple[str, ...]] = tuple(_WORDS["places"])
_FOUNDER_NAMES: Final[tuple[str, ...]] = tuple(_WORDS["founders"])
_INDUSTRIES: Final[tuple[str, ...]] = tuple(_WORDS["industries"])
_QUALIFIERS: Final[tuple[str, ...]] = tuple(_WORDS["qualifiers"])
_FIRST_NAMES: Final[tuple[str, ...]] = tuple(_WORDS["first_names"])
_LAST_NAMES: Final[tuple[str, ...]] = tuple(_WORDS["last_names"])
_ROLE_MAILBOXES: Final[tuple[tuple[str, str], ...]] = tuple(
    (name, local) for name, local in _WORDS["role_mailboxes"]
)

# --------------------------------------------------------------------------------------
# Shared contacts
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedContact:
    """A contact that appears in the master data of two customers, and why."""

    name: str
    email: str
    why: str


SHARED_CONTACTS: Final[tuple[SharedContact, ...]] = tuple(
    SharedContact(contact["name"], contact["email"], contact["why"]) for contact in _DATA["shared_contacts"]
)
"""Contacts deliberately placed on two customers each: matching an email by sender
address alone is ambiguous for them. :attr:`DemoDataset.shared_contact_owners` says
which two customers hold each one in a given dataset."""

# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------

_CENT: Final = Decimal("0.01")
_ZERO: Final = Decimal("0.00")
_JSON: Final = {"mode": "json", "by_alias": True, "exclude_unset": True}
"""How a model becomes a message: the contract's names, only the fields the generator set."""
# Letters that Unicode decomposition does not reduce to ASCII.
_TRANSLITERATION: Final = str.maketrans(
    {"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ł": "l", "Ł": "L", "đ": "d"}
)


def _cents(amount: Decimal) -> Decimal:
    return round_to_minor_units(amount, "USD")


def _money(amount: Decimal, currency: str) -> Money:
    return Money(amount=round_to_minor_units(amount, currency), currency=currency)


def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATION))
    return decomposed.encode("ascii", "ignore").decode("ascii")


def _slug_words(text: str) -> list[str]:
    folded = _ascii_fold(text).lower().replace("'", "")
    cleaned = "".join(ch if ch.isalnum() else " " for ch in folded)
    return cleaned.split()


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year + years, day=28)


def _first_of_month(day: date) -> date:
    return day.replace(day=1)


def _timestamp(rng: random.Random, day: date) -> str:
    # Business hours, so the timestamps look like people and batch jobs at work.
    seconds = rng.randrange(7 * 3600, 19 * 3600)
    hour, minute, second = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}Z"


def _allocate(
    rng: random.Random,
    n: int,
    weights: Sequence[tuple[T, float]],
    *,
    ensure_each: bool,
) -> list[T]:
    """``n`` values in the given proportions (largest remainder), shuffled.

    Quotas instead of independent draws guarantee that rare states (a failed KYC, a
    closed account) exist at every realistic size, not just probably.
    """
    total = sum(weight for _, weight in weights)
    raw = [n * weight / total for _, weight in weights]
    counts = [int(share) for share in raw]
    by_remainder = sorted(range(len(weights)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    if ensure_each and n >= len(weights):
        for i, count in enumerate(counts):
            if count == 0:
                counts[counts.index(max(counts))] -= 1
                counts[i] = 1
    values = [value for (value, _), count in zip(weights, counts, strict=True) for _ in range(count)]
    rng.shuffle(values)
    return values


# --------------------------------------------------------------------------------------
# Public result types
# --------------------------------------------------------------------------------------


ReferenceDocument = Customer | CustomerContract | Invoice | Payment


@dataclass(frozen=True)
class DemoRecord:
    """One message for a reference-data topic: its topic, key and the contract's model of it."""

    topic: str
    key: str
    document: ReferenceDocument

    @property
    def value(self) -> dict[str, Any]:
        """The message as published (JSON-ready): a new dict on every call, free to change."""
        return self.document.model_dump(**_JSON)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DemoDataset:
    """The generated reference data plus the ground truth that tests and demos need."""

    customers: tuple[DemoRecord, ...]
    contracts: tuple[DemoRecord, ...]
    invoices: tuple[DemoRecord, ...]
    payments: tuple[DemoRecord, ...]
    overpriced_invoice_ids: tuple[str, ...]
    """Invoices with one line billed above the contract price."""
    unapplied_payment_ids: tuple[str, ...]
    """Payments received but not applied to any invoice."""
    unapplied_payment_targets: tuple[tuple[str, str], ...]
    """``(payment_id, invoice_id)``: the open invoice each unapplied payment was meant
    for (the answer a payment-matching step should find)."""
    shared_contact_owners: tuple[tuple[str, tuple[str, str]], ...]
    """``(email, (customer_id, customer_id))`` for every shared contact in this dataset."""
    dispute_invoice_id: str
    """The open, overpriced invoice of an active, verified customer that
    :meth:`sample_dispute` is about."""
    email_payment_id: str
    """The unapplied payment that :meth:`sample_email` asks the supplier to apply."""
    seed: int
    as_of: date

    def records(self) -> Iterator[DemoRecord]:
        """Every record in publishing order: customers, contracts, invoices, payments.

        Reference data comes before what refers to it, so a consumer that reads the
        topics in this order never sees a dangling reference.
        """
        yield from self.customers
        yield from self.contracts
        yield from self.invoices
        yield from self.payments

    def counts(self) -> dict[str, int]:
        """How many records each topic gets."""
        return {
            CUSTOMERS: len(self.customers),
            CONTRACTS: len(self.contracts),
            INVOICES: len(self.invoices),
            PAYMENTS: len(self.payments),
        }

    @cached_property
    def _index(self) -> dict[str, ReferenceDocument]:
        return {record.key: record.document for record in self.records()}

    @cached_property
    def _invoices_by_customer(self) -> dict[str, list[DemoRecord]]:
        grouped: dict[str, list[DemoRecord]] = {}
        for record in self.invoices:
            grouped.setdefault(record.value["customer_id"], []).append(record)
        return grouped

    def _document(self, kind: type[Any], key: str) -> Any:
        document = self._index[key]
        if not isinstance(document, kind):
            raise KeyError(key)
        return document

    def customer(self, customer_id: str) -> dict[str, Any]:
        """A copy of the customer record ``customer_id``; ``KeyError`` if unknown."""
        return dict(self._document(Customer, customer_id).model_dump(**_JSON))

    def contract(self, contract_id: str) -> dict[str, Any]:
        """A copy of the contract record ``contract_id``; ``KeyError`` if unknown."""
        return dict(self._document(CustomerContract, contract_id).model_dump(**_JSON))

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """A copy of the invoice record ``invoice_id``; ``KeyError`` if unknown."""
        return dict(self._document(Invoice, invoice_id).model_dump(**_JSON))

    def payment(self, payment_id: str) -> dict[str, Any]:
        """A copy of the payment record ``payment_id``; ``KeyError`` if unknown."""
        return dict(self._document(Payment, payment_id).model_dump(**_JSON))

    def invoices_of(self, customer_id: str) -> list[dict[str, Any]]:
        """Copies of the customer's invoices in invoice-number order (empty if none)."""
        return [record.value for record in self._invoices_by_customer.get(customer_id, [])]

    def _own_contacts(self, customer_id: str) -> list[Contact]:
        shared = {contact.email for contact in SHARED_CONTACTS}
        customer: Customer = self._document(Customer, customer_id)
        return [contact for contact in customer.contacts if contact.email not in shared]

    def sample_dispute(self) -> dict[str, Any]:
        """A ``crm.requests.v1`` billing dispute about :attr:`dispute_invoice_id`.

        The customer is active and KYC-verified, the invoice open; ``expected_amount``
        is the invoice repriced at the contract prices and ``disputed_amount`` the
        difference to the billed total. ``case_id`` and times derive from the seed.
        """
        rng = random.Random(f"crs-demo-data:{self.seed}:sample-dispute")  # noqa: S311 (demo data)
        return self.dispute_for(
            self.dispute_invoice_id,
            case_id=f"CASE-{self.as_of.year}-{rng.randrange(1, 1_000_000):06d}",
            submitted_at=_timestamp(rng, self.as_of),
        )

    def dispute_for(self, invoice_id: str, *, case_id: str, submitted_at: str) -> dict[str, Any]:
        """A billing dispute about an overpriced invoice, asking for the contract price.

        ``expected_amount`` is the invoice repriced at its contract's prices and
        ``disputed_amount`` the difference to the billed total.
        """
        invoice: Invoice = self._document(Invoice, invoice_id)
        contract: CustomerContract = self._document(CustomerContract, invoice.contract_id or "")
        customer: Customer = self._document(Customer, invoice.customer_id)
        prices = {price.sku: price.unit_price for price in contract.prices}
        currency = invoice.currency
        expected = sum((line.quantity * prices[line.sku] for line in invoice.lines), start=_ZERO)
        overbilled = next(line for line in invoice.lines if line.unit_price > prices[line.sku])
        contact = self._own_contacts(customer.customer_id)[0]
        description = (
            f"Invoice {invoice.invoice_id} bills {overbilled.sku} ({overbilled.description}) at "
            f"{overbilled.unit_price} {currency} per unit, but contract {contract.contract_id} sets "
            f"{_money(prices[overbilled.sku], currency).amount}. Repriced at the contract the invoice "
            f"comes to {_money(expected, currency).amount} {currency} instead of "
            f"{_money(invoice.total.amount, currency).amount}; we dispute the difference and will pay "
            f"the rest on time."
        )
        dispute = CrmRequest(
            case_id=case_id,
            channel="crm",
            customer_id=customer.customer_id,
            type="billing_dispute",
            subject=f"Price on invoice {invoice.invoice_id} does not match our contract",
            description=description,
            invoice_ids=[invoice.invoice_id],
            payment_ids=[],
            contract_id=contract.contract_id,
            disputed_amount=_money(invoice.total.amount - expected, currency),
            expected_amount=_money(expected, currency),
            # The agent flags big accounts; routing may still decide otherwise.
            priority="high" if customer.tier in ("strategic", "key") else "normal",
            contact=Contact(name=contact.name, email=contact.email),
            submitted_at=submitted_at,
        )
        return dispute.model_dump(**_JSON)  # type: ignore[arg-type]

    def sample_email(self) -> dict[str, Any]:
        """An ``email.requests.v1`` payment query from the dispute customer.

        Sent by one of the customer's own (not shared) contacts, it names an open
        invoice in the subject and body and says it was paid: the matching unapplied
        payment is :attr:`email_payment_id`. ``message_id`` and times derive from the
        seed.
        """
        rng = random.Random(f"crs-demo-data:{self.seed}:sample-email")  # noqa: S311 (demo data)
        payment: Payment = self._document(Payment, self.email_payment_id)
        target = dict(self.unapplied_payment_targets)[self.email_payment_id]
        invoice: Invoice = self._document(Invoice, target)
        customer: Customer = self._document(Customer, invoice.customer_id)
        contacts = self._own_contacts(customer.customer_id)
        # A different person from the one who raised the CRM dispute, where there is one.
        contact = contacts[1] if len(contacts) > 1 else contacts[0]
        address = contact.email or ""
        domain = address.rsplit("@", 1)[1]
        paid = payment.amount
        body = (
            "Hello,\n\n"
            f"we paid invoice {invoice.invoice_id} on {payment.received_on} by bank "
            f"transfer: {paid.currency} {format_amount(paid.amount, paid.currency)}, bank reference "
            f'"{payment.reference}".\n'
            f"Your latest statement still shows {invoice.invoice_id} as open. Could you "
            "please apply the payment and send us an updated statement?\n\n"
            "Kind regards,\n"
            f"{contact.name}\n"
            f"{customer.name}\n"
        )
        email = EmailRequest(
            message_id=f"<{rng.getrandbits(64):016x}.{rng.randrange(10**6):06d}@mail.{domain}>",
            sender=f"{contact.name} <{address}>",
            to=[AR_MAILBOX],
            cc=[],
            subject=f"Payment for invoice {invoice.invoice_id} still shown as open",
            body_text=body,
            received_at=_timestamp(rng, self.as_of),
            attachments=[],
        )
        return email.model_dump(**_JSON)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Drafts: the mutable working state of one generation run
# --------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Customer:
    index: int
    customer_id: str
    name: str
    token: str  # short upper-case name, as banks print it in references
    currency: str
    status: str
    kyc_status: str
    tier: str
    contacts: list[dict[str, str]]
    has_shared_contact: bool
    activity_end: date
    contracts: list[_Contract] = field(default_factory=list)
    invoices: list[_Invoice] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Contract:
    customer: _Customer
    valid_from: date
    valid_to: date
    prices: dict[str, Decimal]
    terms_days: int
    contract_id: str = ""


@dataclass(slots=True, eq=False)
class _Line:
    product: Product
    quantity: int
    unit_price: Decimal


@dataclass(slots=True, eq=False)
class _Invoice:
    customer: _Customer
    contract: _Contract
    issued_on: date
    lines: list[_Line]
    overpriced: bool = False
    status: str = "open"
    # (date, amount) of each payment applied to this invoice.
    settlements: list[tuple[date, Decimal]] = field(default_factory=list)
    cancelled_on: date | None = None
    year: int = 0
    number: int = 0
    invoice_id: str = ""

    @property
    def total(self) -> Decimal:
        return sum((line.quantity * line.unit_price for line in self.lines), start=_ZERO)

    @property
    def due_on(self) -> date:
        return self.issued_on + timedelta(days=self.contract.terms_days)

    @property
    def open_amount(self) -> Decimal:
        if self.status in ("paid", "cancelled"):
            return _ZERO
        return self.total - sum((amount for _, amount in self.settlements), start=_ZERO)


@dataclass(slots=True, eq=False)
class _Payment:
    customer: _Customer
    received_on: date
    amount: Decimal
    applications: list[tuple[_Invoice, Decimal]]
    reference: str = ""
    intended_for: _Invoice | None = None
    payment_id: str = ""

    @property
    def status(self) -> str:
        return "applied" if self.applications else "unapplied"


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------

_OVERPRICED_SHARE: Final = 0.08
_UNAPPLIED_SHARE: Final = 0.05
_CANCELLED_SHARE: Final = 0.02


class _Generator:
    """One generation run; every random draw goes through ``self.rng`` in a fixed order."""

    def __init__(self, *, customers: int, seed: int, as_of: date) -> None:
        self.n = customers
        self.seed = seed
        self.id_block = id_block(seed)
        # Reproducible by design: demo data must not depend on a secure (unseedable) source.
        self.rng = random.Random(seed)  # noqa: S311
        self.as_of = as_of
        self.last_day = as_of - timedelta(days=1)  # everything happened before as_of
        self.window_start = as_of - timedelta(days=365)
        self.customers: list[_Customer] = []
        self.shared_owners: list[tuple[SharedContact, tuple[_Customer, _Customer]]] = []
        self.payments: list[_Payment] = []

    # -- customers -----------------------------------------------------------------

    def build_customers(self) -> None:
        rng, n = self.rng, self.n
        ensure = n >= 20
        currencies = _allocate(rng, n, [("USD", 70), ("EUR", 20), ("GBP", 10)], ensure_each=ensure)
        statuses = _allocate(rng, n, [("active", 88), ("blocked", 7), ("closed", 5)], ensure_each=ensure)
        kyc = _allocate(
            rng,
            n,
            [("verified", 82), ("pending", 8), ("expired", 6), ("failed", 4)],
            ensure_each=ensure,
        )
        tiers = _allocate(
            rng,
            n,
            [("strategic", 4), ("key", 18), ("standard", 78)],
            ensure_each=ensure,
        )
        # The demo requests need one active, verified customer; make sure one exists
        # even in tiny datasets by swapping a KYC state onto the first active customer.
        pairs = list(zip(statuses, kyc, strict=True))
        if ("active", "verified") not in pairs and "active" in statuses and "verified" in kyc:
            i, j = statuses.index("active"), kyc.index("verified")
            kyc[i], kyc[j] = kyc[j], kyc[i]

        shared_count = min(len(SHARED_CONTACTS), max(1, n // 60)) if n >= 2 else 0
        holders = rng.sample(range(n), 2 * shared_count)
        shared_of: dict[int, SharedContact] = {}
        for k in range(shared_count):
            shared_of[holders[2 * k]] = SHARED_CONTACTS[k]
            shared_of[holders[2 * k + 1]] = SHARED_CONTACTS[k]

        taken_names: set[str] = set()
        taken_domains: set[str] = set()
        by_index: dict[int, _Customer] = {}
        for i in range(n):
            base, domain = self._company_name(taken_names, taken_domains)
            name = f"{base} {rng.choice(_LEGAL_FORMS[currencies[i]])}"
            shared = shared_of.get(i)
            contacts = self._contacts(domain, own=rng.randint(1, 2 if shared else 3))
            if shared is not None:
                contacts.append({"name": shared.name, "email": shared.email})
            activity_end = self.last_day
            if statuses[i] == "closed":
                # Closed accounts stopped buying a while ago and settled their invoices.
                activity_end = self.last_day - timedelta(days=rng.randint(60, 240))
            customer = _Customer(
                index=i,
                customer_id=customer_id(self.id_block * 100_000 + i + 1),
                name=name,
                token="".join(_slug_words(base)[:2]).upper()[:14],
                currency=currencies[i],
                status=statuses[i],
                kyc_status=kyc[i],
                tier=tiers[i],
                contacts=contacts,
                has_shared_contact=shared is not None,
                activity_end=activity_end,
            )
            self.customers.append(customer)
            by_index[i] = customer
        for k in range(shared_count):
            owners = (by_index[holders[2 * k]], by_index[holders[2 * k + 1]])
            owners = (
                min(owners, key=lambda c: c.index),
                max(owners, key=lambda c: c.index),
            )
            self.shared_owners.append((SHARED_CONTACTS[k], owners))

    def _company_name(self, taken_names: set[str], taken_domains: set[str]) -> tuple[str, str]:
        rng = self.rng
        for attempt in range(200):
            pattern = rng.random()
            if pattern < 0.45:
                base = f"{rng.choice(_PLACE_WORDS)} {rng.choice(_INDUSTRIES)}"
            elif pattern < 0.70:
                base = f"{rng.choice(_FOUNDER_NAMES)} {rng.choice(_INDUSTRIES)}"
            elif pattern < 0.90:
                base = f"{rng.choice(_PLACE_WORDS)} {rng.choice(_INDUSTRIES)} {rng.choice(_QUALIFIERS)}"
            else:
                first, second = rng.sample(_FOUNDER_NAMES, 2)
                base = f"{first} & {second} {rng.choice(_QUALIFIERS)}"
            if attempt >= 100:
                # Only reached far beyond the word lists' capacity (tens of thousands).
                base = f"{base} {rng.randint(2, 999)}"
            domain = "-".join(_slug_words(base)) + ".example"
            if base not in taken_names and domain not in taken_domains:
                taken_names.add(base)
                taken_domains.add(domain)
                return base, domain
        raise RuntimeError("could not find a unique company name")  # pragma: no cover

    def _contacts(self, domain: str, *, own: int) -> list[dict[str, str]]:
        rng = self.rng
        contacts: list[dict[str, str]] = []
        local_parts: set[str] = set()
        for _ in range(own):
            if rng.random() < 0.1:
                name, local = rng.choice(_ROLE_MAILBOXES)
            else:
                first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
                name = f"{first} {last}"
                first_ascii = "".join(_slug_words(first))
                last_ascii = "".join(_slug_words(last))
                local = (
                    f"{first_ascii}.{last_ascii}" if rng.random() < 0.75 else f"{first_ascii[0]}{last_ascii}"
                )
            unique_local, suffix = local, 2
            while unique_local in local_parts:
                unique_local, suffix = f"{local}{suffix}", suffix + 1
            local_parts.add(unique_local)
            contacts.append({"name": name, "email": f"{unique_local}@{domain}"})
        return contacts

    # -- contracts -----------------------------------------------------------------

    def build_contracts(self) -> None:
        rng = self.rng
        for customer in self.customers:
            terms = rng.choices([30, 45, 60], weights=[60, 25, 15])[0]
            if customer.tier == "strategic" and rng.random() < 0.5:
                terms = 60  # big customers negotiate longer terms
            skus = [product.sku for product in rng.sample(PRODUCT_CATALOGUE, rng.randint(3, 8))]
            prices = {sku: self._contract_price(customer, _PRODUCTS_BY_SKU[sku]) for sku in skus}
            renewed = customer.status != "closed" and rng.random() < 0.3
            if not renewed:
                valid_from = _first_of_month(self.window_start - timedelta(days=rng.randint(1, 900)))
                years = 1
                while _add_years(valid_from, years) <= customer.activity_end:
                    years += 1
                years += rng.randint(0, 1)
                valid_to = _add_years(valid_from, years) - timedelta(days=1)
                customer.contracts.append(_Contract(customer, valid_from, valid_to, prices, terms))
                continue
            # A renewal inside the year: the old contract ends the day before the new
            # one starts, usually with a price increase and sometimes an extra product.
            split = _first_of_month(self.window_start + timedelta(days=rng.randint(60, 300)))
            first_from = _add_years(split, -rng.randint(1, 3))
            customer.contracts.append(
                _Contract(customer, first_from, split - timedelta(days=1), prices, terms)
            )
            uplift = 1 + Decimal(rng.randint(2, 6)) / 100
            new_prices = {sku: _cents(price * uplift) for sku, price in prices.items()}
            if len(new_prices) < 8:
                extra = rng.choice([p for p in PRODUCT_CATALOGUE if p.sku not in new_prices])
                new_prices[extra.sku] = self._contract_price(customer, extra)
            new_terms = terms if rng.random() < 0.8 else rng.choice([30, 45, 60])
            second_to = _add_years(split, rng.randint(2, 3)) - timedelta(days=1)
            customer.contracts.append(_Contract(customer, split, second_to, new_prices, new_terms))

    def _contract_price(self, customer: _Customer, product: Product) -> Decimal:
        low, high = {"strategic": (15, 25), "key": (8, 15), "standard": (0, 7)}[customer.tier]
        discount = Decimal(self.rng.randint(low, high)) / 100
        list_price = product.list_price * _LIST_PRICE_RATE[customer.currency]
        return _cents(list_price * (1 - discount))

    # -- invoices ------------------------------------------------------------------

    def build_invoices(self) -> None:
        rng = self.rng
        for customer in self.customers:
            low, high = {"strategic": (12, 24), "key": (8, 16), "standard": (4, 14)}[customer.tier]
            span = (customer.activity_end - self.window_start).days + 1
            count = max(2, round(rng.randint(low, high) * span / 365))
            days = sorted(rng.randint(0, span - 1) for _ in range(count))
            for offset in days:
                issued_on = self.window_start + timedelta(days=offset)
                contract = next(c for c in customer.contracts if c.valid_from <= issued_on <= c.valid_to)
                skus = list(contract.prices)
                chosen = rng.sample(skus, rng.randint(1, min(4, len(skus))))
                lines = []
                for sku in chosen:
                    product = _PRODUCTS_BY_SKU[sku]
                    quantity = rng.randint(product.min_quantity, product.max_quantity)
                    lines.append(_Line(product, quantity, contract.prices[sku]))
                invoice = _Invoice(customer, contract, issued_on, lines)
                if rng.random() < _OVERPRICED_SHARE:
                    self._overprice(invoice)
                self._settle(invoice)
                customer.invoices.append(invoice)

    def _overprice(self, invoice: _Invoice) -> None:
        # Typical causes: the list price billed instead of the contract price, or the
        # old price list used after a renewal. Either way one line is 4-25 % too high.
        line = self.rng.choice(invoice.lines)
        contract_price = invoice.contract.prices[line.product.sku]
        raised = _cents(contract_price * (1 + Decimal(self.rng.randint(4, 25)) / 100))
        line.unit_price = max(raised, contract_price + _CENT)
        invoice.overpriced = True

    def _settle(self, invoice: _Invoice) -> None:
        """Choose a status plausible for the invoice's age, and the payments behind it."""
        rng = self.rng
        if rng.random() < _CANCELLED_SHARE:
            invoice.status = "cancelled"
            invoice.cancelled_on = min(invoice.issued_on + timedelta(days=rng.randint(1, 20)), self.last_day)
            return
        days_overdue = (self.as_of - invoice.due_on).days
        if invoice.customer.status == "closed":
            status = "paid"
        elif days_overdue < 0:
            status = rng.choices(["open", "paid", "partially_paid"], [85, 12, 3])[0]
        elif days_overdue < 30:
            status = rng.choices(["open", "paid", "partially_paid"], [35, 50, 15])[0]
        elif days_overdue < 90:
            status = rng.choices(["open", "paid", "partially_paid"], [12, 78, 10])[0]
        else:
            status = rng.choices(["open", "paid", "partially_paid"], [3, 94, 3])[0]
        if invoice.customer.status == "blocked" and days_overdue >= 0 and rng.random() < 0.4:
            status = "open"  # arrears are why the account is blocked
        invoice.status = status
        if status == "open":
            return
        # Most customers pay around the due date, some early, some late.
        terms = invoice.contract.terms_days
        latest = (self.last_day - invoice.issued_on).days
        low, high = max(1, terms // 3), terms + 25
        offset = rng.randint(min(low, latest), min(high, latest))
        paid_on = invoice.issued_on + timedelta(days=offset)
        total = invoice.total
        if status == "paid":
            invoice.settlements = [(paid_on, total)]
            return
        part = _cents(total * Decimal(rng.randint(20, 80)) / 100)
        if not _ZERO < part < total:
            part = _cents(total / 2)
        invoice.settlements = [(paid_on, part)]

    # -- the showcase used by sample_dispute / sample_email --------------------------

    def choose_showcase(self) -> tuple[_Invoice, _Invoice]:
        """The dispute invoice and the invoice the sample email says was paid.

        Prefer a customer whose data already fits; otherwise adjust the first
        suitable customer's two most recent invoices, so every seed and size has the
        example (the adjustment changes at most two invoices).
        """
        candidates = [
            c
            for c in self.customers
            if c.status == "active"
            and c.kyc_status == "verified"
            and not c.has_shared_contact
            and len(c.invoices) >= 2
        ]
        if not candidates:  # tiny datasets: relax the shared-contact preference
            candidates = [
                c
                for c in self.customers
                if c.status == "active" and c.kyc_status == "verified" and len(c.invoices) >= 2
            ]
        if not candidates:
            raise ValueError("the dataset has no active, KYC-verified customer")
        for customer in candidates:
            disputes = [i for i in customer.invoices if i.overpriced and i.status == "open"]
            others = [i for i in customer.invoices if i.status == "open" and not i.overpriced]
            if disputes and others:
                return disputes[-1], others[-1]
        customer = candidates[0]
        dispute, other = customer.invoices[-1], customer.invoices[-2]
        if not dispute.overpriced:
            self._overprice(dispute)
        for invoice in (dispute, other):
            invoice.status, invoice.settlements, invoice.cancelled_on = "open", [], None
        return dispute, other

    # -- numbering -----------------------------------------------------------------

    def number_contracts(self) -> list[_Contract]:
        contracts = [c for customer in self.customers for c in customer.contracts]
        contracts.sort(key=lambda c: (c.valid_from, c.customer.index))
        counters: dict[int, int] = {}
        for contract in contracts:
            year = contract.valid_from.year
            counters[year] = counters.get(year, 0) + 1
            contract.contract_id = contract_id(self.id_block * 10_000 + counters[year], year)
        return contracts

    def number_invoices(self) -> list[_Invoice]:
        invoices = [i for customer in self.customers for i in customer.invoices]
        # Stable sort: invoices of one customer on one day keep their creation order.
        invoices.sort(key=lambda i: (i.issued_on, i.customer.index))
        counters: dict[int, int] = {}
        for invoice in invoices:
            year = invoice.issued_on.year
            counters[year] = counters.get(year, 0) + 1
            invoice.year, invoice.number = year, counters[year]
            invoice.invoice_id = invoice_id(self.id_block * 1_000_000 + counters[year], year)
        return invoices

    def number_payments(self) -> list[_Payment]:
        payments = sorted(self.payments, key=lambda p: (p.received_on, p.customer.index))
        counters: dict[int, int] = {}
        for payment in payments:
            year = payment.received_on.year
            counters[year] = counters.get(year, 0) + 1
            payment.payment_id = payment_id(self.id_block * 1_000_000 + counters[year], year)
        return payments

    # -- payments ------------------------------------------------------------------

    def build_applied_payments(self) -> None:
        """One payment per settlement; some customers pay several invoices at once."""
        rng = self.rng
        for customer in self.customers:
            settlements = sorted(
                ((day, invoice, amount) for invoice in customer.invoices
                 for day, amount in invoice.settlements),
                key=lambda s: (s[0], s[1].number),
            )  # fmt: skip
            own: list[_Payment] = []
            for day, invoice, amount in settlements:
                current = own[-1] if own else None
                if (
                    current is not None
                    and len(current.applications) < 4
                    and (day - current.received_on).days <= 7
                    and rng.random() < 0.25
                ):
                    current.applications.append((invoice, amount))
                    current.amount += amount
                    current.received_on = day
                    continue
                own.append(_Payment(customer, day, amount, [(invoice, amount)]))
            for payment in own:
                payment.reference = self._applied_reference(payment)
            self.payments.extend(own)

    def _applied_reference(self, payment: _Payment) -> str:
        rng = self.rng
        ids = [invoice.invoice_id for invoice, _ in payment.applications]
        if len(ids) > 1:
            if rng.random() < 0.6:
                return "REMITTANCE " + " ".join(ids)
            return f"{payment.customer.token} BATCH {rng.randint(1000, 99999)}"
        style = rng.randrange(4)
        if style == 0:
            return ids[0]
        if style == 1:
            return f"{payment.customer.token} {ids[0]}"
        if style == 2:
            return f"PAYMENT {ids[0]}"
        return f"{payment.customer.token} PAYMENT {rng.randint(100000, 999999)}"

    def build_unapplied_payments(self, dispute: _Invoice, email_invoice: _Invoice) -> _Payment:
        """About 5 % of all payments: money received for an open invoice, not yet matched.

        Returns the one the sample email is about. It carries the exact open amount and
        a reference without the invoice number: the reason it was not matched, and the
        reason the customer has to write.
        """
        rng = self.rng
        target = max(1, round(len(self.payments) * _UNAPPLIED_SHARE / (1 - _UNAPPLIED_SHARE)))
        latest_issue = self.last_day - timedelta(days=4)
        candidates = [
            invoice
            for customer in self.customers
            if customer.status != "closed"
            for invoice in customer.invoices
            if invoice.status == "open"
            and invoice.issued_on <= latest_issue
            and invoice is not dispute
            and invoice is not email_invoice
        ]
        chosen = rng.sample(candidates, min(target - 1, len(candidates)))
        email_payment = self._unapplied(email_invoice, exact=True, with_invoice_number=False)
        for invoice in sorted(chosen, key=lambda i: (i.year, i.number)):
            self._unapplied(invoice, exact=rng.random() < 0.8, with_invoice_number=None)
        return email_payment

    def _unapplied(self, invoice: _Invoice, *, exact: bool, with_invoice_number: bool | None) -> _Payment:
        rng = self.rng
        earliest = min(invoice.issued_on + timedelta(days=1), self.last_day)
        received_on = max(earliest, self.last_day - timedelta(days=rng.randint(2, 40)))
        amount = invoice.open_amount
        fee = Decimal(rng.choice(["10.00", "15.00", "25.00"]))
        if not exact and amount > fee * 20:
            amount -= fee  # the bank kept its charges: a short payment
        payment = _Payment(invoice.customer, received_on, amount, [], intended_for=invoice)
        if with_invoice_number is None:
            with_invoice_number = rng.random() < 0.55
        payment.reference = (
            self._messy_reference(invoice) if with_invoice_number else self._anonymous_reference(payment)
        )
        self.payments.append(payment)
        return payment

    def _messy_reference(self, invoice: _Invoice) -> str:
        """The invoice number the way payers actually type it into a bank transfer."""
        year, n, token = invoice.year, invoice.number, invoice.customer.token
        forms: tuple[Callable[[], str], ...] = (
            lambda: f"PMT INV{year}{n:06d} {token}",
            lambda: f"inv-{year}-{n:06d}",
            lambda: f"INV {year} {n:06d}",
            lambda: f"{token} INV#{year}-{n:06d}",
            lambda: f"Payment invoice {year}/{n:06d}",
            lambda: f"INVOICE NO.{year}{n:06d} THANK YOU",
            lambda: f"Inv {year}-{n} {token}",  # leading zeros dropped
        )
        return self.rng.choice(forms)()

    def _anonymous_reference(self, payment: _Payment) -> str:
        rng, token = self.rng, payment.customer.token
        scheme = {"USD": "ACH CREDIT", "EUR": "SEPA CT", "GBP": "FPS CREDIT"}[payment.customer.currency]
        forms: tuple[Callable[[], str], ...] = (
            lambda: f"WIRE {token} {payment.received_on:%Y%m%d}",
            lambda: f"{scheme} {rng.randint(10**9, 10**10 - 1)}",
            lambda: f"{token} SUPPLIER PAYMENT",
            lambda: f"TRANSFER REF {rng.randint(100000, 999999)} {token}",
        )
        return rng.choice(forms)()

    # -- records -------------------------------------------------------------------

    def customer_record(self, customer: _Customer) -> DemoRecord:
        rng = self.rng
        expires: str | None = None
        if customer.kyc_status == "verified":
            expires = (self.as_of + timedelta(days=rng.randint(20, 730))).isoformat()
        elif customer.kyc_status == "expired":
            expires = (self.as_of - timedelta(days=rng.randint(1, 300))).isoformat()
        # pending and failed: no valid verification, so no expiry date (null).
        step, low, high = {
            "strategic": (50_000, 20, 100),
            "key": (25_000, 8, 40),
            "standard": (5_000, 2, 30),
        }[customer.tier]
        limit = Decimal(step * rng.randint(low, high))
        if customer.status == "closed":
            limit = _ZERO
        updated = self.last_day - timedelta(days=rng.randint(0, 400))
        document = Customer.model_validate(
            {
                "customer_id": customer.customer_id,
                "name": customer.name,
                "status": customer.status,
                "kyc_status": customer.kyc_status,
                "kyc_expires_on": expires,
                "credit_limit": _money(limit, customer.currency),
                "tier": customer.tier,
                "contacts": customer.contacts,
                "updated_at": _timestamp(rng, updated),
            }
        )
        return DemoRecord(CUSTOMERS, customer.customer_id, document)

    def contract_record(self, contract: _Contract) -> DemoRecord:
        signed = contract.valid_from - timedelta(days=self.rng.randint(3, 30))
        document = CustomerContract(
            contract_id=contract.contract_id,
            customer_id=contract.customer.customer_id,
            valid_from=contract.valid_from,
            valid_to=contract.valid_to,
            currency=contract.customer.currency,
            prices=[
                ContractPrice(sku=sku, unit_price=_cents(price)) for sku, price in contract.prices.items()
            ],
            payment_terms_days=contract.terms_days,
            updated_at=_timestamp(self.rng, signed),
        )
        return DemoRecord(CONTRACTS, contract.contract_id, document)

    def invoice_record(self, invoice: _Invoice) -> DemoRecord:
        currency = invoice.customer.currency
        last_change = invoice.issued_on
        if invoice.settlements:
            last_change = max(day for day, _ in invoice.settlements)
        elif invoice.cancelled_on is not None:
            last_change = invoice.cancelled_on
        document = Invoice(
            invoice_id=invoice.invoice_id,
            customer_id=invoice.customer.customer_id,
            contract_id=invoice.contract.contract_id,
            issued_on=invoice.issued_on,
            due_on=invoice.due_on,
            currency=currency,
            lines=[
                InvoiceLine(
                    sku=line.product.sku,
                    description=line.product.description,
                    quantity=Decimal(line.quantity),
                    unit_price=_cents(line.unit_price),
                )
                for line in invoice.lines
            ],
            total=_money(invoice.total, currency),
            open_amount=_money(invoice.open_amount, currency),
            status=invoice.status,
            updated_at=_timestamp(self.rng, last_change),
        )
        return DemoRecord(INVOICES, invoice.invoice_id, document)

    def payment_record(self, payment: _Payment) -> DemoRecord:
        currency = payment.customer.currency
        # Cash application runs the next working day or so after the money arrives.
        booked = min(payment.received_on + timedelta(days=self.rng.randint(0, 2)), self.last_day)
        document = Payment(
            payment_id=payment.payment_id,
            customer_id=payment.customer.customer_id,
            amount=_money(payment.amount, currency),
            received_on=payment.received_on,
            reference=payment.reference,
            status=payment.status,
            applied_to=[
                PaymentApplication(invoice_id=invoice.invoice_id, amount=_cents(amount))
                for invoice, amount in payment.applications
            ],
            updated_at=_timestamp(self.rng, booked),
        )
        return DemoRecord(PAYMENTS, payment.payment_id, document)

    # -- the whole run -------------------------------------------------------------

    def run(self) -> DemoDataset:
        self.build_customers()
        self.build_contracts()
        self.build_invoices()
        dispute, email_invoice = self.choose_showcase()
        contracts = self.number_contracts()
        invoices = self.number_invoices()
        self.build_applied_payments()
        email_payment = self.build_unapplied_payments(dispute, email_invoice)
        payments = self.number_payments()
        return DemoDataset(
            customers=tuple(self.customer_record(c) for c in self.customers),
            contracts=tuple(self.contract_record(c) for c in contracts),
            invoices=tuple(self.invoice_record(i) for i in invoices),
            payments=tuple(self.payment_record(p) for p in payments),
            overpriced_invoice_ids=tuple(i.invoice_id for i in invoices if i.overpriced),
            unapplied_payment_ids=tuple(p.payment_id for p in payments if not p.applications),
            unapplied_payment_targets=tuple(
                (p.payment_id, p.intended_for.invoice_id) for p in payments if p.intended_for is not None
            ),
            shared_contact_owners=tuple(
                (contact.email, (first.customer_id, second.customer_id))
                for contact, (first, second) in self.shared_owners
            ),
            dispute_invoice_id=dispute.invoice_id,
            email_payment_id=email_payment.payment_id,
            seed=self.seed,
            as_of=self.as_of,
        )


def generate_demo_data(
    *, customers: int = 300, seed: int = 42, as_of: date = date(2026, 11, 1)
) -> DemoDataset:
    """Generate a consistent set of reference data for ``customers`` customers.

    Everything scales with ``customers`` (about 10 invoices each on average, issued in
    the 365 days before ``as_of``); nothing happens on or after ``as_of``. The same
    arguments always give the same dataset; the seed changes every draw, and the ids (see
    :func:`id_block`), so two seeds' datasets can share a broker without mixing.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    return _Generator(customers=customers, seed=seed, as_of=as_of).run()
