"""The approval policy measures every posting in its own currency (USD): amounts in other currencies
are converted at the file's rates before a tier is chosen, and a currency without a rate takes the
highest tier. Read the way an auditor would: which approvals, and the words that say why."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.resolution.lifecycle import RequestResolution, ResolutionState, Terms
from services.resolution.policy import DEFAULT_POLICY_PATH, ApprovalPolicy, PolicyError, load_policy
from services.resolution.strategies import Posting, propose
from shared.contract import ErpResolution, RequestType, ResolutionKind
from shared.lifecycle import Effect
from shared.money import Money
from shared.resolution_events import ApprovalRequested
from tests.unit.test_resolution_strategies import NOW, POLICY, contract, facts, invoice, money, routed

TERMS = Terms(policy=POLICY, ack_timeout=timedelta(hours=1), reference_wait=timedelta(minutes=15))
BOTH = ("team_lead", "finance_manager")


def amount(figure: str, currency: str) -> Money:
    return Money(amount=Decimal(figure), currency=currency)


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def policy_with_rates(tmp_path: Path, rates: str) -> ApprovalPolicy:
    """The shipped policy with its ``[rates]`` table replaced by ``rates``."""
    text = DEFAULT_POLICY_PATH.read_text()
    start, end = text.index("[rates]"), text.index("[write_off]")
    return load_policy(policy_file(tmp_path, f"{text[:start]}[rates]\n{rates}\n\n{text[end:]}"))


# --- the shipped file ---------------------------------------------------------------------------


def test_the_shipped_policy_states_its_currency_and_a_version_newer_than_the_nominal_one() -> None:
    assert POLICY.currency == "USD"
    assert POLICY.version == "approvals-2026.12"
    assert POLICY.rates["JPY"] == Decimal("0.0067")
    assert POLICY.rates["KWD"] == Decimal("3.25")
    assert all(isinstance(rate, Decimal) and rate > 0 for rate in POLICY.rates.values())


@pytest.mark.parametrize(
    ("kind", "posting", "roles"),
    [
        # 9,000 dinars are 29,250 dollars: two approvals, not the team lead alone of "9,000".
        (ResolutionKind.CREDIT_MEMO, amount("9000", "KWD"), BOTH),
        (ResolutionKind.REFUND, amount("4000", "BHD"), BOTH),  # 10,600 USD
        (ResolutionKind.REFUND, amount("3000", "BHD"), ("team_lead",)),  # 7,950 USD
        # 4,000 yen are 26.80 dollars: automatic, not a team lead's because 4,000 > 1,000.
        (ResolutionKind.CREDIT_MEMO, amount("4000", "JPY"), ()),
        (ResolutionKind.CREDIT_MEMO, amount("1600000", "JPY"), BOTH),  # 10,720 USD
        (ResolutionKind.PAYMENT_ALLOCATION, amount("576000", "JPY"), ()),  # 3,859.20 USD
        (ResolutionKind.CREDIT_MEMO, amount("840.00", "GBP"), ("team_lead",)),  # 1,066.80 USD
        (ResolutionKind.CREDIT_MEMO, amount("950.00", "EUR"), ("team_lead",)),  # 1,026.00 USD
        (ResolutionKind.CREDIT_MEMO, amount("925.00", "EUR"), ()),  # 999.00 USD
        (ResolutionKind.CREDIT_LIMIT_UPDATE, amount("-10000000", "JPY"), BOTH),  # its size counts
        (ResolutionKind.CREDIT_MEMO, amount("12500.00", "USD"), BOTH),  # the policy's own: as before
    ],
)
def test_a_posting_is_measured_in_dollars_before_its_tier_is_chosen(
    kind: ResolutionKind, posting: Money, roles: tuple[str, ...]
) -> None:
    assert POLICY.required_roles(kind, posting) == roles


@pytest.mark.parametrize(
    ("yen", "roles", "basis"),
    [
        ("149253", (), "149,253 JPY (999.9951 USD at 0.0067) is at most 1,000.00 USD"),
        (
            "149254",
            ("team_lead",),
            "149,254 JPY (1,000.0018 USD at 0.0067) is above 1,000.00 USD and at most 10,000.00 USD",
        ),
        ("4000", (), "4,000 JPY (26.80 USD at 0.0067) is at most 1,000.00 USD"),
    ],
)
def test_the_converted_amount_is_compared_exactly_and_shown_with_both_amounts(
    yen: str, roles: tuple[str, ...], basis: str
) -> None:
    requirement = POLICY.requirement(ResolutionKind.CREDIT_MEMO, amount(yen, "JPY"))
    assert requirement.roles == roles
    assert requirement.basis == basis


@pytest.mark.parametrize(
    ("euros", "roles"),
    [
        ("800.00", ()),  # exactly 1,000.00 USD at 1.25: the bound itself is in the lower tier
        ("800.01", ("team_lead",)),  # 1,000.0125 USD
        ("8000.00", ("team_lead",)),  # exactly 10,000.00 USD
        ("8000.01", BOTH),
    ],
)
def test_a_tier_boundary_holds_exactly_after_conversion(
    tmp_path: Path, euros: str, roles: tuple[str, ...]
) -> None:
    policy = policy_with_rates(tmp_path, 'EUR = "1.25"')
    assert policy.required_roles(ResolutionKind.CREDIT_MEMO, amount(euros, "EUR")) == roles


def test_conversion_is_exact_decimal_arithmetic() -> None:
    measured = POLICY.convert(amount("123456789.1234", "JPY"))
    assert measured.converted == Decimal("827160.48712678")
    assert isinstance(measured.converted, Decimal)
    own = POLICY.convert(amount("10.00", "USD"))
    assert (own.rate, own.converted) == (Decimal(1), Decimal("10.00"))


@pytest.mark.parametrize("kind", list(ResolutionKind))
def test_a_currency_without_a_rate_takes_the_highest_tier_of_its_kind_and_says_why(
    kind: ResolutionKind,
) -> None:
    requirement = POLICY.requirement(kind, amount("1", "ISK"))  # a króna is worth less than a cent
    assert requirement.roles == POLICY.kinds[kind][-1].roles
    assert (
        requirement.basis == "there is no rate for ISK in policy approvals-2026.12: the highest tier applies"
    )


def test_postings_approved_together_are_summed_in_dollars_when_their_currencies_differ() -> None:
    requirement = POLICY.requirement_for_sum(
        ResolutionKind.CREDIT_MEMO, [amount("400.000", "KWD"), amount("300.00", "USD")]
    )
    # Nominally 700 (automatic); in dollars 1,300.00 + 300.00 = 1,600.00: a team lead.
    assert requirement.roles == ("team_lead",)
    assert requirement.basis == (
        "400.000 KWD (1,300.00 USD at 3.25) + 300.00 USD, together 1,600.00 USD, "
        "is above 1,000.00 USD and at most 10,000.00 USD"
    )


def test_postings_of_one_currency_are_summed_in_it_and_then_converted() -> None:
    nine_hundred = amount("900.00", "EUR")
    requirement = POLICY.requirement_for_sum(ResolutionKind.CREDIT_MEMO, [nine_hundred] * 3)
    assert requirement.roles == ("team_lead",)
    assert requirement.basis.startswith("2,700.00 EUR (2,916.00 USD at 1.08) is above 1,000.00 USD")


def test_postings_approved_together_with_one_currency_without_a_rate_take_the_highest_tier() -> None:
    requirement = POLICY.requirement_for_sum(
        ResolutionKind.CREDIT_MEMO, [amount("1.00", "USD"), amount("1", "ISK")]
    )
    assert requirement.roles == BOTH
    assert "no rate for ISK" in requirement.basis


# --- the file's rates, validated at start -------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "complaint"),
    [
        ("JPY = 0.0067", 'rates.JPY: Value error, rates must be decimal strings such as "0.0067"'),
        ('JPY = "0"', "rates.JPY: Value error, '0' is not a rate: it must be a positive decimal"),
        ('JPY = "-0.0067"', "it must be a positive decimal"),
        ('JPY = "NaN"', "it must be a positive decimal"),
        ('JPY = "six"', "'six' is not a decimal rate"),
        ('jpy = "0.0067"', "rates.jpy"),
        ('USD = "1.1"', "USD is the policy's own currency, its rate is 1 (not 1.1)"),
    ],
)
def test_a_bad_rate_is_refused_at_start_with_the_reason(tmp_path: Path, rates: str, complaint: str) -> None:
    with pytest.raises(PolicyError) as raised:
        policy_with_rates(tmp_path, rates)
    assert str(tmp_path / "policy.toml") in str(raised.value)
    assert complaint in str(raised.value)


def test_a_policy_that_does_not_say_its_currency_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_PATH.read_text().replace('currency = "USD"', "")
    with pytest.raises(PolicyError, match="currency: Field required"):
        load_policy(policy_file(tmp_path, text))


def test_the_own_currency_may_be_listed_at_rate_one(tmp_path: Path) -> None:
    policy = policy_with_rates(tmp_path, 'USD = "1.00"\nJPY = "0.0067"')
    assert policy.required_roles(ResolutionKind.CREDIT_MEMO, amount("1000.01", "USD")) == ("team_lead",)


# --- the write-off tolerance --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "currency", "total", "within"),
    [
        ("7462", "JPY", "1000000", True),  # 49.9954 USD, and under 2 % of the invoice (20,000 yen)
        ("7463", "JPY", "1000000", False),  # 50.0021 USD: above 50.00 USD
        ("15.38", "KWD", "10000.000", True),  # 49.985 USD
        ("15.39", "KWD", "10000.000", False),  # 50.0175 USD: under "50" dinars, but 50 dollars is the limit
        ("100", "JPY", "4000", False),  # 0.67 USD, but above 2 % of the invoice total (80 yen)
        ("80", "JPY", "4000", True),  # exactly 2 % of the invoice total, in yen
        ("1", "ISK", "1000000", False),  # no rate: never within the tolerance amount
    ],
)
def test_a_write_off_is_within_the_tolerance_amount_in_dollars_and_the_share_in_its_own_currency(
    asked: str, currency: str, total: str, within: bool
) -> None:
    tolerance = POLICY.write_off_tolerance
    assert tolerance.covers(amount(asked, currency), amount(total, currency)) is within


def test_a_write_off_without_a_rate_says_why_it_is_above_the_tolerance() -> None:
    check = POLICY.write_off_tolerance.check(amount("1", "ISK"), amount("1000000", "ISK"))
    assert not check.within
    assert check.explanation == (
        "the automatic tolerance is at most 50.00 USD and at most 2.00% of the invoice total "
        "1,000,000 ISK, here 20,000 ISK; there is no rate for ISK in policy approvals-2026.12, so "
        "1 ISK cannot count as within 50.00 USD: above it"
    )


def test_a_dinar_write_off_proposed_by_the_strategy_needs_approval_above_fifty_dollars() -> None:
    kwd = "KWD"
    the_invoice = invoice(currency=kwd, total=money("10000.000", kwd), open_amount=money("10000.000", kwd))
    proposal = propose(
        routed(RequestType.WRITE_OFF, disputed_amount=money("40.000", kwd)),
        facts((the_invoice,)),
        write_off_tolerance=POLICY.write_off_tolerance,
    )
    assert isinstance(proposal, Posting), proposal
    assert proposal.within_tolerance is False  # 40 dinars are 130 dollars
    assert "40.000 KWD (130.00 USD at 3.25) against 50.00 USD: above it" in proposal.explanation


# --- through the lifecycle: what the approval request carries -----------------------------------


def credit_of(
    currency: str, invoiced: str, contracted: str, quantity: str = "2"
) -> tuple[RequestResolution, list[Effect]]:
    """A request disputing an invoice in ``currency``: ``quantity`` x ``invoiced`` against the
    contract's ``contracted``, considered with the shipped policy."""
    total = str(Decimal(quantity) * Decimal(invoiced))
    the_invoice = invoice(
        currency=currency,
        lines=[{"sku": "CLD", "quantity": quantity, "unit_price": invoiced}],
        total=money(total, currency),
        open_amount=money(total, currency),
    )
    the_contract = contract(currency=currency, prices=[{"sku": "CLD", "unit_price": contracted}])
    the_request = RequestResolution.from_routed(routed(RequestType.BILLING_DISPUTE), now=NOW, terms=TERMS)
    return the_request, the_request.consider(facts((the_invoice,), (the_contract,)), now=NOW, terms=TERMS)


def test_a_dinar_credit_worth_29250_dollars_needs_a_team_lead_and_a_finance_manager() -> None:
    # 2 x (6,000 - 1,500) = 9,000 KWD: nominally below 10,000, in dollars 29,250.
    the_request, effects = credit_of("KWD", "6000.000", "1500.000")
    requested = [effect for effect in effects if isinstance(effect, ApprovalRequested)]
    assert the_request.state is ResolutionState.AWAITING_APPROVAL
    assert len(requested) == 1
    assert requested[0].required_roles == BOTH
    assert requested[0].amount == amount("9000", "KWD")
    assert requested[0].policy_version == "approvals-2026.12"
    assert (
        "approval is needed by a team lead and a finance manager (policy approvals-2026.12), because "
        "9,000.000 KWD (29,250.00 USD at 3.25) is above 10,000.00 USD." in requested[0].explanation
    )


def test_a_yen_credit_worth_27_dollars_is_posted_without_approval() -> None:
    the_request, effects = credit_of("JPY", "520", "480", quantity="100")  # 4,000 yen
    assert the_request.state is ResolutionState.RESOLVED
    postings = [effect for effect in effects if isinstance(effect, ErpResolution)]
    assert [(posting.amount, posting.approvals) for posting in postings] == [(amount("4000", "JPY"), [])]


def test_a_credit_in_a_currency_without_a_rate_waits_for_the_highest_tier_and_says_why() -> None:
    # 200 krónur: small, but nobody can tell from the file
    _, effects = credit_of("ISK", "600", "500")
    requested = [effect for effect in effects if isinstance(effect, ApprovalRequested)]
    assert [effect.required_roles for effect in requested] == [BOTH]
    assert requested[0].explanation.endswith(
        "approval is needed by a team lead and a finance manager (policy approvals-2026.12), because "
        "there is no rate for ISK in policy approvals-2026.12: the highest tier applies."
    )


def test_an_approval_over_postings_in_two_currencies_states_each_total_and_the_converted_sum() -> None:
    # A dispute over two invoices: 2 x 300 KWD overcharged on one, 2 x 100 USD on the other.
    dinars = invoice(
        invoice_id="INV-K",
        contract_id="CTR-K",
        currency="KWD",
        lines=[{"sku": "CLD", "quantity": "2", "unit_price": "800.000"}],
        total=money("1600.000", "KWD"),
        open_amount=money("1600.000", "KWD"),
    )
    dollars = invoice(
        invoice_id="INV-U",
        lines=[{"sku": "CLD", "quantity": "2", "unit_price": "600.00"}],
        total=money("1200.00", "USD"),
        open_amount=money("1200.00", "USD"),
    )
    contracts = (
        contract(contract_id="CTR-K", currency="KWD", prices=[{"sku": "CLD", "unit_price": "500.000"}]),
        contract(),
    )
    the_request = RequestResolution.from_routed(
        routed(RequestType.BILLING_DISPUTE, invoice_ids=("INV-K", "INV-U")), now=NOW, terms=TERMS
    )
    effects = the_request.consider(facts((dinars, dollars), contracts), now=NOW, terms=TERMS)
    (requested,) = [effect for effect in effects if isinstance(effect, ApprovalRequested)]
    # Before: "1000 KWD", the two figures added as if they were one currency.
    assert requested.amounts == (amount("600", "KWD"), amount("200", "USD"))
    assert requested.amount == amount("2150.00", "USD")  # 600 x 3.25 + 200
    assert "these 2 postings (together 600.000 KWD + 200.00 USD) are posted" in requested.explanation
    assert requested.required_roles == ("team_lead",)


def test_the_total_of_several_currencies_is_unknown_when_one_has_no_rate() -> None:
    assert POLICY.measured_total([amount("1.00", "USD"), amount("1", "ISK")]) is None
    assert POLICY.measured_total([amount("5", "ISK"), amount("7", "ISK")]) == amount("12", "ISK")
