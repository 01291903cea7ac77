"""Validation's rules, table by table: every reason code and the checks recorded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.validation.domain import (
    References,
    decide,
    hold_expired,
    identify_customer,
    missing_pieces,
    validate_request,
    wait_may_be_over,
)
from shared.contract import Customer, CustomerContract, Invoice, Payment, RequestType
from shared.document_numbers import same_number
from shared.events import RequestDetails
from shared.money import Money

TODAY = date(2026, 11, 23)


def customer(**change: Any) -> Customer:
    return Customer.model_validate(
        {
            "customer_id": "CUST-1",
            "name": "Acme",
            "status": "active",
            "kyc_status": "verified",
            "kyc_expires_on": "2027-01-01",
            "tier": "key",
            "contacts": [{"name": "Jane", "email": "jane@acme.example"}],
            "updated_at": "2026-11-01T00:00:00Z",
            **change,
        }
    )


def invoice(**change: Any) -> Invoice:
    return Invoice.model_validate(
        {
            "invoice_id": "INV-1",
            "customer_id": "CUST-1",
            "contract_id": "CTR-1",
            "issued_on": "2026-10-01",
            "currency": "USD",
            "total": {"amount": "1200.00", "currency": "USD"},
            "open_amount": {"amount": "1200.00", "currency": "USD"},
            "status": "open",
            "updated_at": "2026-11-01T00:00:00Z",
            **change,
        }
    )


def payment(**change: Any) -> Payment:
    return Payment.model_validate(
        {
            "payment_id": "PAY-1",
            "customer_id": "CUST-1",
            "amount": {"amount": "1000.00", "currency": "USD"},
            "received_on": "2026-10-20",
            "status": "unapplied",
            "updated_at": "2026-11-01T00:00:00Z",
            **change,
        }
    )


def contract(**change: Any) -> CustomerContract:
    return CustomerContract.model_validate(
        {
            "contract_id": "CTR-1",
            "customer_id": "CUST-1",
            "valid_from": "2026-01-01",
            "valid_to": "2026-12-31",
            "currency": "USD",
            "updated_at": "2026-11-01T00:00:00Z",
            **change,
        }
    )


def refs(
    invoices: dict[str, Invoice | None] | None = None,
    payments: dict[str, Payment | None] | None = None,
    contracts: dict[str, CustomerContract | None] | None = None,
) -> References:
    """The documents as the views hold them; by default the invoice INV-1 under contract CTR-1."""
    return References(
        invoices={"INV-1": invoice()} if invoices is None else invoices,
        payments={"PAY-1": payment()} if payments is None else payments,
        contracts={"CTR-1": contract()} if contracts is None else contracts,
    )


def details(**change: Any) -> RequestDetails:
    values: dict[str, Any] = {
        "channel": "crm",
        "source_id": "CASE-1",
        "customer_id": "CUST-1",
        "request_type": RequestType.BILLING_DISPUTE,
        "subject": "Overcharged",
        "invoice_ids": ("INV-1",),
        "disputed_amount": {"amount": "200.00", "currency": "USD"},
        "submitted_at": "2026-11-22T10:00:00Z",
    }
    values.update(change)
    return RequestDetails.model_validate(values)


USD_200 = {"amount": "200.00", "currency": "USD"}


def numbered(*invoices: Invoice) -> References:
    """The views holding these invoices (with CTR-1), found by the normalised numbers looked up."""
    looked_up = ("re 2026 42", "4711", "RE/2026/0042", "90012345-A", "4500012345")
    return References(
        invoices={invoice.invoice_id: invoice for invoice in invoices},
        payments={"PAY-1": payment()},
        contracts={"CTR-1": contract()},
        invoices_by_number={
            number: [invoice for invoice in invoices if same_number(number, invoice.invoice_id)]
            for number in looked_up
        },
    )


# (case, request, customer, documents, outcome, reason)
RULES: list[tuple[str, RequestDetails, Customer, References, str, str | None]] = [
    ("a dispute in order", details(), customer(), refs(), "validated", None),
    # The account.
    ("blocked customer", details(), customer(status="blocked"), refs(), "rejected", "customer_blocked"),
    ("closed customer", details(), customer(status="closed"), refs(), "rejected", "customer_closed"),
    # Completeness by type.
    # What answering can fix is asked, not refused.
    ("dispute names no invoice", details(invoice_ids=()), customer(), refs(), "on_hold", "awaiting_customer"),
    (
        "correction names no invoice",
        details(request_type=RequestType.INVOICE_CORRECTION, invoice_ids=(), disputed_amount=None),
        customer(),
        refs(),
        "on_hold",
        "awaiting_customer",
    ),
    (
        "write-off names no invoice",
        details(request_type=RequestType.WRITE_OFF, invoice_ids=(), disputed_amount=None),
        customer(),
        refs(),
        "on_hold",
        "awaiting_customer",
    ),
    # Documents named the way customers name them.
    (
        "dispute names its invoice only in the text, in another format",
        details(invoice_ids=(), invoice_candidates=("re 2026 42",)),
        customer(),
        numbered(invoice(invoice_id="RE/2026/0042")),
        "validated",
        None,
    ),
    (
        "a structured number the ERP writes differently",
        details(invoice_ids=("4711",)),
        customer(),
        numbered(invoice(invoice_id="RE-4711")),
        "validated",
        None,
    ),
    (
        "a number in the text matching two of the customer's invoices",
        details(invoice_ids=(), invoice_candidates=("4711",)),
        customer(),
        numbered(invoice(invoice_id="RE-4711"), invoice(invoice_id="INV-0004711")),
        "on_hold",
        "awaiting_customer",
    ),
    (
        "a number in the text matching only another customer's invoice",
        details(invoice_ids=(), invoice_candidates=("4711",)),
        customer(),
        numbered(invoice(invoice_id="4711", customer_id="CUST-2")),
        "on_hold",
        "awaiting_customer",
    ),
    (
        "a loose number naming exactly one invoice",
        details(invoice_ids=(), loose_candidates=("90012345-A", "4500012345")),
        customer(),
        numbered(invoice(invoice_id="90012345A")),
        "validated",
        None,
    ),
    (
        "credit-limit change names no limit: the customer is asked",
        details(request_type=RequestType.CREDIT_LIMIT_CHANGE, invoice_ids=(), disputed_amount=None),
        customer(),
        refs(),
        "on_hold",
        "awaiting_customer",
    ),
    (
        "payment query with nothing to find the payment by",
        details(request_type=RequestType.PAYMENT_QUERY, invoice_ids=(), disputed_amount=None),
        customer(),
        refs(),
        "on_hold",
        "awaiting_customer",
    ),
    (
        "payment query with an amount but no date",  # a missing date is never a reason to refuse
        details(
            request_type=RequestType.PAYMENT_QUERY,
            invoice_ids=(),
            mentioned_amounts=(USD_200,),
            disputed_amount=None,
        ),
        customer(),
        refs(),
        "validated",
        None,
    ),
    (
        "payment query told only in words",
        details(
            request_type=RequestType.PAYMENT_QUERY,
            invoice_ids=(),
            disputed_amount=None,
            invoice_candidates=("RE/2026/0042",),
            stated_amounts=({"amount": "1200.00", "role": "paid"},),
            payment_date="2026-09-28",
        ),
        customer(),
        numbered(invoice(invoice_id="RE/2026/0042")),
        "validated",
        None,
    ),
    (
        "payment query with an amount and a date",
        details(
            request_type=RequestType.PAYMENT_QUERY,
            invoice_ids=(),
            disputed_amount=None,
            mentioned_amounts=(USD_200,),
            mentioned_dates=("2026-10-20",),
        ),
        customer(),
        refs(),
        "validated",
        None,
    ),
    (
        "payment query naming a payment",
        details(
            request_type=RequestType.PAYMENT_QUERY,
            invoice_ids=(),
            payment_ids=("PAY-1",),
            disputed_amount=None,
        ),
        customer(),
        refs(),
        "validated",
        None,
    ),
    (
        "refund naming nothing to refund: the customer is asked",
        details(request_type=RequestType.REFUND, invoice_ids=(), disputed_amount=None),
        customer(),
        refs(),
        "on_hold",
        "awaiting_customer",
    ),
    (
        "refund of an overpayment",
        details(
            request_type=RequestType.REFUND, invoice_ids=(), payment_ids=("PAY-1",), disputed_amount=None
        ),
        customer(),
        refs(),
        "validated",
        None,
    ),
    (
        "an unclassified request needs nothing in particular",
        details(request_type=None, invoice_ids=(), disputed_amount=None),
        customer(),
        refs(),
        "validated",
        None,
    ),
    # KYC, for what moves money or credit.
    (
        "refund while KYC is pending",
        details(request_type=RequestType.REFUND),
        customer(kyc_status="pending"),
        refs(),
        "on_hold",
        "kyc_pending",
    ),
    (
        "refund with KYC failed",
        details(request_type=RequestType.REFUND),
        customer(kyc_status="failed"),
        refs(),
        "rejected",
        "kyc_failed",
    ),
    (
        "write-off with KYC expired",
        details(request_type=RequestType.WRITE_OFF),
        customer(kyc_status="expired"),
        refs(),
        "rejected",
        "kyc_expired",
    ),
    (
        "credit-limit change with KYC past its date",
        details(
            request_type=RequestType.CREDIT_LIMIT_CHANGE,
            invoice_ids=(),
            disputed_amount=None,
            requested_credit_limit=USD_200,
        ),
        customer(kyc_expires_on="2026-01-01"),
        refs(),
        "rejected",
        "kyc_expired",
    ),
    (
        "a payment query does not need KYC",
        details(request_type=RequestType.PAYMENT_QUERY, payment_ids=("PAY-1",)),
        customer(kyc_status="pending"),
        refs(),
        "validated",
        None,
    ),
    # Documents that are not known yet: wait.
    (
        "invoice not known yet",
        details(),
        customer(),
        refs(invoices={"INV-1": None}),
        "on_hold",
        "awaiting_reference_data",
    ),
    (
        "payment not known yet",
        details(request_type=RequestType.PAYMENT_QUERY, payment_ids=("PAY-1",)),
        customer(),
        refs(payments={"PAY-1": None}),
        "on_hold",
        "awaiting_reference_data",
    ),
    (
        "contract not known yet",
        details(),
        customer(),
        refs(contracts={"CTR-1": None}),
        "on_hold",
        "awaiting_reference_data",
    ),
    # Documents that are wrong.
    (
        "invoice of another customer",
        details(),
        customer(),
        refs(invoices={"INV-1": invoice(customer_id="CUST-2")}),
        "rejected",
        "invoice_not_owned",
    ),
    (
        "payment of another customer",
        details(payment_ids=("PAY-1",)),
        customer(),
        refs(payments={"PAY-1": payment(customer_id="CUST-2")}),
        "rejected",
        "payment_not_owned",
    ),
    (
        "contract of another customer",
        details(),
        customer(),
        refs(contracts={"CTR-1": contract(customer_id="CUST-2")}),
        "rejected",
        "contract_not_owned",
    ),
    (
        "invoice dated before the contract",
        details(),
        customer(),
        refs(contracts={"CTR-1": contract(valid_from="2026-10-02")}),
        "rejected",
        "invoice_outside_contract",
    ),
    (
        "invoice dated after the contract ended",
        details(),
        customer(),
        refs(contracts={"CTR-1": contract(valid_to="2026-09-30")}),
        "rejected",
        "invoice_outside_contract",
    ),
    (
        "open-ended contract",
        details(),
        customer(),
        refs(contracts={"CTR-1": contract(valid_to=None)}),
        "validated",
        None,
    ),
    # Amounts and currencies.
    (
        "disputed amount in another currency",
        details(disputed_amount={"amount": "200.00", "currency": "EUR"}),
        customer(),
        refs(),
        "rejected",
        "currency_mismatch",
    ),
    (
        "payment in another currency than the invoice",
        details(payment_ids=("PAY-1",)),
        customer(),
        refs(payments={"PAY-1": payment(amount={"amount": "1000.00", "currency": "EUR"})}),
        "rejected",
        "currency_mismatch",
    ),
    (
        "requested limit in another currency than the current one",
        details(
            request_type=RequestType.CREDIT_LIMIT_CHANGE,
            invoice_ids=(),
            disputed_amount=None,
            requested_credit_limit=USD_200,
        ),
        customer(credit_limit={"amount": "100.00", "currency": "EUR"}),
        refs(),
        "rejected",
        "currency_mismatch",
    ),
    (
        "disputed amount above the invoice total",
        details(disputed_amount={"amount": "1200.01", "currency": "USD"}),
        customer(),
        refs(),
        "rejected",
        "amount_out_of_range",
    ),
    (
        "disputed amount of the total exactly",
        details(disputed_amount={"amount": "1200.00", "currency": "USD"}),
        customer(),
        refs(),
        "validated",
        None,
    ),
    (
        "disputed amount of zero",
        details(disputed_amount={"amount": "0.00", "currency": "USD"}),
        customer(),
        refs(),
        "rejected",
        "amount_out_of_range",
    ),
    (
        "negative expected amount",
        details(disputed_amount=None, expected_amount={"amount": "-1.00", "currency": "USD"}),
        customer(),
        refs(),
        "rejected",
        "amount_out_of_range",
    ),
    (
        "credit limit of zero",
        details(
            request_type=RequestType.CREDIT_LIMIT_CHANGE,
            invoice_ids=(),
            disputed_amount=None,
            requested_credit_limit={"amount": "0", "currency": "USD"},
        ),
        customer(),
        refs(),
        "rejected",
        "amount_out_of_range",
    ),
    (
        "credit limit raised",
        details(
            request_type=RequestType.CREDIT_LIMIT_CHANGE,
            invoice_ids=(),
            disputed_amount=None,
            requested_credit_limit=USD_200,
        ),
        customer(credit_limit={"amount": "100.00", "currency": "USD"}),
        refs(),
        "validated",
        None,
    ),
]


@pytest.mark.parametrize(
    ("request_details", "the_customer", "documents", "outcome", "reason"),
    [pytest.param(*rule[1:], id=rule[0]) for rule in RULES],
)
def test_validation_rules(
    request_details: RequestDetails,
    the_customer: Customer,
    documents: References,
    outcome: str,
    reason: str | None,
) -> None:
    verdict = validate_request(request_details, the_customer, documents, today=TODAY)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    assert verdict.checks[0].check == "customer_exists"
    if outcome == "validated":
        assert all(check.passed for check in verdict.checks)
        assert verdict.details is not None
        assert [snapshot.invoice_id for snapshot in verdict.invoices] == list(verdict.details.invoice_ids)
    else:
        assert any(not check.passed for check in verdict.checks)
        assert verdict.message.endswith(".")
    if outcome == "rejected":
        assert not verdict.checks[-1].passed, "the check that failed is the last one recorded"


def test_every_reason_code_is_covered_by_the_table() -> None:
    codes = {rule[5] for rule in RULES}
    assert codes >= {
        "customer_blocked",
        "customer_closed",
        "awaiting_customer",
        "kyc_pending",
        "kyc_failed",
        "kyc_expired",
        "awaiting_reference_data",
        "invoice_not_owned",
        "payment_not_owned",
        "contract_not_owned",
        "invoice_outside_contract",
        "currency_mismatch",
        "amount_out_of_range",
    }


@pytest.mark.parametrize(
    ("documents", "reason", "waiting_for"),
    [
        (refs(invoices={"INV-1": None}), "unknown_invoice", ()),
        (refs(contracts={"CTR-1": None}), "unknown_contract", ()),
    ],
)
def test_once_a_hold_has_expired_a_missing_document_is_rejected(
    documents: References, reason: str, waiting_for: tuple[str, ...]
) -> None:
    verdict = validate_request(details(), customer(), documents, today=TODAY, hold_expired=True)
    assert (verdict.outcome, verdict.reason, verdict.waiting_for) == ("rejected", reason, waiting_for)
    expired_payment = validate_request(
        details(payment_ids=("PAY-1",)),
        customer(),
        refs(payments={"PAY-1": None}),
        today=TODAY,
        hold_expired=True,
    )
    assert expired_payment.reason == "unknown_payment"


def test_a_hold_names_everything_it_waits_for_and_says_so() -> None:
    verdict = validate_request(
        details(request_type=RequestType.REFUND, payment_ids=("PAY-7",)),
        customer(kyc_status="pending"),
        refs(invoices={"INV-1": None}, payments={"PAY-7": None}),
        today=TODAY,
    )
    assert verdict.outcome == "on_hold"
    assert verdict.reason == "awaiting_reference_data"
    assert verdict.waiting_for == ("kyc:CUST-1", "invoice:INV-1", "payment:PAY-7")
    assert "invoice INV-1 and payment PAY-7" in verdict.message
    assert "verification" in verdict.message


def test_a_rejection_wins_over_a_hold() -> None:
    verdict = validate_request(
        details(payment_ids=("PAY-1",)),
        customer(),
        refs(invoices={"INV-1": None}, payments={"PAY-1": payment(customer_id="CUST-2")}),
        today=TODAY,
    )
    assert (verdict.outcome, verdict.reason) == ("rejected", "payment_not_owned")


@pytest.mark.parametrize(
    ("change", "what", "words"),
    [
        ({"request_type": RequestType.CREDIT_LIMIT_CHANGE}, "credit_limit", "credit limit"),
        ({"request_type": RequestType.REFUND, "invoice_ids": ()}, "refund_details", "refund"),
    ],
)
def test_a_missing_piece_the_customer_can_give_is_asked_for_not_refused(
    change: dict[str, Any], what: str, words: str
) -> None:
    request = details(**{"invoice_ids": ("INV-1",), "disputed_amount": None, **change})
    found = missing_pieces(request)
    assert found is not None
    assert found[0] == what
    verdict = validate_request(request, customer(), refs(), today=TODAY)
    assert (verdict.outcome, verdict.reason) == ("on_hold", "awaiting_customer")
    assert f"customer:{what}" in verdict.waiting_for
    assert words in verdict.message
    assert verdict.message == found[1]


@pytest.mark.parametrize(
    ("change", "documents", "question", "waiting_for"),
    [
        (
            {"invoice_ids": ()},
            refs(),
            "Which invoice is this request about? Please tell us its number.",
            ("customer:invoice",),
        ),
        (
            {"invoice_ids": (), "invoice_candidates": ("4711",)},
            numbered(invoice(invoice_id="RE-4711"), invoice(invoice_id="INV-0004711")),
            "The invoice number 4711 matches more than one of your invoices (RE-4711 or INV-0004711): "
            "please tell us which one you mean.",
            ("customer:which_invoice", "invoice_choice:RE-4711", "invoice_choice:INV-0004711"),
        ),
        (
            {"invoice_ids": (), "invoice_candidates": ("4711", "4712")},
            numbered(),
            "We could not find invoice 4711 and invoice 4712 among your documents: please check the numbers.",
            ("customer:invoice", "invoice_number:4711", "invoice_number:4712"),
        ),
        (
            {"request_type": RequestType.PAYMENT_QUERY, "invoice_ids": (), "disputed_amount": None},
            refs(),
            "Please tell us which invoice you paid (its number), or the payment's reference, or the amount "
            "you paid and when, so that we can find your payment.",
            ("customer:payment_details",),
        ),
    ],
)
def test_what_the_customer_can_supply_is_asked_with_the_question_in_the_message(
    change: dict[str, Any], documents: References, question: str, waiting_for: tuple[str, ...]
) -> None:
    verdict = validate_request(details(**change), customer(), documents, today=TODAY)
    assert (verdict.outcome, verdict.reason) == ("on_hold", "awaiting_customer")
    assert verdict.message == question
    assert verdict.waiting_for == waiting_for


def test_numbers_in_the_text_count_only_where_the_structured_field_is_empty() -> None:
    documents = numbered(invoice(), invoice(invoice_id="4711"))
    request = details(invoice_ids=("INV-1",), invoice_candidates=("4711",))
    verdict = validate_request(request, customer(), documents, today=TODAY)
    assert verdict.details is not None
    assert verdict.details.invoice_ids == ("INV-1",)  # the agent said which invoice; 4711 is context


def test_a_question_waits_for_no_time_limit_and_a_number_asked_about_is_looked_for_again() -> None:
    waiting = ("customer:invoice", "invoice_number:4711")
    assert not hold_expired(waiting, datetime(2026, 1, 1, tzinfo=UTC), now=datetime(2027, 1, 1, tzinfo=UTC))
    arrived = numbered(invoice(invoice_id="RE-4711"))
    assert wait_may_be_over(waiting, {}, arrived, customer_id="CUST-1")
    assert not wait_may_be_over(waiting, {}, arrived, customer_id="CUST-2")
    assert not wait_may_be_over(waiting, {}, numbered(), customer_id="CUST-1")


def test_a_rejection_wins_over_a_question() -> None:
    verdict = validate_request(details(invoice_ids=()), customer(status="blocked"), refs(), today=TODAY)
    assert (verdict.outcome, verdict.reason) == ("rejected", "customer_blocked")


def test_the_validated_request_names_the_erp_documents_and_reads_text_amounts_in_their_currency() -> None:
    request = details(
        request_type=RequestType.PAYMENT_QUERY,
        invoice_ids=(),
        disputed_amount=None,
        invoice_candidates=("re 2026 42",),
        stated_amounts=({"amount": "1200.00", "role": "paid"}, {"amount": "100", "role": "disputed"}),
    )
    chf_invoice = invoice(
        invoice_id="RE/2026/0042", currency="CHF", total="1200.00", open_amount="1200.00", contract_id=None
    )
    verdict = validate_request(request, customer(), numbered(chf_invoice), today=TODAY)
    assert verdict.outcome == "validated"
    assert verdict.details is not None
    assert verdict.details.invoice_ids == ("RE/2026/0042",)
    assert verdict.details.invoice_candidates == ("re 2026 42",)  # what the customer wrote stays
    assert verdict.details.paid_amount == Money(amount="1200.00", currency="CHF")
    assert verdict.details.disputed_amount == Money(amount="100", currency="CHF")
    assert [snapshot.invoice_id for snapshot in verdict.invoices] == ["RE/2026/0042"]
    read = {check.check: check.detail for check in verdict.checks}
    assert read["invoice_numbers_read"] == "Invoice numbers read: re 2026 42 (text) -> RE/2026/0042"


def test_decide_rejects_requests_whose_customer_cannot_be_identified() -> None:
    verdict = decide(details(customer_id=None, sender_email="x@unknown.example"), [], refs(), today=TODAY)
    assert (verdict.outcome, verdict.reason) == ("rejected", "unknown_sender")
    assert [(check.check, check.passed) for check in verdict.checks] == [("customer_exists", False)]


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_an_email_sender_is_matched_or_explained() -> None:
    email = details(customer_id=None, sender_email="jane@acme.example")
    assert identify_customer(email, [customer()])[0] == customer()
    assert identify_customer(email, [])[1] == "unknown_sender"
    assert identify_customer(email, [customer(), customer(customer_id="CUST-2")])[1] == "ambiguous_sender"
    assert identify_customer(details(customer_id="CUST-9"), [])[1] == "unknown_customer"


def test_a_hold_expires_only_while_it_waits_for_a_document() -> None:
    limit = NOW
    assert hold_expired(("invoice:INV-1",), limit, now=NOW)
    assert not hold_expired(("invoice:INV-1",), limit, now=NOW - timedelta(seconds=1))
    assert not hold_expired(("kyc:CUST-1",), limit, now=NOW + timedelta(days=365))
    assert hold_expired(("kyc:CUST-1", "payment:PAY-1"), limit, now=NOW)


@pytest.mark.parametrize(
    ("waiting_for", "customers", "known", "over"),
    [
        pytest.param(
            ("invoice:INV-1",), {}, refs(invoices={"INV-1": None}), False, id="invoice still unknown"
        ),
        pytest.param(("invoice:INV-1",), {}, refs(), True, id="invoice arrived"),
        pytest.param(("contract:CTR-1",), {}, refs(), True, id="contract arrived"),
        pytest.param(("payment:PAY-9",), {}, refs(), False, id="another payment arrived"),
        pytest.param(
            ("kyc:CUST-1",), {"CUST-1": customer(kyc_status="pending")}, refs(), False, id="KYC pending"
        ),
        pytest.param(("kyc:CUST-1",), {"CUST-1": customer()}, refs(), True, id="KYC verified"),
        pytest.param(
            ("kyc:CUST-1",), {"CUST-1": customer(kyc_status="failed")}, refs(), True, id="KYC failed"
        ),
    ],
)
def test_a_hold_is_decided_again_when_what_it_waits_for_changed(
    waiting_for: tuple[str, ...], customers: dict[str, Customer], known: References, over: bool
) -> None:
    assert wait_may_be_over(waiting_for, customers, known) is over
