"""Amounts in a text: with a currency (symbol, code or word, figures or English words), without
one where the words say it is an amount, and the role the words give each one.

An amount is only called *disputed*, *expected* or a *requested credit limit* when the words right
in front of it say so (``rules/amounts.toml``), and never when it is a unit price, because
resolution turns an expected amount into a credit memo.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from shared.events import MAX_STATED_AMOUNTS, StatedAmount
from shared.money import Money

VOCABULARY_FILE: Final = Path(__file__).with_name("rules") / "amounts.toml"


def _load_vocabulary(path: Path = VOCABULARY_FILE) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


_SYMBOLS: Final = {
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
}
_CODES: Final = (
    "USD", "EUR", "GBP", "CHF", "CAD", "AUD", "JPY", "CNY", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "INR",
    "MXN", "BRL", "SGD", "HKD", "NZD", "ZAR", "AED", "SAR", "ILS",
)  # fmt: skip
# Lower-case codes only where they are not words of their own ("try", "sek" in Dutch, ...).
_LOWER_CASE_CODES: Final = ("usd", "eur", "gbp", "chf", "cad", "aud")
_MULTIPLIERS: Final = {
    "k": Decimal(1_000),
    "thousand": Decimal(1_000),
    "m": Decimal(1_000_000),
    "mn": Decimal(1_000_000),
    "mio": Decimal(1_000_000),
    "million": Decimal(1_000_000),
    "millions": Decimal(1_000_000),
    "millionen": Decimal(1_000_000),
    "bn": Decimal(1_000_000_000),
    "billion": Decimal(1_000_000_000),
}

_GROUPERS = " \u00a0\u202f\u2009'’"  # thousands only: spaces (plain, no-break, narrow, thin) and apostrophes
_SYMBOL_ALTERNATIVES = "|".join(re.escape(symbol) for symbol in _SYMBOLS)  # longest first, as listed
_CODE_ALTERNATIVES = "|".join([*_CODES, *(f"(?i:{code})" for code in _LOWER_CASE_CODES)])
_CURRENCY = rf"(?:{_SYMBOL_ALTERNATIVES}|(?<![^\W\d_])(?:{_CODE_ALTERNATIVES})(?![^\W\d_]))"
_CURRENCY_WORDS: Final = {"euro": "EUR", "dollar": "USD", "pound": "GBP", "franc": "CHF", "franken": "CHF"}
_CURRENCY_WORD = r"(?i:euros?|(?:us )?dollars?|pounds?(?: sterling)?|(?:swiss )?francs?|franken)"
_CURRENCY_AFTER = rf"(?:{_CURRENCY}|(?<![^\W\d_]){_CURRENCY_WORD}(?![^\W\d_]))"
# Space/apostrophe groups need a 1-3 digit head and at most four 3-digit groups (10^12 is the
# limit anyway); otherwise digits with dots and commas, whose meaning _parse_number decides. An
# amount never starts right after a digit and a separator: "2026 500 EUR" is no amount rather
# than a wrong one, and a long digit run cannot be re-read from each of its groups.
_NUMBER = (
    rf"(?:\d{{1,3}}(?:[{_GROUPERS}]\d{{3}}(?!\d)){{1,4}}(?:[.,]\d{{1,15}})?"
    rf"|\d{{1,15}}(?:[.,]\d{{1,15}}){{0,6}})(?![.,]?\d)"
)
_MULTIPLIER = (
    r"(?:[ \u00a0]?(?P<{name}>(?i:k|mn|mio\.?|m|thousand|millions?|millionen|bn|billion))(?![^\W\d_]))?"
)
_GAP = r"[ \t\u00a0\u202f]{0,2}"
_AMOUNT = re.compile(
    rf"(?P<currency_before>{_CURRENCY}){_GAP}(?P<number_before>{_NUMBER}){_MULTIPLIER.format(name='mult_before')}"
    rf"|(?<!\d)(?<!\d[.,{_GROUPERS}])(?P<number_after>{_NUMBER}){_MULTIPLIER.format(name='mult_after')}"
    rf"{_GAP}(?P<currency_after>{_CURRENCY_AFTER})",
)


@dataclass(frozen=True)
class AmountsFound:
    """Every amount in a text, and the ones the wording gives a role.

    ``mentioned`` are the amounts with a currency; ``stated`` every amount read, with or without a
    currency, each with the role its words give it (what validation completes with the invoice's
    currency when the text names none).
    """

    mentioned: tuple[Money, ...]
    disputed: Money | None
    expected: Money | None
    requested_credit_limit: Money | None
    paid: Money | None = None
    stated: tuple[StatedAmount, ...] = ()


def find_amounts(text: str) -> tuple[Money, ...]:
    """Every amount with a currency symbol or code, in order (repeats kept: they are mentions).

    A bare number is never an amount. Separators: with both ``,`` and ``.`` the last one is the
    decimal separator; a single one followed by exactly three digits groups thousands (``1.250
    EUR`` is 1250) unless the integer part is ``0``; followed by other digit counts it is the
    decimal separator (``12,50 EUR``); repeated, it groups thousands. Spaces (also no-break and
    narrow no-break) and apostrophes only group thousands, so with them a single ``,`` or ``.``
    is the decimal separator. ``k``/``m``/``million``/``Mio`` multiply. Anything
    :class:`~shared.money.Money` refuses (over 4 decimals, 10^12 or more) is skipped.
    """
    return tuple(found.money for found in _amount_matches(text) if found.money is not None)


@dataclass(frozen=True)
class _AmountSpan:
    """An amount read at ``start:end``: with its currency (``money``) or a bare figure."""

    value: Decimal
    money: Money | None
    start: int
    end: int


def _amount_matches(text: str) -> list[_AmountSpan]:
    """Amounts with a currency (symbol, code or word, figures or simple English words), in order."""
    found = _currency_amounts(text) + _word_amounts(text)
    return sorted(found, key=lambda span: span.start)


def _currency_amounts(text: str) -> list[_AmountSpan]:
    found: list[_AmountSpan] = []
    for match in _AMOUNT.finditer(text):
        before = match.group("currency_before") is not None
        raw = match.group("number_before") if before else match.group("number_after")
        multiplier = match.group("mult_before") if before else match.group("mult_after")
        symbol = match.group("currency_before") if before else match.group("currency_after")
        value = parse_number(raw)
        if value is None:
            continue
        if multiplier:
            value *= _MULTIPLIERS[multiplier.lower().rstrip(".")]
        money = _money(value, _currency_code(symbol))
        if money is not None:
            found.append(_AmountSpan(money.amount, money, match.start(), match.end()))
    return found


def _currency_code(symbol: str) -> str:
    """The ISO code of a symbol, code or currency word (a dollar is USD, a franc CHF: the
    currencies our customers use; a Canadian writes CA$)."""
    if symbol in _SYMBOLS:
        return _SYMBOLS[symbol]
    upper = symbol.upper()
    for word, code in _CURRENCY_WORDS.items():
        if word.upper() in upper:
            return code
    return upper


def _money(value: Decimal, currency: str) -> Money | None:
    try:
        return Money(amount=format(value, "f"), currency=currency)
    except ValidationError:
        return None


def parse_number(raw: str) -> Decimal | None:
    """A written number as a Decimal, by the separator rules of :func:`find_amounts`."""
    grouped_by_space = any(char in _GROUPERS for char in raw)
    marks = [(position, char) for position, char in enumerate(raw) if char in ".,"]
    decimal_at: int | None = None
    if {char for _, char in marks} == {".", ","}:
        decimal_at = marks[-1][0]
    elif len(marks) == 1:
        position = marks[0][0]
        head = raw[:position]
        digits_after = len(raw) - position - 1
        if grouped_by_space or digits_after != 3 or head.strip(_GROUPERS) == "0":
            decimal_at = position
    integer_part = raw if decimal_at is None else raw[:decimal_at]
    fraction = "" if decimal_at is None else raw[decimal_at + 1 :]
    if any(char in ".," for char in fraction):
        return None
    if not _valid_grouping(integer_part):
        return None
    digits = "".join(char for char in integer_part if char.isdigit())
    try:
        return Decimal(f"{digits}.{fraction}" if fraction else digits)
    except InvalidOperation:
        return None


def _valid_grouping(integer_part: str) -> bool:
    """Thousands groups: one kind of separator, a 1-3 digit head, then groups of exactly three."""
    groups = re.split(rf"[.,{_GROUPERS}]", integer_part)
    if len(groups) == 1:
        return bool(groups[0])
    separators = {char if char not in _GROUPERS else "space" for char in integer_part if not char.isdigit()}
    return len(separators) == 1 and 1 <= len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])


def any_of(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


class Role(Enum):
    DISPUTED = "disputed"
    EXPECTED = "expected"
    PAID = "paid"


_VOCABULARY: Final = _load_vocabulary()
ROLE_CUES: Final = tuple((role, any_of(*_VOCABULARY["roles"][role.value])) for role in Role)
"""Per role, the words right in front of an amount that give it that role (``rules/amounts.toml``)."""
_UNIT_PRICE_BEFORE = any_of(*_VOCABULARY["unit_price"])

_UNIT_PRICE_AFTER = re.compile(
    r"^\s{0,2}(?:/\s?\w|per\b|each\b|pro\b|par\b|por\b|je\b|a (?:piece|unit)\b|an hour\b"
    r"|the (?:unit|piece)\b)",
    re.IGNORECASE,
)
_CREDIT_LIMIT_TOPIC = any_of(*_VOCABULARY["credit_limit_topic"])
_REQUESTED_LIMIT_STRONG = re.compile(
    r"(?:\b(?:to|auf|à|hasta|naar|tot|up to)\s?:?|(?:new|requested|desired|neues?|neuen|nouvelle|nuevo)"
    r" (?:credit )?(?:limit|limite|límite|kreditlimit)\w*(?: of| von| de| to| is)?\s?:?)\s*$",
    re.IGNORECASE,
)
_REQUESTED_LIMIT_WEAK = re.compile(r"(?:limit|limite|límite|kreditlimit)\w* (?:of|von|de)\s?:?\s*$", re.I)
_CURRENT_LIMIT = any_of(*_VOCABULARY["current_limit"])
CLAUSE_BREAK = re.compile(r"[!?;\n]|\.(?=\s)")
CONTEXT = 200


def find_amounts_with_roles(text: str) -> AmountsFound:
    """Every amount, plus the disputed, expected, paid and requested-limit ones where the words say so.

    ``disputed``: the first amount behind "overcharged by", "difference of", "disputed amount",
    "we dispute ...", "refund of". ``expected``: behind "should be", "agreed price", "contract
    price", "expected amount". ``paid``: behind "we paid", "transferred", "payment of",
    "überwiesen". Unit prices ("per unit", "/pc", "unit price") get no role.
    ``requested_credit_limit``: in a sentence about a credit limit, the amount behind "to" or "new
    limit" (preferred) or "limit of", never the "current" or "from" one.

    Amounts without a currency are read too, into ``stated`` only: a figure with two decimals
    (``18,500.00``, ``18.500,00``) anywhere, a whole number (``700``) only right behind a cue
    ("overcharged by 700", "we paid 18500"). Their currency is the invoice's, which only
    validation knows.
    """
    with_currency = _amount_matches(text)
    spans = sorted(with_currency + _bare_amounts(text, with_currency), key=lambda span: span.start)
    roles: dict[Role, Money] = {}
    stated: list[StatedAmount] = []
    strong_limit: Money | None = None
    weak_limit: Money | None = None
    previous_end = 0
    for span in spans:
        start = span.start
        window = text[max(0, start - CONTEXT) : start]
        breaks = list(CLAUSE_BREAK.finditer(window))
        clause_start = start - len(window) + (breaks[-1].end() if breaks else 0)
        segment = text[max(previous_end, clause_start) : start]
        cue = _last_cue(segment)
        role = cue[0] if cue is not None else None
        if span.money is None and DATE_PREPOSITION.search(segment):
            continue  # "paid on 18.09": a date without its year, not an amount
        previous_end = span.end
        after = text[span.end : span.end + 20]
        if _UNIT_PRICE_BEFORE.search(segment) or _UNIT_PRICE_AFTER.match(after):
            continue
        if span.money is not None and role is not None:
            roles.setdefault(role, span.money)
        stated.append(
            StatedAmount(
                amount=span.value,
                currency=span.money.currency if span.money else None,
                role=role.value if role is not None else None,
            )
        )
        if span.money is None:
            continue
        paragraph = window.rsplit("\n\n", 1)[-1]
        if _CREDIT_LIMIT_TOPIC.search(paragraph) and not _CURRENT_LIMIT.search(segment):
            if strong_limit is None and _REQUESTED_LIMIT_STRONG.search(segment):
                strong_limit = span.money
            elif weak_limit is None and _REQUESTED_LIMIT_WEAK.search(segment):
                weak_limit = span.money
    return AmountsFound(
        mentioned=tuple(span.money for span in with_currency if span.money is not None),
        disputed=roles.get(Role.DISPUTED),
        expected=roles.get(Role.EXPECTED),
        requested_credit_limit=strong_limit or weak_limit,
        paid=roles.get(Role.PAID),
        stated=_first_stated(stated),
    )


def _first_stated(stated: list[StatedAmount]) -> tuple[StatedAmount, ...]:
    """The stated amounts a request can carry: those with a role first, then the others, in order."""
    if len(stated) <= MAX_STATED_AMOUNTS:
        return tuple(stated)
    with_role = [index for index, amount in enumerate(stated) if amount.role is not None]
    others = [index for index, amount in enumerate(stated) if amount.role is None]
    kept = sorted((with_role + others)[:MAX_STATED_AMOUNTS])
    return tuple(stated[index] for index in kept)


def _last_cue(segment: str) -> tuple[Role, int] | None:
    """The role of the last cue in ``segment``, and where that cue ends."""
    best: tuple[int, Role, int] | None = None
    for role, cue in ROLE_CUES:
        for match in cue.finditer(segment):
            if best is None or match.start() > best[0]:
                best = (match.start(), role, match.end())
    return (best[1], best[2]) if best else None


# What may stand between a cue and a whole number for the number to be the cue's amount.
_CUE_TO_FIGURE = re.compile(
    r"^\s{0,3}(?:(?:by|of|was|is|were|about|approx\.?|around|only|roughly|exactly|the amount of"
    r"|an amount of|a total of|total of|in total|um|von|de|du|en|:|=)\s{0,3}){0,3}$",
    re.IGNORECASE,
)
DATE_PREPOSITION = re.compile(
    r"\b(?:on|am|le|el|vom|dated|since|until|bis|du|au|from)\s{1,3}$", re.IGNORECASE
)
# Figures with two decimals and no currency: "18,500.00", "18.500,00", "18'500.00", "700.00". No
# space grouping: "in 3 200.00" may be two numbers. A date's "28.09.2026" is excluded by what follows.
_BARE_DECIMAL = re.compile(
    r"(?<![\w.,'’/+#-])(?P<number>\d{1,3}(?:[,.'’\u00a0]\d{3}){1,4}[.,]\d{2}|\d{1,12}[.,]\d{2})"
    r"(?![\w%]|[.,/:-]?\d)"
)
_BARE_INTEGER = re.compile(
    r"(?<![\w.,'’/+#-])(?P<number>\d{1,3}(?:[,.'’]\d{3}){1,4}|\d{1,12})(?![\w%]|[.,/:-]?\d)"
)


def _bare_amounts(text: str, taken: list[_AmountSpan]) -> list[_AmountSpan]:
    """Figures without a currency that are not part of an amount with one."""
    occupied = bytearray(len(text))  # positions already part of an amount: a linear check
    for span in taken:
        occupied[span.start : span.end] = b"\x01" * (span.end - span.start)
    found: list[_AmountSpan] = []
    for pattern, bare_integer in ((_BARE_DECIMAL, False), (_BARE_INTEGER, True)):
        for match in pattern.finditer(text):
            start, end = match.span("number")
            if any(occupied[start:end]):
                continue
            if bare_integer and (not _right_behind_a_cue(text, start) or _COUNTED.match(text, end)):
                continue  # a whole number is an amount only right behind words that say so
            value = parse_number(match.group("number"))
            if value is None or _money(value, "XXX") is None:
                continue
            found.append(_AmountSpan(value, None, start, end))
            occupied[start:end] = b"\x01" * (end - start)
    return found


def _right_behind_a_cue(text: str, start: int) -> bool:
    before = text[max(0, start - _CUE_REACH) : start]
    if not _ENDS_IN_WORDS.search(before):
        return False  # digits, symbols or nothing in front: no cue can be there (and this is cheap)
    cue = _last_cue(before)
    return cue is not None and bool(_CUE_TO_FIGURE.match(before[cue[1] :]))


_CUE_REACH = 60
# "we paid 3 invoices", "paid 2 times": a count, not an amount.
_COUNTED = re.compile(
    r"\s{0,2}(?:invoices?|payments?|times|days?|weeks?|months?|years?|items?|units?|pieces?|pcs|parts?"
    r"|instal(?:l)?ments?|transfers?|rechnungen|zahlungen|mal|tage|fois|factures|veces|facturas)(?![^\W\d_])",
    re.IGNORECASE,
)
_ENDS_IN_WORDS = re.compile(r"[^\W\d_]\s{0,3}[:=]?\s{0,3}$")


# Simple English number words before a currency word: "eighteen thousand five hundred dollars".
_UNIT_WORDS: Final = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
)
_UNITS: Final = {word: value for value, word in enumerate(_UNIT_WORDS.split())}
_TENS: Final = {
    word: value * 10
    for value, word in enumerate(
        ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], start=2
    )
}
_SCALES: Final = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "a", "and"], key=len, reverse=True))
_WORD_AMOUNT = re.compile(
    rf"(?<![^\W\d_])(?P<words>(?:(?:{_NUMBER_WORD})(?:\s|-)){{1,14}})"
    rf"(?P<currency>{_CURRENCY_WORD}|{_CODE_ALTERNATIVES})(?![^\W\d_])",
    re.IGNORECASE,
)


def _word_amounts(text: str) -> list[_AmountSpan]:
    found: list[_AmountSpan] = []
    for match in _WORD_AMOUNT.finditer(text):
        words = re.split(r"[\s-]+", match.group("words").lower().strip())
        while words and words[0] in ("a", "and"):
            if words[0] == "a" and len(words) > 1 and words[1] in _SCALES:
                break  # "a hundred": one hundred
            words.pop(0)
        value = _number_of_words(words)
        money = None if value is None else _money(Decimal(value), _currency_code(match.group("currency")))
        if money is not None:
            start = match.start("words") + (len(match.group("words")) - len(match.group("words").lstrip()))
            found.append(_AmountSpan(money.amount, money, start, match.end()))
    return found


def _number_of_words(words: list[str]) -> int | None:
    """The value of number words ("eighteen thousand five hundred"), or None if they make none."""
    total, current, seen = 0, 0, False
    for word in words:
        if word == "and":
            continue
        if word == "a":
            current = max(current, 1)
        elif word in _UNITS:
            current += _UNITS[word]
            seen = True
        elif word in _TENS:
            current += _TENS[word]
            seen = True
        elif word == "hundred":
            current = max(current, 1) * 100
            seen = True
        else:
            scale = _SCALES[word]
            total += max(current, 1) * scale
            current = 0
            seen = True
    return total + current if seen else None
