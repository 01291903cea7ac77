"""Behaviour of the demo reference-data generator, ``crs.demo_data``."""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from crs.demo_data import (
    AR_MAILBOX,
    CONTRACT_ID_PATTERN,
    CONTRACT_ID_PREFIX,
    CUSTOMER_ID_PATTERN,
    CUSTOMER_ID_PREFIX,
    INVOICE_ID_PATTERN,
    INVOICE_ID_PREFIX,
    PAYMENT_ID_PATTERN,
    PAYMENT_ID_PREFIX,
    PRODUCT_CATALOGUE,
    SHARED_CONTACTS,
    DemoDataset,
    contract_id,
    customer_id,
    generate_demo_data,
    invoice_id,
    payment_id,
)

AS_OF = date(2026, 11, 1)
CUSTOMERS = "customers.master.v1"
CONTRACTS = "erp.contracts.v1"
INVOICES = "erp.invoices.v1"
PAYMENTS = "erp.payments.v1"
TWO_PLACES = re.compile(r"\d+\.\d{2}")
WHOLE_NUMBER = re.compile(r"[1-9]\d*")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
SHARED_EMAILS = {contact.email for contact in SHARED_CONTACTS}


@pytest.fixture(scope="module")
def dataset() -> DemoDataset:
    return generate_demo_data()


def values(dataset: DemoDataset, topic: str) -> list[dict[str, Any]]:
    return [record.value for record in dataset.records() if record.topic == topic]


def by_id(dataset: DemoDataset, topic: str, field: str) -> dict[str, dict[str, Any]]:
    return {value[field]: value for value in values(dataset, topic)}


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Every node of a JSON tree with its path."""
    yield path, node
    if isinstance(node, dict):
        for key, child in node.items():
            yield from walk(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from walk(child, f"{path}[{index}]")


def amount(money: dict[str, str]) -> Decimal:
    return Decimal(money["amount"])


def contract_prices(contract: dict[str, Any]) -> dict[str, Decimal]:
    return {price["sku"]: Decimal(price["unit_price"]) for price in contract["prices"]}


def ascii_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.replace("ø", "o").replace("'", ""))
    return re.findall(r"[a-z0-9]+", folded.encode("ascii", "ignore").decode().lower())


def mentions_invoice(reference: str, invoice: str) -> bool:
    """Whether a bank reference names the invoice, however it was typed."""
    year, number = invoice.removeprefix(INVOICE_ID_PREFIX).split("-")
    runs = re.findall(r"\d+", reference)
    if f"{year}{number}" in "".join(runs):
        return True
    return any(first == year and int(second) == int(number) for first, second in itertools.pairwise(runs))


# --- determinism -------------------------------------------------------------------


def test_same_seed_gives_identical_data_and_samples() -> None:
    first = generate_demo_data(customers=40, seed=7)
    second = generate_demo_data(customers=40, seed=7)

    assert list(first.records()) == list(second.records())
    assert first.overpriced_invoice_ids == second.overpriced_invoice_ids
    assert first.unapplied_payment_ids == second.unapplied_payment_ids
    assert first.sample_dispute() == second.sample_dispute()
    assert first.sample_email() == second.sample_email()


def test_different_seeds_give_different_data() -> None:
    first = generate_demo_data(customers=40, seed=1)
    second = generate_demo_data(customers=40, seed=2)

    assert [r.value for r in first.customers] != [r.value for r in second.customers]
    assert [r.value for r in first.invoices] != [r.value for r in second.invoices]
    assert first.sample_dispute()["case_id"] != second.sample_dispute()["case_id"]
    assert first.sample_email()["message_id"] != second.sample_email()["message_id"]


def test_generation_uses_no_global_random_state() -> None:
    import random

    random.seed(1)
    first = generate_demo_data(customers=20, seed=3)
    random.seed(2)
    second = generate_demo_data(customers=20, seed=3)

    assert list(first.records()) == list(second.records())


# --- money -------------------------------------------------------------------------


def test_no_float_anywhere_and_every_amount_has_two_decimals(
    dataset: DemoDataset,
) -> None:
    trees = [record.value for record in dataset.records()]
    trees += [dataset.sample_dispute(), dataset.sample_email()]
    # Every customer, invoice (twice), payment and sample request carries money.
    money_expected = len(dataset.customers) + 2 * len(dataset.invoices) + len(dataset.payments) + 2
    money_seen = 0
    for tree in trees:
        for path, node in walk(tree):
            assert not isinstance(node, float), path
            if isinstance(node, dict) and set(node) == {"amount", "currency"}:
                money_seen += 1
                assert isinstance(node["amount"], str), path
                assert TWO_PLACES.fullmatch(node["amount"]), (path, node)
                assert node["currency"] in {"USD", "EUR", "GBP"}, path
    assert money_seen == money_expected
    for contract in values(dataset, CONTRACTS):
        for price in contract["prices"]:
            assert TWO_PLACES.fullmatch(price["unit_price"]), price
    for invoice in values(dataset, INVOICES):
        for line in invoice["lines"]:
            assert TWO_PLACES.fullmatch(line["unit_price"]), line
            assert WHOLE_NUMBER.fullmatch(line["quantity"]), line
    for payment in values(dataset, PAYMENTS):
        for application in payment["applied_to"]:
            assert TWO_PLACES.fullmatch(application["amount"]), application


def test_invoice_total_is_the_exact_sum_of_its_lines(dataset: DemoDataset) -> None:
    for invoice in values(dataset, INVOICES):
        lines_sum = sum(Decimal(line["quantity"]) * Decimal(line["unit_price"]) for line in invoice["lines"])
        assert amount(invoice["total"]) == lines_sum, invoice["invoice_id"]
        assert invoice["total"]["currency"] == invoice["currency"]
        assert invoice["open_amount"]["currency"] == invoice["currency"]
        assert 1 <= len(invoice["lines"]) <= 4


def test_open_amount_is_consistent_with_status(dataset: DemoDataset) -> None:
    statuses: Counter[str] = Counter()
    for invoice in values(dataset, INVOICES):
        total, open_amount = amount(invoice["total"]), amount(invoice["open_amount"])
        status = invoice["status"]
        statuses[status] += 1
        if status in {"paid", "cancelled"}:
            assert invoice["open_amount"]["amount"] == "0.00", invoice
        elif status == "open":
            assert open_amount == total, invoice
        else:
            assert status == "partially_paid", invoice
            assert Decimal(0) < open_amount < total, invoice
    assert set(statuses) == {"open", "partially_paid", "paid", "cancelled"}
    assert statuses["paid"] > statuses["open"] > statuses["cancelled"]


def test_applied_payments_add_up_and_settle_exactly_what_was_paid(
    dataset: DemoDataset,
) -> None:
    invoices = by_id(dataset, INVOICES, "invoice_id")
    applied_per_invoice: dict[str, Decimal] = defaultdict(Decimal)
    for payment in values(dataset, PAYMENTS):
        if payment["status"] != "applied":
            continue
        applied = [Decimal(a["amount"]) for a in payment["applied_to"]]
        assert applied, payment
        assert sum(applied) == amount(payment["amount"]), payment["payment_id"]
        for application in payment["applied_to"]:
            invoice = invoices[application["invoice_id"]]
            assert invoice["customer_id"] == payment["customer_id"]
            assert invoice["currency"] == payment["amount"]["currency"]
            assert date.fromisoformat(payment["received_on"]) >= date.fromisoformat(invoice["issued_on"])
            applied_per_invoice[application["invoice_id"]] += Decimal(application["amount"])
    for invoice in invoices.values():
        paid = applied_per_invoice.get(invoice["invoice_id"], Decimal(0))
        expected = amount(invoice["total"]) - amount(invoice["open_amount"])
        if invoice["status"] == "cancelled":
            expected = Decimal(0)
        assert paid == expected, invoice["invoice_id"]


def test_unapplied_payments_wait_for_an_open_invoice_with_messy_references(
    dataset: DemoDataset,
) -> None:
    payments = by_id(dataset, PAYMENTS, "payment_id")
    invoices = by_id(dataset, INVOICES, "invoice_id")
    unapplied = {p for p, v in payments.items() if v["status"] == "unapplied"}
    assert set(dataset.unapplied_payment_ids) == unapplied
    assert 0.03 <= len(unapplied) / len(payments) <= 0.07
    targets = dict(dataset.unapplied_payment_targets)
    assert set(targets) == unapplied
    with_number = without_number = messy = 0
    for pid in unapplied:
        payment, invoice = payments[pid], invoices[targets[pid]]
        assert payment["applied_to"] == []
        assert invoice["status"] == "open"
        assert invoice["customer_id"] == payment["customer_id"]
        assert amount(payment["amount"]) <= amount(invoice["open_amount"])
        if mentions_invoice(payment["reference"], invoice["invoice_id"]):
            with_number += 1
            messy += invoice["invoice_id"] not in payment["reference"]
        else:
            without_number += 1
    assert with_number > 0
    assert without_number > 0
    assert messy == with_number  # never the canonical form: matching must normalise


# --- pricing -----------------------------------------------------------------------


def test_overpriced_invoices_bill_above_contract_and_all_others_at_contract(
    dataset: DemoDataset,
) -> None:
    contracts = by_id(dataset, CONTRACTS, "contract_id")
    overpriced = set(dataset.overpriced_invoice_ids)
    invoices = values(dataset, INVOICES)
    for invoice in invoices:
        prices = contract_prices(contracts[invoice["contract_id"]])
        above = [line for line in invoice["lines"] if Decimal(line["unit_price"]) > prices[line["sku"]]]
        below = [line for line in invoice["lines"] if Decimal(line["unit_price"]) < prices[line["sku"]]]
        assert below == [], invoice["invoice_id"]
        if invoice["invoice_id"] in overpriced:
            assert len(above) == 1, invoice["invoice_id"]
        else:
            assert above == [], invoice["invoice_id"]
    assert 0.05 <= len(overpriced) / len(invoices) <= 0.11


# --- customers ---------------------------------------------------------------------


def test_default_size_has_every_status_kyc_state_tier_and_currency(
    dataset: DemoDataset,
) -> None:
    customers = values(dataset, CUSTOMERS)
    statuses = Counter(c["status"] for c in customers)
    kyc = Counter(c["kyc_status"] for c in customers)
    tiers = Counter(c["tier"] for c in customers)
    currencies = Counter(c["credit_limit"]["currency"] for c in customers)

    assert set(statuses) == {"active", "blocked", "closed"}
    assert set(kyc) == {"verified", "pending", "expired", "failed"}
    assert set(tiers) == {"strategic", "key", "standard"}
    assert set(currencies) == {"USD", "EUR", "GBP"}
    assert statuses["active"] > len(customers) * 0.8
    assert kyc["verified"] > len(customers) * 0.75
    assert tiers["strategic"] < tiers["key"] < tiers["standard"]
    assert currencies["USD"] > currencies["EUR"] > currencies["GBP"]


def test_kyc_expiry_matches_the_kyc_state(dataset: DemoDataset) -> None:
    for customer in values(dataset, CUSTOMERS):
        expires = customer["kyc_expires_on"]
        if customer["kyc_status"] == "verified":
            assert date.fromisoformat(expires) > AS_OF, customer
        elif customer["kyc_status"] == "expired":
            assert date.fromisoformat(expires) < AS_OF, customer
        else:
            assert expires is None, customer


def test_credit_limit_grows_with_tier(dataset: DemoDataset) -> None:
    limits: dict[str, list[Decimal]] = defaultdict(list)
    for customer in values(dataset, CUSTOMERS):
        if customer["status"] != "closed":
            limits[customer["tier"]].append(amount(customer["credit_limit"]))
    assert min(limits["strategic"]) >= max(limits["standard"])
    assert min(limits["key"]) > min(limits["standard"])


def test_company_names_are_unique_and_contacts_use_their_domain(
    dataset: DemoDataset,
) -> None:
    customers = values(dataset, CUSTOMERS)
    assert len({c["name"] for c in customers}) == len(customers)
    domains_seen: dict[str, str] = {}
    for customer in customers:
        assert 1 <= len(customer["contacts"]) <= 3, customer
        own = [c for c in customer["contacts"] if c["email"] not in SHARED_EMAILS]
        assert own, customer
        domains = {c["email"].rsplit("@", 1)[1] for c in own}
        assert len(domains) == 1, customer
        domain = domains.pop()
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*\.example", domain), domain
        # The domain is the company name without its legal form, folded to ASCII.
        name_words = ascii_words(customer["name"])
        domain_words = domain.removesuffix(".example").split("-")
        assert name_words[: len(domain_words)] == domain_words, customer
        owner = domains_seen.setdefault(domain, customer["customer_id"])
        assert owner == customer["customer_id"], domain
        for contact in own:
            assert contact["name"], contact
            assert re.fullmatch(r"[a-z0-9.]+@" + re.escape(domain), contact["email"])


def test_shared_contacts_belong_to_exactly_two_customers(dataset: DemoDataset) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for customer in values(dataset, CUSTOMERS):
        for contact in customer["contacts"]:
            owners[contact["email"]].add(customer["customer_id"])
    shared = {email: ids for email, ids in owners.items() if len(ids) > 1}

    assert len(shared) >= 2
    assert set(shared) <= SHARED_EMAILS
    assert all(len(ids) == 2 for ids in shared.values())
    assert {e: set(ids) for e, ids in dataset.shared_contact_owners} == shared


# --- references and dates ----------------------------------------------------------


def test_every_reference_resolves_within_one_customer_and_currency(
    dataset: DemoDataset,
) -> None:
    customers = by_id(dataset, CUSTOMERS, "customer_id")
    contracts = by_id(dataset, CONTRACTS, "contract_id")
    invoices = by_id(dataset, INVOICES, "invoice_id")
    currency_of = {cid: c["credit_limit"]["currency"] for cid, c in customers.items()}
    contracts_per_customer = Counter(c["customer_id"] for c in contracts.values())

    assert set(contracts_per_customer) == set(customers)
    assert set(contracts_per_customer.values()) <= {1, 2}
    for contract in contracts.values():
        assert contract["currency"] == currency_of[contract["customer_id"]]
        assert 3 <= len(contract["prices"]) <= 9
        assert contract["payment_terms_days"] in {30, 45, 60}
    for invoice in invoices.values():
        contract = contracts[invoice["contract_id"]]
        assert invoice["customer_id"] in customers
        assert contract["customer_id"] == invoice["customer_id"]
        assert contract["currency"] == invoice["currency"]
        assert invoice["currency"] == currency_of[invoice["customer_id"]]
        prices = contract_prices(contract)
        assert all(line["sku"] in prices for line in invoice["lines"])
    for payment in values(dataset, PAYMENTS):
        assert payment["amount"]["currency"] == currency_of[payment["customer_id"]]
        for application in payment["applied_to"]:
            assert application["invoice_id"] in invoices


def test_dates_fall_in_the_year_before_as_of_and_follow_the_terms(
    dataset: DemoDataset,
) -> None:
    contracts = by_id(dataset, CONTRACTS, "contract_id")
    for invoice in values(dataset, INVOICES):
        issued = date.fromisoformat(invoice["issued_on"])
        contract = contracts[invoice["contract_id"]]
        assert AS_OF - timedelta(days=365) <= issued < AS_OF
        assert date.fromisoformat(contract["valid_from"]) <= issued
        assert issued <= date.fromisoformat(contract["valid_to"])
        terms = timedelta(days=contract["payment_terms_days"])
        assert date.fromisoformat(invoice["due_on"]) == issued + terms
    for payment in values(dataset, PAYMENTS):
        assert date.fromisoformat(payment["received_on"]) < AS_OF
    for record in dataset.records():
        stamp = record.value["updated_at"]
        assert TIMESTAMP.fullmatch(stamp), stamp
        assert date.fromisoformat(stamp[:10]) < AS_OF, record.key


def test_ids_have_recognisable_formats_and_are_unique(dataset: DemoDataset) -> None:
    patterns = {
        CUSTOMERS: ("customer_id", CUSTOMER_ID_PATTERN),
        CONTRACTS: ("contract_id", CONTRACT_ID_PATTERN),
        INVOICES: ("invoice_id", INVOICE_ID_PATTERN),
        PAYMENTS: ("payment_id", PAYMENT_ID_PATTERN),
    }
    keys: Counter[str] = Counter()
    for record in dataset.records():
        field, pattern = patterns[record.topic]
        assert record.key == record.value[field]
        assert re.fullmatch(pattern, record.key), record.key
        keys[record.key] += 1
    assert max(keys.values()) == 1
    assert dataset.customers[0].key == "CUST-00001"
    assert {r.key[:8] for r in dataset.invoices} == {"INV-2025", "INV-2026"}


def test_id_helpers_format_like_the_data() -> None:
    assert customer_id(1) == "CUST-00001"
    assert contract_id(1) == "CTR-2026-0001"
    assert invoice_id(123) == "INV-2026-000123"
    assert payment_id(7, 2025) == "PAY-2025-000007"
    assert customer_id(1).startswith(CUSTOMER_ID_PREFIX)
    assert contract_id(1).startswith(CONTRACT_ID_PREFIX)
    assert invoice_id(1).startswith(INVOICE_ID_PREFIX)
    assert payment_id(1).startswith(PAYMENT_ID_PREFIX)
    assert re.fullmatch(INVOICE_ID_PATTERN, invoice_id(1_234_567))
    with pytest.raises(ValueError, match="start at 1"):
        invoice_id(0)


def test_records_come_customers_then_contracts_then_invoices_then_payments(
    dataset: DemoDataset,
) -> None:
    rank = {CUSTOMERS: 0, CONTRACTS: 1, INVOICES: 2, PAYMENTS: 3}
    ranks = [rank[record.topic] for record in dataset.records()]

    assert ranks == sorted(ranks)
    assert Counter(ranks) == {
        0: len(dataset.customers),
        1: len(dataset.contracts),
        2: len(dataset.invoices),
        3: len(dataset.payments),
    }
    assert all(r.topic == INVOICES for r in dataset.invoices)


def test_every_value_survives_a_json_round_trip(dataset: DemoDataset) -> None:
    trees = [record.value for record in dataset.records()]
    for tree in [*trees, dataset.sample_dispute(), dataset.sample_email()]:
        assert json.loads(json.dumps(tree, allow_nan=False)) == tree


# --- size --------------------------------------------------------------------------


def test_default_size_is_hundreds_of_customers_and_thousands_of_invoices(
    dataset: DemoDataset,
) -> None:
    assert len(dataset.customers) == 300
    assert 300 <= len(dataset.contracts) <= 600
    assert 2_400 <= len(dataset.invoices) <= 3_600
    assert len(dataset.payments) > 1_500
    skus = {line["sku"] for i in values(dataset, INVOICES) for line in i["lines"]}
    assert skus == {product.sku for product in PRODUCT_CATALOGUE}


def test_scales_beyond_the_default_size() -> None:
    big = generate_demo_data(customers=1_000, seed=5)

    assert len(big.customers) == 1_000
    assert len(big.invoices) > 8_000
    assert len({r.key for r in big.records()}) == sum(big.counts().values())
    assert big.sample_dispute()["customer_id"].startswith(CUSTOMER_ID_PREFIX)


@pytest.mark.parametrize("size", [1, 2, 5])
def test_tiny_datasets_still_have_both_samples(size: int) -> None:
    tiny = generate_demo_data(customers=size, seed=11)

    assert len(tiny.customers) == size
    assert tiny.sample_dispute()["invoice_ids"] == [tiny.dispute_invoice_id]
    assert tiny.sample_email()["subject"]


def test_rejects_an_empty_dataset() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_demo_data(customers=0)


# --- helpers and samples -----------------------------------------------------------


def test_lookup_helpers_return_copies(dataset: DemoDataset) -> None:
    first = dataset.customers[0].key
    customer = dataset.customer(first)
    customer["contacts"].clear()

    assert dataset.customer(first)["contacts"]
    invoices = dataset.invoices_of(first)
    assert invoices
    assert all(i["customer_id"] == first for i in invoices)
    assert len(invoices) == sum(1 for r in dataset.invoices if r.value["customer_id"] == first)
    assert dataset.invoices_of("CUST-99999") == []
    with pytest.raises(KeyError):
        dataset.customer("CUST-99999")


def test_sample_dispute_claims_the_contract_repricing(dataset: DemoDataset) -> None:
    dispute = dataset.sample_dispute()
    customer = dataset.customer(dispute["customer_id"])
    (invoice_ref,) = dispute["invoice_ids"]
    invoice = dataset.invoice(invoice_ref)
    contract = dataset.contract(invoice["contract_id"])
    prices = contract_prices(contract)
    repriced = sum(Decimal(ln["quantity"]) * prices[ln["sku"]] for ln in invoice["lines"])
    total = amount(invoice["total"])

    assert dispute["type"] == "billing_dispute"
    assert customer["status"] == "active"
    assert customer["kyc_status"] == "verified"
    assert date.fromisoformat(customer["kyc_expires_on"]) > AS_OF
    assert invoice["status"] == "open"
    assert invoice_ref in dataset.overpriced_invoice_ids
    assert invoice["customer_id"] == customer["customer_id"]
    assert dispute["contract_id"] == contract["contract_id"]
    assert amount(dispute["expected_amount"]) == repriced
    assert amount(dispute["expected_amount"]) < total
    assert amount(dispute["disputed_amount"]) == total - repriced
    assert dispute["expected_amount"]["currency"] == invoice["currency"]
    assert invoice_ref in dispute["subject"]
    assert dispute["contact"] in customer["contacts"]
    assert dispute["contact"]["email"] not in SHARED_EMAILS
    assert TIMESTAMP.fullmatch(dispute["submitted_at"])
    assert dispute["case_id"]


def test_sample_email_comes_from_an_own_contact_and_names_the_invoice(
    dataset: DemoDataset,
) -> None:
    email = dataset.sample_email()
    customer = dataset.customer(dataset.sample_dispute()["customer_id"])
    payment = dataset.payment(dataset.email_payment_id)
    invoice_ref = dict(dataset.unapplied_payment_targets)[dataset.email_payment_id]
    invoice = dataset.invoice(invoice_ref)
    match = re.fullmatch(r"(.+) <([^>]+)>", email["from"])

    assert match is not None
    name, address = match.groups()
    assert {"name": name, "email": address} in customer["contacts"]
    assert address not in SHARED_EMAILS
    assert email["to"] == [AR_MAILBOX]
    assert re.fullmatch(r"<[^@<>]+@[^@<>]+>", email["message_id"])
    assert invoice_ref in email["subject"]
    assert invoice_ref in email["body_text"]
    assert invoice["customer_id"] == customer["customer_id"]
    assert invoice["status"] == "open"
    assert payment["status"] == "unapplied"
    assert payment["amount"] == invoice["open_amount"]
    assert payment["reference"] in email["body_text"]
    assert TIMESTAMP.fullmatch(email["received_at"])


def test_values_are_accepted_by_the_contract_models(dataset: DemoDataset) -> None:
    contract_models = pytest.importorskip("shared.contract")
    models = {
        CUSTOMERS: contract_models.Customer,
        CONTRACTS: contract_models.CustomerContract,
        INVOICES: contract_models.Invoice,
        PAYMENTS: contract_models.Payment,
    }
    for record in dataset.records():
        models[record.topic].model_validate(record.value)
    contract_models.CrmRequest.model_validate(dataset.sample_dispute())
    contract_models.EmailRequest.model_validate(dataset.sample_email())
