"""Resolution's finance strategies, approval policy and segregation of duties, table by table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.resolution import approvals
from services.resolution.approvals import RecordedApproval, Verdict
from services.resolution.domain import acknowledge, build_resolution, requesters_of, resolution_id_for
from services.resolution.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy
from services.resolution.strategies import (
    Facts,
    ForPerson,
    NotSupported,
    Posting,
    Postings,
    propose,
    reference_fits,
    remaining_of,
)
from shared.contract import (
    ApprovalDecision,
    Customer,
    CustomerContract,
    ErpAck,
    Invoice,
    Payment,
    RequestStatus,
    RequestType,
    ResolutionKind,
)
from shared.directory import DirectoryUser, FileUserDirectory
from shared.events import RequestRouted
from shared.money import Money

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POLICY = load_policy()
TOLERANCE = POLICY.write_off_tolerance


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def routed(request_type: RequestType | None, **details: Any) -> RequestRouted:
    return RequestRouted.model_validate(
        {
            "event_id": "e1",
            "request_id": "REQ-1",
            "correlation_id": "CASE-1",
            "occurred_at": NOW,
            "details": {
                "channel": "portal",
                "source_id": "CASE-1",
                "customer_id": "CUST-1",
                "request_type": request_type,
                "subject": "Request",
                "invoice_ids": ("INV-1",),
                "contact": {"name": "Jane", "email": "Jane@Acme.example"},
                "submitted_at": "2026-11-22T10:00:00Z",
                **details,
            },
            "customer_id": "CUST-1",
            "customer_tier": "key",
            "queue": "accounts_receivable",
            "priority": "normal",
            "sla_due_at": NOW,
            "rule_version": "r1",
        }
    )


def invoice(**change: Any) -> Invoice:
    values: dict[str, Any] = {
        "invoice_id": "INV-1",
        "customer_id": "CUST-1",
        "contract_id": "CTR-1",
        "issued_on": "2026-10-01",
        "currency": "USD",
        "lines": [
            {"sku": "CLD", "quantity": "2", "unit_price": "600.00"},
            {"sku": "SUP", "quantity": "1", "unit_price": "99.99"},
        ],
        "total": usd("1299.99"),
        "open_amount": usd("1299.99"),
        "status": "open",
        "updated_at": NOW,
        **change,
    }
    return Invoice.model_validate(values)


def contract(**change: Any) -> CustomerContract:
    values: dict[str, Any] = {
        "contract_id": "CTR-1",
        "customer_id": "CUST-1",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
        "currency": "USD",
        "prices": [{"sku": "CLD", "unit_price": "500.00"}, {"sku": "SUP", "unit_price": "99.99"}],
        "updated_at": NOW,
        **change,
    }
    return CustomerContract.model_validate(values)


def payment(
    payment_id: str, amount: str, received_on: str, reference: str | None = None, **change: Any
) -> Payment:
    values: dict[str, Any] = {
        "payment_id": payment_id,
        "customer_id": "CUST-1",
        "amount": usd(amount),
        "received_on": received_on,
        "reference": reference,
        "status": "unapplied",
        "updated_at": NOW,
        **change,
    }
    return Payment.model_validate(values)


def customer(limit: str = "50000.00") -> Customer:
    return Customer.model_validate(
        {
            "customer_id": "CUST-1",
            "name": "Acme",
            "status": "active",
            "kyc_status": "verified",
            "credit_limit": usd(limit),
            "updated_at": NOW,
        }
    )


def facts(
    invoices: tuple[Invoice, ...] = (),
    contracts: tuple[CustomerContract, ...] = (),
    payments: tuple[Payment, ...] = (),
    the_customer: Customer | None = None,
) -> Facts:
    return Facts(
        customer=the_customer,
        invoices={one.invoice_id: one for one in invoices},
        contracts={one.contract_id: one for one in contracts},
        payments={one.payment_id: one for one in payments},
    )


# --- pricing disputes and invoice corrections -------------------------------------------------


def test_an_overcharged_invoice_is_credited_exactly_the_difference_to_the_contract_price() -> None:
    event = routed(RequestType.BILLING_DISPUTE, expected_amount=usd("900.00"))
    proposal = propose(event, facts((invoice(),), (contract(),)), write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting)
    assert proposal.kind is ResolutionKind.CREDIT_MEMO
    assert proposal.amount.amount == Decimal("200.00")  # 2 x (600 - 500), not what the customer expected
    assert proposal.original_amount is not None
    assert proposal.original_amount.amount == Decimal("1299.99")
    assert proposal.corrected_amount is not None
    assert proposal.corrected_amount.amount == Decimal("1099.99")
    assert "CLD 2 x 600.00, contract 500.00: 200.00 too much" in proposal.explanation
    assert "SUP 1 x 99.99, contract 99.99: not above the contract" in proposal.explanation
    assert "You expected 900.00 USD." in proposal.explanation


def test_an_invoice_correction_posts_an_invoice_correction() -> None:
    event = routed(RequestType.INVOICE_CORRECTION)
    proposal = propose(event, facts((invoice(),), (contract(),)), write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting)
    assert proposal.kind is ResolutionKind.INVOICE_CORRECTION
    assert proposal.amount.amount == Decimal("200.00")


def test_fractional_quantities_are_credited_to_the_cent() -> None:
    lines = [{"sku": "CLD", "quantity": "1.333", "unit_price": "600.00"}]
    event = routed(RequestType.BILLING_DISPUTE)
    the_invoice = invoice(lines=lines, total=usd("799.80"), open_amount=usd("799.80"))
    proposal = propose(event, facts((the_invoice,), (contract(),)), write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting)
    assert proposal.amount.amount == Decimal("133.30")
    assert proposal.amount.amount.as_tuple().exponent == -2


def money(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def test_a_yen_credit_is_rounded_to_whole_yen_and_explained_without_decimals() -> None:
    # 1.5 x (1,001 - 800) = 301.5 yen: yen have no minor units, so the credit is 302 (half up).
    lines = [{"sku": "CLD", "quantity": "1.5", "unit_price": "1001"}]
    the_invoice = invoice(
        lines=lines, currency="JPY", total=money("1502", "JPY"), open_amount=money("1502", "JPY")
    )
    the_contract = contract(currency="JPY", prices=[{"sku": "CLD", "unit_price": "800"}])
    proposal = propose(
        routed(RequestType.BILLING_DISPUTE),
        facts((the_invoice,), (the_contract,)),
        write_off_tolerance=TOLERANCE,
    )
    assert isinstance(proposal, Posting), proposal
    assert proposal.amount == Money(amount=Decimal("302"), currency="JPY")
    assert proposal.amount.amount.as_tuple().exponent == 0
    assert proposal.corrected_amount == Money(amount=Decimal("1200"), currency="JPY")
    assert "CLD 1.5 x 1,001, contract 800: 302 too much" in proposal.explanation


def test_a_dinar_credit_keeps_its_three_decimals() -> None:
    # 3 x (12.345 - 12.000) = 1.035 KWD: a dinar has 1,000 fils, nothing is rounded to 1.04.
    lines = [{"sku": "CLD", "quantity": "3", "unit_price": "12.345"}]
    the_invoice = invoice(
        lines=lines, currency="KWD", total=money("37.035", "KWD"), open_amount=money("37.035", "KWD")
    )
    the_contract = contract(currency="KWD", prices=[{"sku": "CLD", "unit_price": "12.000"}])
    proposal = propose(
        routed(RequestType.BILLING_DISPUTE),
        facts((the_invoice,), (the_contract,)),
        write_off_tolerance=TOLERANCE,
    )
    assert isinstance(proposal, Posting), proposal
    assert proposal.amount == Money(amount=Decimal("1.035"), currency="KWD")
    assert proposal.corrected_amount == Money(amount=Decimal("36.000"), currency="KWD")
    assert "CLD 3 x 12.345, contract 12.000: 1.035 too much" in proposal.explanation


def test_a_dinar_payment_is_allocated_to_the_fils() -> None:
    the_invoice = invoice(currency="KWD", total=money("10.125", "KWD"), open_amount=money("10.125", "KWD"))
    paid = payment("PAY-A", "10.125", "2026-10-21", reference="INV-1").model_copy(
        update={"amount": Money(amount=Decimal("10.125"), currency="KWD")}
    )
    proposal = propose(
        routed(RequestType.PAYMENT_QUERY), facts((the_invoice,), (), (paid,)), write_off_tolerance=TOLERANCE
    )
    assert isinstance(proposal, Posting), proposal
    assert proposal.amount == Money(amount=Decimal("10.125"), currency="KWD")
    assert proposal.corrected_amount == Money(amount=Decimal("0"), currency="KWD")


def test_a_yen_write_off_states_its_tolerance_in_whole_yen() -> None:
    the_invoice = invoice(currency="JPY", total=money("1300", "JPY"), open_amount=money("1300", "JPY"))
    proposal = propose(
        routed(RequestType.WRITE_OFF, disputed_amount=money("20", "JPY")),
        facts((the_invoice,)),
        write_off_tolerance=TOLERANCE,
    )
    assert isinstance(proposal, Posting), proposal
    assert proposal.amount == Money(amount=Decimal("20"), currency="JPY")
    assert (
        "the automatic tolerance is at most 50.00 USD and at most 2.00% of the invoice total 1,300 JPY, "
        "here 26 JPY; 20 JPY (0.134 USD at 0.0067) against 50.00 USD: within it" in proposal.explanation
    )


@pytest.mark.parametrize(
    ("the_facts", "outcome", "reason"),
    [
        # Priced as the contract says: the claim is not supported, nothing to post.
        (
            facts((invoice(),), (contract(prices=[{"sku": "CLD", "unit_price": "600.00"}]),)),
            NotSupported,
            "claim_not_supported",
        ),
        (
            facts((invoice(),), (contract(prices=[{"sku": "CLD", "unit_price": "650.00"}]),)),
            NotSupported,
            "claim_not_supported",
        ),
        (facts((invoice(),), ()), ForPerson, "reference_data_missing"),
        (facts((), (contract(),)), ForPerson, "reference_data_missing"),
        (facts((invoice(contract_id=None),), (contract(),)), ForPerson, "no_contract"),
        (facts((invoice(),), (contract(valid_from="2026-11-01"),)), ForPerson, "contract_does_not_apply"),
        (facts((invoice(),), (contract(currency="EUR"),)), ForPerson, "contract_does_not_apply"),
        (facts((invoice(lines=[]),), (contract(),)), ForPerson, "no_invoice_lines"),
    ],
)
def test_a_dispute_the_documents_do_not_support_is_not_credited(
    the_facts: Facts, outcome: type[NotSupported | ForPerson], reason: str
) -> None:
    proposal = propose(
        routed(RequestType.BILLING_DISPUTE, expected_amount=usd("100.00")),
        the_facts,
        write_off_tolerance=TOLERANCE,
    )
    assert isinstance(proposal, outcome)
    assert proposal.reason == reason
    if reason == "reference_data_missing":
        assert isinstance(proposal, ForPerson)
        assert proposal.awaiting in {"Invoice INV-1", "Contract CTR-1"}


def test_an_unsupported_claim_says_what_was_computed() -> None:
    the_contract = contract(prices=[{"sku": "CLD", "unit_price": "600.00"}])
    proposal = propose(
        routed(RequestType.BILLING_DISPUTE, expected_amount=usd("1000.00")),
        facts((invoice(),), (the_contract,)),
        write_off_tolerance=TOLERANCE,
    )
    assert isinstance(proposal, NotSupported)
    assert "CLD 2 x 600.00, contract 600.00: not above the contract" in proposal.explanation
    assert "SUP 1 x 99.99: no contract price, unchanged" in proposal.explanation
    assert "stays at 1,299.99 USD" in proposal.explanation
    assert "You expected 1,000.00 USD" in proposal.explanation


def second_invoice(**change: Any) -> Invoice:
    """INV-2: one line of CLD at 550.00 (contract 500.00) unless changed."""
    values: dict[str, Any] = {
        "invoice_id": "INV-2",
        "lines": [{"sku": "CLD", "quantity": "1", "unit_price": "550.00"}],
        "total": usd("550.00"),
        "open_amount": usd("550.00"),
        **change,
    }
    return invoice(**values)


def test_a_dispute_over_several_invoices_is_repriced_invoice_by_invoice() -> None:
    event = routed(
        RequestType.BILLING_DISPUTE, invoice_ids=("INV-1", "INV-2", "INV-3"), expected_amount=usd("9")
    )
    at_contract = second_invoice(
        invoice_id="INV-3", lines=[{"sku": "CLD", "quantity": "1", "unit_price": "500"}]
    )
    the_facts = facts((invoice(), second_invoice(), at_contract), (contract(),))
    proposal = propose(event, the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Postings)
    assert [(p.invoice_id, p.amount.amount) for p in proposal.postings] == [
        ("INV-1", Decimal("200.00")),
        ("INV-2", Decimal("50.00")),
    ]
    assert {p.kind for p in proposal.postings} == {ResolutionKind.CREDIT_MEMO}
    assert proposal.explanation.startswith("Corrected invoices INV-1 and INV-2; INV-3 stays as invoiced.")
    assert "Invoice INV-3: We checked invoice INV-3 repriced" in proposal.explanation
    assert proposal.explanation.count("You expected") == 1
    ids = {resolution_id_for("REQ-1", p.kind, p.document_id) for p in proposal.postings}
    assert len(ids) == 2  # one stable resolution id per invoice


@pytest.mark.parametrize(
    ("the_facts", "outcome", "reason"),
    [
        # None of them above the contract: nothing to credit, one answer for all.
        (
            facts(
                (invoice(), second_invoice()),
                (
                    contract(
                        prices=[{"sku": "CLD", "unit_price": "600"}, {"sku": "SUP", "unit_price": "99.99"}]
                    ),
                ),
            ),
            NotSupported,
            "claim_not_supported",
        ),
        # One not known yet: the whole request waits for it.
        (facts((invoice(),), (contract(),)), ForPerson, "reference_data_missing"),
        # One a person must look at: all of it goes to a person, with what was computed.
        (facts((invoice(), second_invoice(contract_id=None)), (contract(),)), ForPerson, "no_contract"),
    ],
)
def test_a_dispute_over_several_invoices_is_never_half_answered(
    the_facts: Facts, outcome: type[NotSupported | ForPerson], reason: str
) -> None:
    event = routed(RequestType.BILLING_DISPUTE, invoice_ids=("INV-1", "INV-2"))
    proposal = propose(event, the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, outcome)
    assert proposal.reason == reason
    if reason == "reference_data_missing":
        assert isinstance(proposal, ForPerson)
        assert proposal.awaiting == "Invoice INV-2"
    elif reason == "no_contract":
        assert "Invoice INV-1: A credit memo of 200.00 USD" in proposal.explanation


# --- payment not posted -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "payments", "expected"),
    [
        # Amount and date match one payment.
        (
            {"mentioned_dates": ["2026-10-20"]},
            (payment("PAY-A", "1299.99", "2026-10-21"), payment("PAY-B", "1299.99", "2026-09-01")),
            "PAY-A",
        ),
        # Two with the same amount, but only one bank reference names the invoice.
        (
            {},
            (
                payment("PAY-A", "1299.99", "2026-10-21", "INV 1 thanks"),
                payment("PAY-B", "1299.99", "2026-10-22"),
            ),
            "PAY-A",
        ),
        # A reference naming another invoice rules that payment out.
        (
            {},
            (payment("PAY-A", "1299.99", "2026-10-21", "INV-9"), payment("PAY-B", "1299.99", "2026-10-22")),
            "PAY-B",
        ),
        # The disputed amount is what was paid (a part payment).
        ({"disputed_amount": usd("500.00")}, (payment("PAY-A", "500.00", "2026-10-21"),), "PAY-A"),
        # What the customer says they paid, the day they say, without a currency in their text.
        (
            {"stated_amounts": [{"amount": "1000.00", "role": "paid"}], "payment_date": "2026-10-20"},
            (payment("PAY-A", "1299.99", "2026-10-20"), payment("PAY-B", "1000.00", "2026-10-21")),
            "PAY-B",
        ),
        # A reference naming the invoice wins over amount and date (a partial payment).
        (
            {"paid_amount": usd("1299.99"), "payment_date": "2026-10-20"},
            (payment("PAY-A", "1299.99", "2026-10-20"), payment("PAY-B", "800.00", "2026-10-21", "inv-1")),
            "PAY-B",
        ),
        # A partly applied payment with what is left of it.
        (
            {},
            (
                payment(
                    "PAY-A",
                    "2000.00",
                    "2026-10-21",
                    status="applied",
                    applied_to=[{"invoice_id": "INV-0", "amount": "700.01"}],
                ),
            ),
            "PAY-A",
        ),
        # The customer names the payment.
        (
            {"payment_ids": ("PAY-B",)},
            (payment("PAY-A", "1299.99", "2026-10-21"), payment("PAY-B", "10.00", "2026-10-22")),
            "PAY-B",
        ),
    ],
)
def test_the_one_matching_unapplied_payment_is_allocated_to_the_invoice(
    details: dict[str, Any], payments: tuple[Payment, ...], expected: str
) -> None:
    event = routed(RequestType.PAYMENT_QUERY, **details)
    proposal = propose(event, facts((invoice(),), (), payments), write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting), proposal
    assert proposal.kind is ResolutionKind.PAYMENT_ALLOCATION
    assert proposal.payment_id == expected
    assert proposal.invoice_id == "INV-1"
    paid = remaining_of(next(one for one in payments if one.payment_id == expected))
    assert proposal.amount.amount == min(paid, Decimal("1299.99"))
    assert proposal.corrected_amount is not None
    assert proposal.corrected_amount.amount == Decimal("1299.99") - proposal.amount.amount


@pytest.mark.parametrize(
    ("payments", "reason", "listed"),
    [
        ((), "payment_not_found", []),
        ((payment("PAY-A", "100.00", "2026-10-21"),), "payment_not_found", ["PAY-A"]),
        ((payment("PAY-A", "1299.99", "2026-10-21", status="applied"),), "payment_not_found", []),
        ((payment("PAY-A", "1299.99", "2026-10-21", customer_id="CUST-2"),), "payment_not_found", []),
        (
            (payment("PAY-A", "1299.99", "2026-10-21"), payment("PAY-B", "1299.99", "2026-10-22")),
            "several_payments_match",
            ["PAY-A", "PAY-B"],
        ),
    ],
)
def test_no_or_several_candidates_go_to_a_person_with_the_candidates_listed(
    payments: tuple[Payment, ...], reason: str, listed: list[str]
) -> None:
    proposal = propose(
        routed(RequestType.PAYMENT_QUERY), facts((invoice(),), (), payments), write_off_tolerance=TOLERANCE
    )
    assert isinstance(proposal, ForPerson)
    assert proposal.reason == reason
    for payment_id in listed:
        assert payment_id in proposal.explanation
    assert list(proposal.candidates) == listed  # kept with the request for a person to choose
    if not listed:
        assert "Unapplied and partly applied payments of the customer: none" in proposal.explanation
    # None found: the payment may not be posted yet, so the request waits for it; several: a person.
    assert (proposal.awaiting is not None) == (reason == "payment_not_found")


@pytest.mark.parametrize(
    ("reference", "fits"),
    [
        ("Payment INV-1", True),
        ("inv 1", True),
        ("INV-2026-1", False),
        ("Rechnung 4712", False),
        ("thanks", None),
        ("ACME 2026 order", None),
        (None, None),
    ],
)
def test_a_bank_reference_names_this_invoice_another_or_none(
    reference: str | None, fits: bool | None
) -> None:
    assert reference_fits(reference, "INV-1") is fits


def story_invoice(invoice_id: str, open_amount: str) -> Invoice:
    return invoice(invoice_id=invoice_id, total=usd(open_amount), open_amount=usd(open_amount))


def test_the_payment_told_in_words_is_found_by_the_invoice_number_in_its_bank_reference() -> None:
    """The CRM story: "we paid 18,500.00 on 28 Sep for invoice RE/2026/0042"."""
    event = routed(
        RequestType.PAYMENT_QUERY,
        invoice_ids=("RE/2026/0042",),
        stated_amounts=[{"amount": "18500.00", "role": "paid"}],
        paid_amount=usd("18500.00"),
        payment_date="2026-09-28",
    )
    ours = payment("90012345", "18500.00", "2026-09-29", "RE 2026 42 ACME")
    same_amount = payment("90012346", "18500.00", "2026-09-28")
    the_invoice = story_invoice("RE/2026/0042", "18500.00")
    the_facts = facts((the_invoice,), (), (ours, same_amount))
    proposal = propose(event, the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting), proposal
    assert (proposal.payment_id, proposal.invoice_id, proposal.amount) == (
        "90012345",
        "RE/2026/0042",
        the_invoice.total,
    )
    assert "bank reference naming RE/2026/0042" in proposal.explanation


def test_a_smaller_payment_leaves_the_invoice_partly_open() -> None:
    event = routed(RequestType.PAYMENT_QUERY, invoice_ids=("4711",))
    the_facts = facts(
        (story_invoice("4711", "18500.00"),), (), (payment("P-1", "10000.00", "2026-09-29", "4711"),)
    )
    proposal = propose(event, the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting)
    assert proposal.amount == Money(amount="10000.00", currency="USD")
    assert proposal.corrected_amount == Money(amount="8500.00", currency="USD")


def test_one_payment_naming_several_invoices_is_split_across_them_in_the_order_of_its_reference() -> None:
    first, second = story_invoice("4711", "1000.00"), story_invoice("4712", "2500.00")
    the_payment = payment("P-1", "3000.00", "2026-09-29", "Rg. 4712 + 4711")
    the_facts = Facts(
        customer=None,
        invoices={"4711": first},
        contracts={},
        payments={"P-1": the_payment},
        invoices_by_number={"4712": [second], "4711": [first]},
    )
    proposal = propose(
        routed(RequestType.PAYMENT_QUERY, invoice_ids=("4711",)), the_facts, write_off_tolerance=TOLERANCE
    )
    assert isinstance(proposal, Postings), proposal
    assert [(p.invoice_id, p.amount.amount, p.corrected_amount) for p in proposal.postings] == [
        ("4712", Decimal("2500.00"), Money(amount="0.00", currency="USD")),
        ("4711", Decimal("500.00"), Money(amount="500.00", currency="USD")),
    ]
    assert [p.document_id for p in proposal.postings] == ["P-1>4712", "P-1>4711"]
    assert "in the order of its bank reference" in proposal.explanation


@pytest.mark.parametrize(
    ("payments", "by_number", "outcome", "reason"),
    [
        # Found by amount and date, its reference names one of the customer's invoices: allocated there.
        ((payment("P-1", "700.00", "2026-09-28", "4711"),), {"4711": ["4711"]}, Posting, None),
        # Found, but nothing says which invoice: a person applies it.
        ((payment("P-1", "700.00", "2026-09-28"),), {}, ForPerson, "payment_found_no_invoice"),
        # Not there yet: wait for it.
        ((), {}, ForPerson, "payment_not_found"),
    ],
)
def test_a_payment_query_naming_no_invoice_is_answered_from_the_payment_found(
    payments: tuple[Payment, ...],
    by_number: dict[str, list[str]],
    outcome: type[Posting | ForPerson],
    reason: str | None,
) -> None:
    event = routed(
        RequestType.PAYMENT_QUERY, invoice_ids=(), paid_amount=usd("700.00"), payment_date="2026-09-28"
    )
    known = {"4711": story_invoice("4711", "700.00")}
    the_facts = Facts(
        customer=None,
        invoices={},
        contracts={},
        payments={one.payment_id: one for one in payments},
        invoices_by_number={number: [known[i] for i in ids] for number, ids in by_number.items()},
    )
    proposal = propose(event, the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, outcome), proposal
    if isinstance(proposal, Posting):
        assert proposal.invoice_id == "4711"
    else:
        assert isinstance(proposal, ForPerson)
        assert proposal.reason == reason


def test_a_payment_received_far_from_the_date_given_is_not_taken_on_its_amount_alone() -> None:
    event = routed(RequestType.PAYMENT_QUERY, paid_amount=usd("1299.99"), payment_date="2026-09-28")
    the_facts = facts((invoice(),), (), (payment("P-1", "1299.99", "2026-06-01"),))
    proposal = propose(event, the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, ForPerson)
    assert proposal.reason == "payment_not_found"
    assert proposal.candidates == ("P-1",)


@given(
    paid=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2),
    opens=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2), min_size=1, max_size=4
    ),
)
def test_an_allocation_never_exceeds_the_payment_nor_an_invoice_open_amount(
    paid: Decimal, opens: list[Decimal]
) -> None:
    invoices = [story_invoice(f"R-{index}", str(amount)) for index, amount in enumerate(opens)]
    reference = " ".join(one.invoice_id for one in invoices)
    the_payment = payment("P-1", str(paid), "2026-09-29", reference)
    the_facts = Facts(
        customer=None,
        invoices={invoices[0].invoice_id: invoices[0]},
        contracts={},
        payments={"P-1": the_payment},
        invoices_by_number={one.invoice_id: [one] for one in invoices},
    )
    proposal = propose(
        routed(RequestType.PAYMENT_QUERY, invoice_ids=(invoices[0].invoice_id,)),
        the_facts,
        write_off_tolerance=TOLERANCE,
    )
    postings = proposal.postings if isinstance(proposal, Postings) else (proposal,)
    assert all(isinstance(one, Posting) for one in postings)
    allocated = [one.amount.amount for one in postings if isinstance(one, Posting)]
    assert sum(allocated) == min(paid, sum(opens))
    for one in postings:
        assert isinstance(one, Posting)
        assert one.original_amount is not None
        assert Decimal(0) < one.amount.amount <= one.original_amount.amount


# --- credit limit, write-off, refund ----------------------------------------------------------


def test_a_credit_limit_change_proposes_an_update_from_the_master_data_limit() -> None:
    event = routed(RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=(), requested_credit_limit=usd("80000.00"))
    proposal = propose(event, facts(the_customer=customer()), write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting)
    assert proposal.kind is ResolutionKind.CREDIT_LIMIT_UPDATE
    assert proposal.amount.amount == Decimal("30000.00")
    assert proposal.original_amount is not None
    assert proposal.original_amount.amount == Decimal("50000.00")
    assert proposal.corrected_amount is not None
    assert proposal.corrected_amount.amount == Decimal("80000.00")
    assert POLICY.required_roles(proposal.kind, proposal.amount) == ("team_lead", "finance_manager")


@pytest.mark.parametrize(
    ("the_customer", "requested", "reason"),
    [
        (None, usd("80000.00"), "reference_data_missing"),
        (customer(), {"amount": "80000.00", "currency": "EUR"}, "no_current_limit"),
        (customer(), usd("50000.00"), "limit_unchanged"),
    ],
)
def test_a_credit_limit_change_without_the_facts_is_not_posted(
    the_customer: Customer | None, requested: dict[str, str], reason: str
) -> None:
    event = routed(RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=(), requested_credit_limit=requested)
    proposal = propose(event, facts(the_customer=the_customer), write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, ForPerson | NotSupported)
    assert proposal.reason == reason


@pytest.mark.parametrize(
    ("asked", "total", "within"),
    [
        ("20.00", "1300.00", True),  # under 50.00 and under 2 % (26.00)
        ("26.00", "1300.00", True),  # exactly 2 %
        ("26.01", "1300.00", False),  # above 2 % though under 50.00
        ("50.00", "5000.00", True),  # exactly the absolute tolerance
        ("50.01", "5000.00", False),
    ],
)
def test_a_write_off_is_automatic_only_within_both_tolerances(asked: str, total: str, within: bool) -> None:
    the_invoice = invoice(total=usd(total), open_amount=usd(total))
    event = routed(RequestType.WRITE_OFF, disputed_amount=usd(asked))
    proposal = propose(event, facts((the_invoice,)), write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting)
    assert proposal.kind is ResolutionKind.WRITE_OFF
    assert proposal.amount.amount == Decimal(asked)
    assert proposal.within_tolerance is within
    assert ("within it" if within else "above it") in proposal.explanation


def test_a_write_off_above_the_open_amount_is_not_supported() -> None:
    the_invoice = invoice(open_amount=usd("10.00"))
    proposal = propose(
        routed(RequestType.WRITE_OFF, disputed_amount=usd("20.00")),
        facts((the_invoice,)),
        write_off_tolerance=TOLERANCE,
    )
    assert isinstance(proposal, NotSupported)
    assert proposal.reason == "amount_above_open"


@pytest.mark.parametrize(
    ("details", "the_facts", "amount", "available"),
    [
        # An overpayment: 1,500.00 paid, 1,299.99 applied.
        (
            {"invoice_ids": (), "payment_ids": ("PAY-A",)},
            facts(
                payments=(
                    payment(
                        "PAY-A",
                        "1500.00",
                        "2026-10-01",
                        status="applied",
                        applied_to=[{"invoice_id": "INV-1", "amount": "1299.99"}],
                    ),
                )
            ),
            "200.01",
            "200.01",
        ),
        # A credit balance on an invoice (negative open amount), part of it asked for.
        (
            {"disputed_amount": usd("50.00")},
            facts((invoice(open_amount=usd("-80.00")),)),
            "50.00",
            "80.00",
        ),
        # Nothing named: the customer's unapplied payments.
        ({"invoice_ids": ()}, facts(payments=(payment("PAY-A", "75.00", "2026-10-01"),)), "75.00", "75.00"),
    ],
)
def test_a_refund_is_of_a_real_credit_balance(
    details: dict[str, Any], the_facts: Facts, amount: str, available: str
) -> None:
    proposal = propose(routed(RequestType.REFUND, **details), the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, Posting), proposal
    assert proposal.kind is ResolutionKind.REFUND
    assert proposal.amount.amount == Decimal(amount)
    assert proposal.original_amount is not None
    assert proposal.original_amount.amount == Decimal(available)


@pytest.mark.parametrize(
    ("details", "the_facts", "reason"),
    [
        ({}, facts((invoice(),)), "no_credit_balance"),
        (
            {"disputed_amount": usd("100.00")},
            facts((invoice(open_amount=usd("-80.00")),)),
            "refund_above_credit",
        ),
        ({"invoice_ids": (), "payment_ids": ("PAY-X",)}, facts(), "reference_data_missing"),
    ],
)
def test_a_refund_without_a_credit_balance_is_not_paid(
    details: dict[str, Any], the_facts: Facts, reason: str
) -> None:
    proposal = propose(routed(RequestType.REFUND, **details), the_facts, write_off_tolerance=TOLERANCE)
    assert isinstance(proposal, NotSupported | ForPerson)
    assert proposal.reason == reason


@pytest.mark.parametrize("request_type", [RequestType.ACCOUNT_UPDATE, RequestType.CONTRACT_QUERY, None])
def test_other_types_stay_with_their_queue(request_type: RequestType | None) -> None:
    assert (
        propose(
            routed(request_type),
            facts(),
            write_off_tolerance=TOLERANCE,
        )
        is None
    )


# --- the approval policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "amount", "roles"),
    [
        (ResolutionKind.CREDIT_MEMO, "1000.00", ()),
        (ResolutionKind.CREDIT_MEMO, "1000.01", ("team_lead",)),
        (ResolutionKind.CREDIT_MEMO, "10000.00", ("team_lead",)),
        (ResolutionKind.CREDIT_MEMO, "10000.01", ("team_lead", "finance_manager")),
        (ResolutionKind.PAYMENT_ALLOCATION, "10000.00", ()),
        (ResolutionKind.CREDIT_LIMIT_UPDATE, "1.00", ("team_lead",)),
        (ResolutionKind.CREDIT_LIMIT_UPDATE, "-20000.00", ("team_lead", "finance_manager")),
        (ResolutionKind.REFUND, "5.00", ("team_lead",)),
        (ResolutionKind.WRITE_OFF, "60.00", ("team_lead",)),
    ],
)
def test_the_policy_maps_kind_and_amount_to_the_approvals_required(
    kind: ResolutionKind, amount: str, roles: tuple[str, ...]
) -> None:
    assert POLICY.required_roles(kind, Money(amount=Decimal(amount), currency="USD")) == roles


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("version = ", "not valid TOML"),
        (
            DEFAULT_POLICY_PATH.read_text().replace('preparer = "crs-resolution"', ""),
            "preparer: Field required",
        ),
        (
            DEFAULT_POLICY_PATH.read_text().replace('up_to = "1000.00"', "up_to = 1000.5", 1),
            "decimal strings",
        ),
        (
            DEFAULT_POLICY_PATH.read_text().replace('tolerance_share = "0.02"', 'tolerance_share = "2"'),
            "tolerance_share",
        ),
        (DEFAULT_POLICY_PATH.read_text().replace("[[kinds.refund]]", "[[kinds.refunds]]"), "refunds"),
        (
            DEFAULT_POLICY_PATH.read_text().replace(
                'up_to = "10000.00"\nroles = ["team_lead"]\n[[kinds.credit_memo]]\nroles',
                'up_to = "500.00"\nroles = ["team_lead"]\n[[kinds.credit_memo]]\nroles',
            ),
            "must increase",
        ),
        (DEFAULT_POLICY_PATH.read_text() + '\n[[kinds.refund]]\nup_to = "1.00"\nroles = []\n', "last tier"),
    ],
)
def test_a_bad_policy_file_is_refused_at_start_with_the_reason(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(path) in str(raised.value)
    assert complaint in str(raised.value)


def test_a_missing_policy_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read it"):
        load_policy(tmp_path / "absent.toml")


# --- approvals and segregation of duties --------------------------------------------------------

REQUESTERS = requesters_of(routed(RequestType.CREDIT_LIMIT_CHANGE))
BOTH = ("team_lead", "finance_manager")


def decision(
    approver: str, role: str, verdict: str = "approve", comment: str | None = None
) -> ApprovalDecision:
    return ApprovalDecision(
        request_id="REQ-1",
        decision=verdict,
        approver=approver,
        role=role,
        comment=comment,
        decided_at=NOW,
    )


LEAD = RecordedApproval("lena.lead", "team_lead", NOW.isoformat())


def person(user_id: str, *roles: str, aliases: tuple[str, ...] = (), disabled: bool = False) -> DirectoryUser:
    return DirectoryUser.model_validate(
        {
            "id": user_id,
            "display_name": user_id,
            "email": f"{user_id}@corp.example",
            "aliases": aliases,
            "roles": roles,
            "disabled": disabled,
        }
    )


DIRECTORY = FileUserDirectory(
    [
        person("lena.lead", "team_lead"),
        person("fred.finance", "finance_manager", "team_lead", aliases=("fred",)),
        person("tom.lead", "team_lead"),
        person("a", "team_lead"),
        person("b", "team_lead"),
        person("bob.smith", "team_lead", "finance_manager", aliases=("bob",)),
        person("gone.lead", "team_lead", disabled=True),
    ]
)


async def evaluated(
    the_decision: ApprovalDecision,
    *,
    required: tuple[str, ...] = BOTH,
    given: tuple[RecordedApproval, ...] = (),
    requesters: frozenset[str] = REQUESTERS,
    preparer: str = POLICY.preparer,
) -> approvals.Outcome:
    """The verdict as resolution reaches it: every name looked up in the directory first."""

    async def ids(names: Iterable[str]) -> frozenset[str]:
        found = [await DIRECTORY.find(name) for name in names]
        return frozenset(user.id for user in found if user is not None)

    return approvals.evaluate(
        the_decision,
        required=required,
        approvals=given,
        requesters=requesters,
        preparer=preparer,
        approver=await DIRECTORY.find(the_decision.approver),
        requester_ids=await ids(requesters),
        approved_ids=await ids(approval.approver for approval in given),
    )


@pytest.mark.parametrize(
    ("the_decision", "given", "verdict", "reason", "still_needed"),
    [
        (decision("lena.lead", "team_lead"), (), Verdict.COUNTED, "approval_recorded", ("finance_manager",)),
        (decision("fred.finance", "finance_manager"), (LEAD,), Verdict.COMPLETE, None, ()),
        # Whoever requested cannot approve: the contact's email (any case), the customer.
        (
            decision("jane@acme.example", "finance_manager"),
            (LEAD,),
            Verdict.REFUSED,
            "segregation_of_duties",
            ("finance_manager",),
        ),
        (decision("CUST-1", "team_lead"), (), Verdict.REFUSED, "segregation_of_duties", BOTH),
        # Nor the preparer.
        (decision("crs-resolution", "team_lead"), (), Verdict.REFUSED, "segregation_of_duties", BOTH),
        # One person counts once, even in another role, under another name.
        (
            decision("Lena.Lead", "team_lead"),
            (LEAD,),
            Verdict.REFUSED,
            "already_approved",
            ("finance_manager",),
        ),
        (
            decision("Bob.Smith", "finance_manager"),
            (RecordedApproval("bob", "team_lead", NOW.isoformat()),),
            Verdict.REFUSED,
            "already_approved",
            ("finance_manager",),
        ),
        # The approver must be a user the directory knows, holding the role claimed.
        (decision("mallory", "team_lead"), (), Verdict.REFUSED, "unknown_approver", BOTH),
        (decision("ceo", "chief_executive"), (), Verdict.REFUSED, "unknown_approver", BOTH),
        (decision("lena.lead", "finance_manager"), (), Verdict.REFUSED, "role_not_held", BOTH),
        (decision("tom.lead", "chief_executive"), (), Verdict.REFUSED, "role_not_held", BOTH),
        (decision("gone.lead", "team_lead"), (), Verdict.REFUSED, "approver_disabled", BOTH),
        # The role must be one still needed.
        (
            decision("tom.lead", "team_lead"),
            (LEAD,),
            Verdict.REFUSED,
            "role_not_required",
            ("finance_manager",),
        ),
        # A rejection by an eligible approver ends it; by the requester it is refused.
        (
            decision("fred.finance", "finance_manager", "reject", "too risky"),
            (LEAD,),
            Verdict.REJECTED,
            "approval_rejected",
            (),
        ),
        (
            decision("jane@acme.example", "team_lead", "reject", "never mind"),
            (),
            Verdict.REFUSED,
            "segregation_of_duties",
            BOTH,
        ),
    ],
)
async def test_approvals_follow_segregation_of_duties(
    the_decision: ApprovalDecision,
    given: tuple[RecordedApproval, ...],
    verdict: Verdict,
    reason: str | None,
    still_needed: tuple[str, ...],
) -> None:
    outcome = await evaluated(the_decision, given=given)
    assert (outcome.verdict, outcome.reason, outcome.still_needed) == (verdict, reason, still_needed)


async def test_bob_and_bob_smith_are_one_person_whatever_roles_they_claim() -> None:
    first = await evaluated(decision("bob", "team_lead"))
    assert (first.verdict, first.still_needed) == (Verdict.COUNTED, ("finance_manager",))
    # Recorded under the directory id, as resolution records it.
    recorded = (RecordedApproval("bob.smith", "team_lead", NOW.isoformat()),)
    for name in ("Bob.Smith", "BOB", "bob.smith@corp.example"):
        second = await evaluated(decision(name, "finance_manager"), given=recorded)
        assert (second.verdict, second.reason) == (Verdict.REFUSED, "already_approved")
        assert second.still_needed == ("finance_manager",)


async def test_a_requester_who_is_a_user_cannot_approve_under_another_name() -> None:
    outcome = await evaluated(decision("bob", "team_lead"), requesters=frozenset({"bob.smith@corp.example"}))
    assert (outcome.verdict, outcome.reason) == (Verdict.REFUSED, "segregation_of_duties")
    assert "bob (bob.smith) requested this" in outcome.explanation


async def test_a_role_required_twice_needs_two_people() -> None:
    required = ("team_lead", "team_lead")
    first = await evaluated(decision("a", "team_lead"), required=required, preparer="p")
    assert (first.verdict, first.still_needed) == (Verdict.COUNTED, ("team_lead",))
    second = await evaluated(
        decision("b", "team_lead"),
        required=required,
        given=(RecordedApproval("a", "team_lead", NOW.isoformat()),),
        preparer="p",
    )
    assert second.verdict is Verdict.COMPLETE


async def test_the_rejection_carries_the_approvers_comment() -> None:
    outcome = await evaluated(
        decision("fred", "team_lead", "reject", "limit too high for the risk rating"), preparer="p"
    )
    assert outcome.explanation == "limit too high for the risk rating"


def test_requesters_are_the_contact_the_sender_and_the_customer() -> None:
    event = routed(RequestType.REFUND, channel="email", sender_email="Bob@Acme.example")
    assert requesters_of(event) == {"jane@acme.example", "bob@acme.example", "cust-1"}


# --- the posting and the ERP's answers ----------------------------------------------------------


def test_the_posting_has_a_stable_id_and_carries_the_approvals() -> None:
    event = routed(RequestType.BILLING_DISPUTE)
    posting = propose(event, facts((invoice(),), (contract(),)), write_off_tolerance=TOLERANCE)
    assert isinstance(posting, Posting)
    first = build_resolution(event, posting, approvals=(), now=NOW)
    later = build_resolution(event, posting, approvals=(LEAD,), now=datetime(2026, 12, 1, tzinfo=UTC))
    assert (
        first.resolution_id
        == later.resolution_id
        == resolution_id_for("REQ-1", ResolutionKind.CREDIT_MEMO, "INV-1")
    )
    assert [(one.approver, one.role) for one in later.approvals] == [("lena.lead", "team_lead")]
    assert later.effective_on == date(2026, 12, 1)
    other = replace(posting, document_id="INV-2")
    assert build_resolution(event, other, approvals=(), now=NOW).resolution_id != first.resolution_id


def test_the_erp_answer_closes_or_returns_the_request_with_the_erps_error() -> None:
    posted = ErpAck(resolution_id="R", request_id="REQ-1", status="posted", erp_document_id="CM-1")
    failed = ErpAck(resolution_id="R", request_id="REQ-1", status="failed", error="period closed")
    closed = acknowledge(posted, ResolutionKind.WRITE_OFF)
    assert closed.status is RequestStatus.CLOSED
    assert "write-off has been posted as document CM-1" in closed.message
    returned = acknowledge(failed, ResolutionKind.REFUND)
    assert (returned.status, returned.reason) == (RequestStatus.ROUTED, "erp_posting_failed")
    assert "refund R: period closed" in returned.message
