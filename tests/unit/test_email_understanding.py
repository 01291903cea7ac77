"""Reading an email like a finance clerk: the corpus, each parser's edge cases, and properties."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.intake import email_understanding as eu
from shared.contract import RequestType
from shared.events import StatedAmount
from shared.money import Money
from tests.unit.email_corpus import CORPUS, Amount, CorpusEmail

CANONICAL_ID = re.compile(r"^(?:INV-\d{4}-\d{6,}|PAY-\d{4}-\d{6,}|CTR-\d{4}-\d{4,})$")


def money(amount: str, currency: str) -> tuple[Decimal, str]:
    return Decimal(amount), currency


def as_pair(value: Money | None) -> tuple[Decimal, str] | None:
    return None if value is None else (value.amount, value.currency)


def expected_pair(value: Amount | None) -> tuple[Decimal, str] | None:
    return None if value is None else money(*value)


# --------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------


def test_the_corpus_is_large_varied_and_uniquely_named() -> None:
    assert len(CORPUS) >= 60
    assert len({email.name for email in CORPUS}) == len(CORPUS)
    assert {email.request_type for email in CORPUS} == {*RequestType, None}


@pytest.mark.parametrize("email", CORPUS, ids=[email.name for email in CORPUS])
def test_every_corpus_email_is_understood_exactly(email: CorpusEmail) -> None:
    understood = eu.understand_email(subject=email.subject, body_text=email.body, sender=email.sender)

    assert (understood.sender_name, understood.sender_email) == (email.sender_name, email.sender_email)
    assert understood.invoice_ids == email.invoice_ids
    assert understood.payment_ids == email.payment_ids
    assert understood.contract_ids == email.contract_ids
    assert [as_pair(amount) for amount in understood.mentioned_amounts] == [money(*a) for a in email.amounts]
    assert as_pair(understood.disputed_amount) == expected_pair(email.disputed)
    assert as_pair(understood.expected_amount) == expected_pair(email.expected)
    assert as_pair(understood.requested_credit_limit) == expected_pair(email.credit_limit)
    assert understood.mentioned_dates == email.dates
    assert understood.request_type == email.request_type
    if email.request_type is None:
        assert understood.type_confidence < eu.CONFIDENT_ENOUGH
        assert understood.type_evidence == ()
    else:
        assert eu.CONFIDENT_ENOUGH <= understood.type_confidence <= 1
        assert understood.type_evidence


# --------------------------------------------------------------------------------------
# The sender
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jane Doe <Jane.Doe@Acme.example>", ("Jane Doe", "jane.doe@acme.example")),
        ('"Doe, Jane" <jane@acme.example>', ("Doe, Jane", "jane@acme.example")),
        ('"Jane \\"JD\\" Doe" <jane@acme.example>', ('Jane "JD" Doe', "jane@acme.example")),
        ("   jane@ACME.example   ", (None, "jane@acme.example")),
        ("<jane@acme.example>", (None, "jane@acme.example")),
        ("jane@acme.example <jane@acme.example>", (None, "jane@acme.example")),
        ("  Jane \t Doe   <jane@acme.example> ", ("Jane Doe", "jane@acme.example")),
        ("jane@acme.example (Jane Doe)", ("Jane Doe", "jane@acme.example")),
        ("mailto:jane@acme.example", (None, "jane@acme.example")),
        ("=?iso-8859-1?q?Ren=E9_Fran=E7ois?= <rene@acme.example>", ("René François", "rene@acme.example")),
        ("=?x-unknown?q?abc?= <rene@acme.example>", ("=?x-unknown?q?abc?=", "rene@acme.example")),
        ("Jane Doe <jane@acme>", ("Jane Doe", None)),
        ("Jane Doe <jane..doe@acme.example>", ("Jane Doe", None)),
        ("Jane Doe", (None, None)),
        ("", (None, None)),
        ("<>", (None, None)),
        ("@@@ <<< >>>", (None, None)),
        ("undisclosed-recipients:;", (None, None)),
    ],
)
def test_the_sender_is_split_into_name_and_lower_cased_address(
    value: str, expected: tuple[str | None, str | None]
) -> None:
    assert eu.parse_sender(value) == expected


# --------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Invoice INV-2026-000123 is wrong", ("INV-2026-000123",)),
        ("re: inv 2026 000123", ("INV-2026-000123",)),
        ("INV2026000123 and inv-2026-000124", ("INV-2026-000123", "INV-2026-000124")),
        ("Invoice #2026-000123", ("INV-2026-000123",)),
        ("invoice no. 2026/000123", ("INV-2026-000123",)),
        ("Invoice Number: 2026 000123", ("INV-2026-000123",)),
        ("Rechnung Nr. 2026-000123, Rechnungsnummer 2026-000124", ("INV-2026-000123", "INV-2026-000124")),
        ("facture n° 2026-000123", ("INV-2026-000123",)),
        ("factura nº 2026-000123", ("INV-2026-000123",)),
        ("INV - 2026 - 000123", ("INV-2026-000123",)),
        ("INV-2026-0001234567", ("INV-2026-0001234567",)),
        ("INV-0001-000123", ("INV-0001-000123",)),
        ("INV-2026-000123 twice: INV-2026-000123", ("INV-2026-000123",)),
        ("call me on +49 2026 000123", ()),
        ("Tel. 0049 2026 000123, Fax 2026/000124", ()),
        ("IBAN DE89 3704 0044 0532 0130 00, VAT DE 2026 000123", ()),
        ("#2026-000123", ()),
        ("invoice 1234 567890", ()),  # after a word, only a plausible year
        ("INV-2026-00012", ()),  # five digits: not the format
        ("INV-2026-0001234567890", ()),  # more than twelve: a bank account, not an invoice
        ("XINV-2026-000123", ()),
        ("invoice dated 2026-11-02", ()),
        ("no numbers here", ()),
    ],
)
def test_invoice_numbers_are_found_in_the_ways_people_type_them(text: str, expected: tuple[str, ...]) -> None:
    assert eu.find_invoice_numbers(text) == expected


@pytest.mark.parametrize(
    ("text", "payments", "contracts"),
    [
        ("PAY-2026-000045", ("PAY-2026-000045",), ()),
        ("payment no 2026-000045 / pay2026000046", ("PAY-2026-000045", "PAY-2026-000046"), ()),
        ("Zahlung 2026-000045, paiement 2026-000046", ("PAY-2026-000045", "PAY-2026-000046"), ()),
        ("CTR-2026-0003 and ctr 2026 0004", (), ("CTR-2026-0003", "CTR-2026-0004")),
        ("Vertrag Nr. 2026/0003, contrat 2026-0004", (), ("CTR-2026-0003", "CTR-2026-0004")),
        ("our contract 2026-2027", (), ()),  # a period, not a contract number
        ("CTR-2026-2027", (), ("CTR-2026-2027",)),  # the code says it is one
        ("we paid 2026-000045 last week", (), ()),
    ],
)
def test_payment_and_contract_numbers_follow_the_same_rules(
    text: str, payments: tuple[str, ...], contracts: tuple[str, ...]
) -> None:
    assert eu.find_payment_numbers(text) == payments
    assert eu.find_contract_numbers(text) == contracts


INVOICE_CODES = st.sampled_from(["INV", "inv", "Inv"])
CODE_SEPARATORS = st.sampled_from(["-", " ", "", "_", ".", "#", ": ", " - ", "#:"])
NUMBER_SEPARATORS = st.sampled_from(["-", " ", "", "_", ".", "/", " / "])
NUMBER_WORDS = st.sampled_from(["", " no.", " No", " nr.", " number", " n°", " nº", " Nr"])
WORD_SEPARATORS = st.sampled_from([" ", " #", ": ", "  ", " - "])
KINDS = {
    "INV": (eu.find_invoice_numbers, 6, ["Invoice", "invoice", "INVOICE", "Rechnung", "facture", "factura"]),
    "PAY": (eu.find_payment_numbers, 6, ["Payment", "payment", "Zahlung", "paiement", "pago"]),
    "CTR": (eu.find_contract_numbers, 4, ["Contract", "contract", "Vertrag", "contrat", "contrato"]),
}


@given(
    kind=st.sampled_from(sorted(KINDS)),
    year=st.integers(min_value=1900, max_value=2099),
    digits=st.integers(min_value=0, max_value=6),
    number=st.integers(min_value=0, max_value=999_999_999_999),
    lower=st.booleans(),
    code_separator=CODE_SEPARATORS,
    number_separator=NUMBER_SEPARATORS,
    noise=st.text(max_size=40),
)
def test_any_canonical_id_typed_with_its_code_is_found_and_canonicalized(
    *,
    kind: str,
    year: int,
    digits: int,
    number: int,
    lower: bool,
    code_separator: str,
    number_separator: str,
    noise: str,
) -> None:
    find, minimum, _ = KINDS[kind]
    width = minimum + digits
    rendered_number = f"{number % 10**width:0{width}d}"
    canonical = f"{kind}-{year}-{rendered_number}"
    code = kind.lower() if lower else kind
    typed = f"{code}{code_separator}{year}{number_separator}{rendered_number}"
    assert canonical in find(f"{noise} {typed} {noise}")


@given(
    kind=st.sampled_from(sorted(KINDS)),
    year=st.integers(min_value=1900, max_value=2099),
    number=st.integers(min_value=0, max_value=99_999_999),
    word_index=st.integers(min_value=0, max_value=5),
    number_word=NUMBER_WORDS,
    word_separator=WORD_SEPARATORS,
    number_separator=NUMBER_SEPARATORS,
)
def test_any_canonical_id_typed_after_a_word_is_found_and_canonicalized(
    *,
    kind: str,
    year: int,
    number: int,
    word_index: int,
    number_word: str,
    word_separator: str,
    number_separator: str,
) -> None:
    find, minimum, words = KINDS[kind]
    rendered_number = f"{number:0{minimum}d}"
    assume(not (len(rendered_number) == 4 and int(rendered_number) == year + 1))  # "contract 2026-2027"
    word = words[word_index % len(words)]
    typed = f"{word}{number_word}{word_separator}{year}{number_separator}{rendered_number}"
    assert find(f"Re: {typed}.") == (f"{kind}-{year}-{rendered_number}",)


# --------------------------------------------------------------------------------------
# Amounts
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$12,500.00", [money("12500.00", "USD")]),
        ("USD 12500", [money("12500", "USD")]),
        ("12.500,00 EUR", [money("12500.00", "EUR")]),
        ("€1 200,50", [money("1200.50", "EUR")]),
        ("€1\u00a0200,50", [money("1200.50", "EUR")]),
        ("1\u202f200,50 €", [money("1200.50", "EUR")]),
        ("EUR 1.234,56", [money("1234.56", "EUR")]),
        ("£99.95", [money("99.95", "GBP")]),
        ("CHF 1'250.00", [money("1250.00", "CHF")]),
        ("CHF 1’250.00", [money("1250.00", "CHF")]),
        ("12500 usd", [money("12500", "USD")]),
        ("1,234.5 USD", [money("1234.5", "USD")]),
        ("1.250 EUR", [money("1250", "EUR")]),
        ("12,500 USD", [money("12500", "USD")]),
        ("12,50 EUR", [money("12.50", "EUR")]),
        ("EUR 0,500", [money("0.500", "EUR")]),  # "0" cannot head a thousands group
        ("USD 1.2345", [money("1.2345", "USD")]),
        ("1 234.567 EUR", [money("1234.567", "EUR")]),  # spaces group, so the dot is the decimal
        ("1.234.567,89 EUR", [money("1234567.89", "EUR")]),
        ("1,234,567 USD", [money("1234567", "USD")]),
        ("US$ 40 and C$ 50 and A$60", [money("40", "USD"), money("50", "CAD"), money("60", "AUD")]),
        ("USD12500 and 300EUR", [money("12500", "USD"), money("300", "EUR")]),
        ("500 euros", [money("500", "EUR")]),
        (
            "USD 50k, EUR 1.5m, $2 million",
            [money("50000", "USD"), money("1500000", "EUR"), money("2000000", "USD")],
        ),
        ("-$50.00", [money("50.00", "USD")]),  # signs are not read: the wording says what an amount is
        ("12,500", []),  # a bare number is not an amount
        ("12500 units at 40 each", []),
        ("USD 0.00001", []),  # more than four decimals: Money refuses it, so it is skipped
        ("USD 1,000,000,000,000", []),  # 10^12: implausible
        ("$1,23,456.00", []),  # malformed grouping
        ("USD 1.234.56", []),
        ("EUR 02.11.2026", []),  # a date, not an amount
        ("2026 500 EUR", []),  # no amount rather than a wrong one
        ("try 100 times", []),  # lower-case codes only where they are not words
        ("MUSD 5", []),
        ("100 USDT", []),
    ],
)
def test_amounts_need_a_currency_and_follow_the_separator_rules(
    text: str, expected: list[tuple[Decimal, str]]
) -> None:
    assert [as_pair(amount) for amount in eu.find_amounts(text)] == expected


def test_amount_strings_keep_the_precision_that_was_written() -> None:
    (amount,) = eu.find_amounts("EUR 12.500,00")
    assert amount.model_dump(mode="json") == {"amount": "12500.00", "currency": "EUR"}


@pytest.mark.parametrize(
    ("text", "disputed", "expected"),
    [
        ("We were overcharged by USD 600.00.", money("600.00", "USD"), None),
        ("There is a difference of €50,00 on the invoice.", money("50.00", "EUR"), None),
        ("The disputed amount is $75.", money("75", "USD"), None),
        ("We dispute the late fee of $75.00.", money("75.00", "USD"), None),
        ("The total should be USD 4,500.00.", None, money("4500.00", "USD")),
        ("The invoice should have been EUR 4.500,00.", None, money("4500.00", "EUR")),
        ("The agreed price was £900.", None, money("900", "GBP")),
        ("Contract price: CHF 1'000.00", None, money("1000.00", "CHF")),
        ("We expected USD 300.", None, money("300", "USD")),
        (
            "We were charged USD 5,000 but it should be USD 4,500, so we were overcharged by USD 500.",
            money("500", "USD"),
            money("4500", "USD"),
        ),
        ("The agreed price is USD 40.00 per unit.", None, None),
        ("The unit price should be EUR 4,62.", None, None),
        ("It should be USD 5/pc.", None, None),
        ("The invoice is USD 5,000. Please check.", None, None),
        ("We were overcharged. The invoice is USD 5,000.", None, None),  # the cue is in another sentence
    ],
)
def test_an_amount_gets_a_role_only_when_the_words_in_front_of_it_say_so(
    text: str, disputed: tuple[Decimal, str] | None, expected: tuple[Decimal, str] | None
) -> None:
    found = eu.find_amounts_with_roles(text)
    assert as_pair(found.disputed) == disputed
    assert as_pair(found.expected) == expected


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("Please increase our credit limit from USD 50,000 to USD 100,000.", money("100000", "USD")),
        ("We need a credit limit of EUR 250k.", money("250000", "EUR")),
        (
            "Our current credit limit of USD 50,000 is too low; please raise it to USD 80,000.",
            money("80000", "USD"),
        ),
        ("Bitte das Kreditlimit auf 80.000 EUR erhöhen.", money("80000", "EUR")),
        ("New limit: $90,000 please. Our current credit limit is $60,000.", money("90000", "USD")),
        ("Our current credit limit of USD 50,000 is too low.", None),
        ("Please pay USD 5,000 to our account.", None),
    ],
)
def test_the_requested_credit_limit_is_the_new_one_not_the_current_one(
    text: str, limit: tuple[Decimal, str] | None
) -> None:
    assert as_pair(eu.find_amounts_with_roles(text).requested_credit_limit) == limit


SYMBOL_OR_CODE = st.sampled_from(
    [("$", "USD"), ("€", "EUR"), ("£", "GBP"), ("USD", "USD"), ("EUR", "EUR"), ("CHF", "CHF"), ("usd", "USD")]
)


def _grouped(integer: int, separator: str) -> str:
    return f"{integer:,}".replace(",", separator)


@given(
    integer=st.integers(min_value=0, max_value=999_999_999_999),
    fraction=st.sampled_from(["", "5", "50", "05", "99", "0"]),
    style=st.sampled_from(["us", "european", "swiss", "space", "nbsp", "narrow", "plain_dot", "plain_comma"]),
    currency=SYMBOL_OR_CODE,
    before=st.booleans(),
    gap=st.sampled_from(["", " ", "\u00a0"]),
)
def test_any_amount_in_any_common_style_parses_back_exactly(
    *, integer: int, fraction: str, style: str, currency: tuple[str, str], before: bool, gap: str
) -> None:
    thousands, decimal_mark = {
        "us": (",", "."),
        "european": (".", ","),
        "swiss": ("'", "."),
        "space": (" ", ","),
        "nbsp": ("\u00a0", ","),
        "narrow": ("\u202f", "."),
        "plain_dot": ("", "."),
        "plain_comma": ("", ","),
    }[style]
    written = _grouped(integer, thousands) + (f"{decimal_mark}{fraction}" if fraction else "")
    symbol, code = currency
    text = f"Total: {symbol}{gap}{written}." if before else f"Total: {written}{gap}{symbol}."
    expected = Decimal(f"{integer}.{fraction}" if fraction else str(integer))
    assert [as_pair(amount) for amount in eu.find_amounts(text)] == [(expected, code)]


# --------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------

NOV_2 = date(2026, 11, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-02", (NOV_2,)),
        ("2026/11/02", (NOV_2,)),
        ("2 November 2026", (NOV_2,)),
        ("2nd of November, 2026", (NOV_2,)),
        ("2. November 2026", (NOV_2,)),
        ("2 nov. 2026", (NOV_2,)),
        ("02-Nov-2026", (NOV_2,)),
        ("2 de noviembre de 2026", (NOV_2,)),
        ("2 novembre 2026, 2 März 2026", (NOV_2, date(2026, 3, 2))),
        ("Nov 2, 2026", (NOV_2,)),
        ("November 2nd 2026", (NOV_2,)),
        ("02.11.2026", (NOV_2,)),
        ("2/11/2026", (NOV_2,)),  # day first: most of our customers write it this way
        ("02-11-2026", (NOV_2,)),
        ("11/25/2026", (date(2026, 11, 25),)),  # only the US reading is a date
        ("25/11/2026", (date(2026, 11, 25),)),
        ("11.25.2026", ()),  # dots are always day.month
        ("31.02.2026", ()),
        ("2026-13-01", ()),
        ("02.11.26", ()),  # two-digit years are not taken
        ("INV-2026-000123, CTR-2026-0003", ()),
        ("2026-11-02 and again 02.11.2026", (NOV_2,)),
        ("in May 2026", ()),  # no day
    ],
)
def test_dates_are_read_in_the_common_formats(text: str, expected: tuple[date, ...]) -> None:
    assert eu.find_dates(text) == expected


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)), st.integers(min_value=0, max_value=5)
)
def test_any_date_in_an_unambiguous_format_is_found(day: date, style: int) -> None:
    month = day.strftime("%B")
    written = [
        day.isoformat(),
        f"{day.day:02d}.{day.month:02d}.{day.year}",
        f"{day.day} {month} {day.year}",
        f"{month[:3]} {day.day}, {day.year}",
        f"{day.day}. {month} {day.year}",
        f"{month} {day.day}th {day.year}",
    ][style]
    assert eu.find_dates(f"paid on {written}, thanks") == (day,)


# --------------------------------------------------------------------------------------
# The sender's own text
# --------------------------------------------------------------------------------------


def test_quoted_lines_and_the_reply_chain_are_not_own_text() -> None:
    parts = eu.split_body(
        "Still wrong.\n\nOn Mon, Nov 2, 2026 at 9:00 AM Billing <b@us.example> wrote:\n> INV-2026-000001\n"
    )
    assert parts.own == "Still wrong."
    assert parts.quoted == "> INV-2026-000001"


def test_an_inline_answer_between_quotes_is_own_text() -> None:
    body = "Jane wrote:\n> Which invoice?\nINV-2026-000002\n> Amount?\nUSD 10.00\n"
    assert eu.own_text(body) == "INV-2026-000002\nUSD 10.00"


def test_an_attribution_without_quote_marks_quotes_everything_after_it() -> None:
    body = "Thanks.\n\nAm 02.11.2026 um 10:15 schrieb Billing <b@us.example>:\nRechnung 2026-000003\n"
    parts = eu.split_body(body)
    assert parts.own == "Thanks."
    assert "2026-000003" in parts.quoted


@pytest.mark.parametrize(
    "attribution",
    [
        "On Mon, Nov 2, 2026 at 9:00 AM Billing <b@us.example> wrote:",
        "Le lun. 2 nov. 2026 à 09:12, Facturation <b@us.example> a écrit :",
        "El lun, 2 nov 2026 a las 9:00, Facturación (<b@us.example>) escribió:",
        "Op ma 2 nov. 2026 om 09:00 schreef Billing <b@us.example>:",
        "-----Original Message-----",
        "-----Ursprüngliche Nachricht-----",
    ],
)
def test_reply_headers_in_several_languages_end_the_own_text(attribution: str) -> None:
    assert eu.own_text(f"Own words.\n{attribution}\nTheir words INV-2026-000004\n") == "Own words."


def test_an_outlook_header_block_ends_a_reply_but_starts_a_forward() -> None:
    body = (
        "See below.\n\nFrom: Warehouse <w@acme.example>\nSent: Tuesday, November 3, 2026 8:02 AM\n"
        "To: AP <ap@acme.example>\nSubject: Short delivery INV-2026-000005\n\nOnly 100 of 120 arrived.\n"
    )
    assert eu.own_text(body, subject="RE: delivery") == "See below."
    assert eu.own_text(body, subject="FW: delivery") == (
        "See below.\n\nShort delivery INV-2026-000005\nOnly 100 of 120 arrived."
    )


def test_a_forwarded_message_is_own_text_without_its_transport_headers() -> None:
    body = (
        "Please look at this.\n\n---------- Forwarded message ---------\nFrom: Bank <n@bank.example>\n"
        "Date: Mon, Nov 2, 2026 at 8:00 AM\nSubject: Advice\nTo: <ap@acme.example>\n\nWe paid 2026-11-01.\n"
    )
    understood = eu.understand_email(subject="Fwd: Advice", body_text=body, sender="ap@acme.example")
    assert eu.own_text(body) == "Please look at this.\n\nAdvice\nWe paid 2026-11-01."
    assert understood.mentioned_dates == (date(2026, 11, 1),)  # not the Date: header's


@pytest.mark.parametrize(
    ("body", "own"),
    [
        ("Please refund.\n-- \nJane\n+1 555 2026 000123", "Please refund."),
        ("Please refund.\n--\nJane", "Please refund."),
        ("Please refund.\n\nKind regards,\nJane Doe\nAcme GmbH\nIBAN DE89 3704 0044", "Please refund."),
        ("Please refund.\n\nMit freundlichen Grüßen\nJürgen", "Please refund."),
        ("Please refund.\n\nCordialement,\nLéa", "Please refund."),
        (
            "Please refund.\n\nThanks,\nJane\n\nP.S. It is INV-2026-000006.",
            "Please refund.\n\nP.S. It is INV-2026-000006.",
        ),
        ("Thanks,\n\nwe were overcharged.\n\nJane", "Thanks,\n\nwe were overcharged.\n\nJane"),
        ("Please refund.\n\nSent from my iPhone", "Please refund."),
        # A sign-off followed by a long text is not a signature: the text is kept.
        ("Hi.\nThanks!\n" + "line\n" * 20, "Hi.\nThanks!\n" + "\n".join(["line"] * 20)),
    ],
)
def test_signatures_are_dropped_where_that_is_safe(body: str, own: str) -> None:
    assert eu.own_text(body) == own


def test_documents_come_from_the_quoted_part_only_when_the_own_text_names_none() -> None:
    quoted = "\n\nOn Mon, Nov 2, 2026, Billing <b@us.example> wrote:\n> INV-2026-000007 is open, USD 5.00\n"
    nothing = eu.understand_email(
        subject="Re: statement", body_text="Not fixed." + quoted, sender="a@b.example"
    )
    named = eu.understand_email(
        subject="Re: statement", body_text="PAY-2026-000008 covers it." + quoted, sender="a@b.example"
    )
    assert (nothing.invoice_ids, nothing.mentioned_amounts) == (("INV-2026-000007",), ())
    assert (named.invoice_ids, named.payment_ids) == ((), ("PAY-2026-000008",))


# --------------------------------------------------------------------------------------
# The type of request
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We were overcharged on the last invoice", RequestType.BILLING_DISPUTE),
        ("Please raise our credit limit to 50k", RequestType.CREDIT_LIMIT_CHANGE),
        ("Requesting a refund of the credit balance", RequestType.REFUND),
        ("Our payment was never applied to the invoice", RequestType.PAYMENT_QUERY),
        ("Please write off the small balance", RequestType.WRITE_OFF),
        ("Please update your records: we have moved to a new address", RequestType.ACCOUNT_UPDATE),
        ("When does our contract term end and what is the notice period?", RequestType.CONTRACT_QUERY),
        ("Could you send us a copy of the invoice?", RequestType.SERVICE_REQUEST),
        ("The invoice shows the wrong PO number, please reissue it", RequestType.INVOICE_CORRECTION),
        ("Hello, how are you?", None),
        ("Our contract", None),  # one weak word decides nothing
        ("", None),
    ],
)
def test_requests_are_classified_by_their_words(text: str, expected: RequestType | None) -> None:
    classification = eu.classify(text)
    assert classification.request_type == expected
    assert (classification.confidence >= eu.CONFIDENT_ENOUGH) == (expected is not None)


def test_the_confidence_follows_the_documented_formula() -> None:
    strong_alone = eu.classify("We were overcharged")
    strong_against_weak = eu.classify("We were overcharged under our contract")
    tie = eu.classify("Please refund or write off the balance")
    assert strong_alone.confidence == 0.75  # 3 / (3 + 1)
    assert strong_against_weak.confidence == round(3 / 4 * (1 - 1 / 6), 3)
    assert strong_against_weak.request_type is RequestType.BILLING_DISPUTE
    assert (tie.request_type, tie.confidence) == (None, round(5 / 6 * (1 - 3 / 10), 3))


def test_documents_are_evidence_and_the_evidence_is_reported() -> None:
    classification = eu.classify(
        "We paid it last week.", invoice_ids=("INV-2026-000009",), payment_ids=("PAY-2026-000010",)
    )
    assert classification.request_type is RequestType.PAYMENT_QUERY
    assert classification.evidence == ("we paid", "PAY-2026-000010", "paid + INV-2026-000009")


def test_the_subject_weighs_more_than_the_body() -> None:
    in_body = eu.classify("Please use our new IBAN for all refunds. Our bank details have changed.")
    in_subject = eu.classify(
        "Please use our new IBAN for all refunds.", subject="Our bank details have changed"
    )
    assert in_body.request_type is None  # 3 + 2 against 3: not clear enough
    assert in_subject.request_type is RequestType.ACCOUNT_UPDATE


def test_every_type_has_rules_and_no_rule_is_empty() -> None:
    assert {rule.request_type for rule in eu.RULES} == set(RequestType)
    for rule in eu.RULES:
        assert rule.weight > 0
        assert rule.pattern is not None or rule.needs is not None
        if rule.pattern is not None:
            assert not rule.pattern.search("")


# --------------------------------------------------------------------------------------
# Whatever arrives
# --------------------------------------------------------------------------------------


@given(subject=st.text(max_size=200), body=st.text(max_size=2_000), sender=st.text(max_size=200))
def test_arbitrary_text_never_raises_and_only_yields_canonical_ids(
    subject: str, body: str, sender: str
) -> None:
    understood = eu.understand_email(subject=subject, body_text=body, sender=sender)
    for document_id in (*understood.invoice_ids, *understood.payment_ids, *understood.contract_ids):
        assert CANONICAL_ID.match(document_id)
    assert 0 <= understood.type_confidence <= 1
    assert (understood.request_type is None) == (understood.type_confidence < eu.CONFIDENT_ENOUGH)
    assert understood.sender_email is None or understood.sender_email == understood.sender_email.lower()


@given(st.text(alphabet=st.characters(exclude_categories=["Nd"]), max_size=2_000))
def test_text_without_digits_yields_no_ids_amounts_or_dates(text: str) -> None:
    understood = eu.understand_email(subject=text[:100], body_text=text, sender="a@b.example")
    assert understood.invoice_ids == understood.payment_ids == understood.contract_ids == ()
    assert understood.mentioned_amounts == understood.mentioned_dates == ()
    assert (
        understood.disputed_amount is understood.expected_amount is understood.requested_credit_limit is None
    )


ADVERSARIAL_BODIES = {
    "one_long_number": "1" * 100_000,
    "space_grouped_digits": ("1" + " 000" * 25_000)[:100_000],
    "comma_chains": "1," * 50_000,
    "dot_chains": "1." * 50_000,
    "apostrophe_chains": "€1'000" * 16_000,
    "keywords_and_spaces": ("invoice " + " " * 50) * 1_700,
    "code_and_digits": "INV" + "2" * 99_997,
    "separators_after_code": ("INV-" + "-" * 20) * 4_000,
    "sign_offs": "Thanks,\n" * 12_500,
    "sign_offs_after_text": "x\n" + "br\n" * 33_000,
    "quote_marks": ">\n" * 50_000,
    "long_attribution_like_lines": ("On " + "x" * 300 + "\n") * 300,
    "one_long_line": "On " + "a " * 49_990 + "wrote:",
    "currency_symbols": "€$£" * 33_333,
    "month_names": "1 November " * 9_000,
    "words_and_spaces": "credit" + " " * 99_990 + "limit",
    "headers": "From: x\n" * 12_500,
}


@pytest.mark.parametrize("body", ADVERSARIAL_BODIES.values(), ids=list(ADVERSARIAL_BODIES))
def test_a_pathological_100k_body_is_read_without_catastrophic_backtracking(body: str) -> None:
    understood = eu.understand_email(subject="x" * 1_000, body_text=body, sender="a@b.example")
    assert all(CANONICAL_ID.match(item) for item in understood.invoice_ids)


# --------------------------------------------------------------------------------------
# Real inputs: numbers in any format, amounts without a currency or in words, dates in words
# --------------------------------------------------------------------------------------

RECEIVED = date(2026, 10, 2)  # a Friday


def stated(amount: str, currency: str | None, role: str | None) -> StatedAmount:
    return StatedAmount(amount=Decimal(amount), currency=currency, role=role)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We paid 18,500.00 on 28 Sep.", (stated("18500.00", None, "paid"),)),
        ("Wir haben 18.500,00 EUR überwiesen.", (stated("18500.00", "EUR", None),)),
        ("Wir haben überwiesen: 18.500,00 EUR.", (stated("18500.00", "EUR", "paid"),)),
        ("We were overcharged by 700.", (stated("700", None, "disputed"),)),
        (
            "The total should be 11,800.00, not 12,500.00.",
            (stated("11800.00", None, "expected"), stated("12500.00", None, None)),
        ),
        ("We paid eighteen thousand five hundred dollars.", (stated("18500", "USD", "paid"),)),
        ("a payment of two hundred and fifty euros", (stated("250", "EUR", "paid"),)),
        ("We transferred $18.5k last week.", (stated("18500.0", "USD", "paid"),)),
        ("We paid invoice 4711 yesterday.", ()),  # a number behind a document word is no amount
        ("We paid on 18.09 as agreed.", ()),  # a date without its year is no amount
        ("We paid 3 invoices.", ()),
        ("Version 2 of the form.", ()),
    ],
)
def test_amounts_are_read_with_their_role_with_or_without_a_currency(
    text: str, expected: tuple[StatedAmount, ...]
) -> None:
    assert eu.find_amounts_with_roles(text).stated == expected


def test_the_paid_amount_is_the_one_the_words_say_was_paid() -> None:
    found = eu.find_amounts_with_roles("The invoice is USD 20,000.00; we paid USD 18,500.00 on 28 Sep.")
    assert found.paid == Money(amount="18500.00", currency="USD")
    assert found.disputed is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("paid on 28 Sep", (date(2026, 9, 28),)),
        ("paid on September 28th", (date(2026, 9, 28),)),
        ("September 28th, 2026", (date(2026, 9, 28),)),
        ("28.09.2026", (date(2026, 9, 28),)),
        ("due 15 Dec", (date(2026, 12, 15),)),  # the nearest 15 December
        ("paid last Friday", (date(2026, 9, 25),)),
        ("transferred yesterday", (date(2026, 10, 1),)),
        ("three days ago", (date(2026, 9, 29),)),
        ("gestern überwiesen, vorgestern bestellt", (date(2026, 10, 1), date(2026, 9, 30))),
        ("vendredi dernier", (date(2026, 9, 25),)),
        ("On May 5 we may 2 things", (date(2026, 5, 5),)),
    ],
)
def test_dates_without_a_year_or_relative_to_the_received_date_are_read(
    text: str, expected: tuple[date, ...]
) -> None:
    assert eu.find_dates(text, today=RECEIVED) == expected
    if "2026" not in text:
        assert eu.find_dates(text) == ()  # without the received date nothing is guessed


@pytest.mark.parametrize(
    ("text", "paid_on"),
    [
        ("We paid 18,500.00 on 28 Sep for invoice RE/2026/0042.", date(2026, 9, 28)),
        ("On 28.09.2026 we transferred the full amount.", date(2026, 9, 28)),
        ("Invoice dated 15 Sep, we paid it yesterday.", date(2026, 10, 1)),
        ("Value date 2026-09-30.", date(2026, 9, 30)),
        ("We paid on 28 Dec.", date(2025, 12, 28)),  # a payment is in the past
        ("We will pay on 15 Oct.", None),
        ("The invoice of 28 Sep is wrong.", None),
    ],
)
def test_the_payment_date_is_the_date_the_words_say_was_paid(text: str, paid_on: date | None) -> None:
    assert eu.find_payment_date(text, today=RECEIVED) == paid_on


def test_an_email_names_its_documents_as_candidates_in_any_format() -> None:
    understood = eu.understand_email(
        subject="RE/2026/0042 and invoice 4711",
        body_text="Hello,\nwe paid 18,500.00 on 28 Sep for both (payment ref 90012345-A).\nJane",
        sender="Jane <jane@acme.example>",
        received_on=RECEIVED,
    )
    assert understood.invoice_candidates == ("RE/2026/0042", "4711")
    assert understood.payment_candidates == ("90012345-A",)
    assert understood.invoice_ids == ()  # no canonical INV-YYYY-NNNNNN number in it
    assert understood.paid_amount is None
    assert understood.stated_amounts == (stated("18500.00", None, "paid"),)
    assert understood.payment_date == date(2026, 9, 28)
    assert understood.request_type is RequestType.PAYMENT_QUERY
