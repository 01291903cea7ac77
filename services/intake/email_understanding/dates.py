"""Dates in a text: unambiguous ones, day-first ones, yearless and relative ones read from the day
the request arrived, and the day the customer says they paid."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Final

from services.intake.email_understanding.amounts import CLAUSE_BREAK, CONTEXT, ROLE_CUES, Role, any_of

_CALENDAR_WORDS: Final = tomllib.loads(
    (Path(__file__).with_name("rules") / "dates.toml").read_text(encoding="utf-8")
)
_MONTHS: Final = {name: int(month) for month, names in _CALENDAR_WORDS["months"].items() for name in names}
"""Month names and abbreviations in five languages, to the month's number (``rules/dates.toml``)."""
_MONTH_NAME = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE = re.compile(
    # 2026-11-02, 2026/11/02, 2026.11.02: year first is never ambiguous
    r"(?<![\d.,/-])(?P<iso_year>(?:19|20)\d\d)(?P<iso_sep>[-/.])(?P<iso_month>\d{1,2})(?P=iso_sep)"
    r"(?P<iso_day>\d{1,2})(?![\d])"
    # 02.11.2026 (day first, always), 2/11/2026 and 2-11-2026 (day first unless only m/d is valid)
    r"|(?<![\d.,/-])(?P<num_first>\d{1,2})(?P<num_sep>[./-])(?P<num_second>\d{1,2})(?P=num_sep)"
    r"(?P<num_year>(?:19|20)\d\d)(?![\d])"
    # 2 November 2026, 2nd of Nov. 2026, 2. November 2026, 2 de noviembre de 2026, 2-Nov-2026
    rf"|(?<![\w.])(?P<dm_day>\d{{1,2}})(?:st|nd|rd|th|er|º)?\.?(?:[ \-]|\s?of\s|\sde\s)?"
    rf"(?P<dm_month>{_MONTH_NAME})(?![^\W\d_])\.?,?(?:[ \-]|\sde\s)(?P<dm_year>(?:19|20)\d\d)(?!\d)"
    # Nov 2, 2026, November 2nd 2026
    rf"|(?<![^\W\d_])(?P<md_month>{_MONTH_NAME})\.?\s(?P<md_day>\d{{1,2}})(?:st|nd|rd|th)?,?\s"
    r"(?P<md_year>(?:19|20)\d\d)(?!\d)",
    re.IGNORECASE,
)


def find_dates(text: str, *, today: date | None = None) -> tuple[date, ...]:
    """Every valid calendar date in the text, in order of first appearance, without repeats.

    Year-first dates (``2026-11-02``) and month names in English, German, French, Spanish and
    Dutch are unambiguous. ``02.11.2026`` is day.month.year. A date with ``/`` or ``-`` and the
    year last is read day first (``2/11/2026`` is 2 November), as most of our customers and all
    our European ones write it; only when that is impossible and month-first is valid
    (``11/25/2026``) is it read the US way. Two-digit years are not taken (``02.11.26`` could be
    anything), nor dates that do not exist (``31.02.2026``).

    Given ``today`` (the day the request was received), also a day and month name without a year
    (``28 Sep``, ``September 28th``: the nearest such day to ``today``) and days said relative to
    it (``yesterday``, ``last Friday``, ``3 days ago``, ``gestern``, ``letzten Freitag``).
    """
    return tuple(dict.fromkeys(found.day for found in _date_spans(text, today=today)))


@dataclass(frozen=True)
class _DateSpan:
    day: date
    start: int
    end: int
    inferred_year: bool = False


_WEEKDAYS: Final = {
    name: int(weekday) for weekday, names in _CALENDAR_WORDS["weekdays"].items() for name in names
}
"""Weekday names in five languages, to ``date.weekday()`` (Monday is 0)."""
_WEEKDAY_NAME = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_SMALL_NUMBERS: Final = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "a couple of": 2, "a few": 3,
}  # fmt: skip
_RELATIVE_DATE = re.compile(
    r"(?<![^\W\d_])(?:(?P<before_yesterday>the day before yesterday|vorgestern)"
    r"|(?P<yesterday>yesterday|gestern|ayer|gisteren)"
    r"|(?P<today>today|heute|aujourd'hui|hoy|vandaag)"
    rf"|(?:last|letzten|letzte[nm]?|vergangenen|past)\s(?P<last_weekday>{_WEEKDAY_NAME})"
    rf"|(?P<weekday_last>{_WEEKDAY_NAME})\s(?:dernier|pasado)"
    r"|(?P<days>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few)\s(?:days?\sago)"
    r"|vor\s(?P<tage>\d{1,2})\stagen)(?![^\W\d_])",
    re.IGNORECASE,
)
# A day and a month name without a year ("28 Sep", "28th of September", "Sep 28", "September
# 28th"). "May" only capitalised: "we may 2 ..." is not a date.
_MONTH_NAME_NO_MAY = "|".join(name for name in sorted(_MONTHS, key=len, reverse=True) if name != "may")
_YEARLESS_DATE = re.compile(
    rf"(?<![\w.])(?P<dm_day>\d{{1,2}})(?:st|nd|rd|th|er|º)?\.?(?:[ \-]|\s?of\s|\sde\s)?"
    rf"(?P<dm_month>{_MONTH_NAME_NO_MAY}|(?-i:May))(?![^\W\d_])\.?"
    rf"|(?<![^\W\d_])(?P<md_month>{_MONTH_NAME_NO_MAY}|(?-i:May))\.?\s(?P<md_day>\d{{1,2}})"
    r"(?:st|nd|rd|th)?(?![\d.,:]\d|\d)",
    re.IGNORECASE,
)


def _date_spans(text: str, *, today: date | None) -> list[_DateSpan]:
    """Dates with where they stand; yearless and relative ones only when ``today`` is given."""
    spans = [
        _DateSpan(parsed, match.start(), match.end())
        for match in _DATE.finditer(text)
        if (parsed := _date_of(match)) is not None
    ]
    if today is None:
        return spans
    taken = [(span.start, span.end) for span in spans]
    for match in _YEARLESS_DATE.finditer(text):
        if any(match.start() < end and start < match.end() for start, end in taken):
            continue
        month_name = (match.group("dm_month") or match.group("md_month")).lower()
        day = int(match.group("dm_day") or match.group("md_day"))
        nearest = _nearest_day(_MONTHS[month_name.rstrip(".")], day, today)
        if nearest is not None:
            spans.append(_DateSpan(nearest, match.start(), match.end(), inferred_year=True))
    for match in _RELATIVE_DATE.finditer(text):
        relative = _relative_day(match, today)
        if relative is not None:
            spans.append(_DateSpan(relative, match.start(), match.end()))
    return sorted(spans, key=lambda span: span.start)


def _nearest_day(month: int, day: int, today: date) -> date | None:
    """The date with this month and day nearest to ``today`` (last year, this year or next)."""
    options = [
        d
        for year in (today.year - 1, today.year, today.year + 1)
        if (d := _valid_date(str(year), str(month), str(day)))
    ]
    return min(options, key=lambda option: abs((option - today).days), default=None)


def _relative_day(match: re.Match[str], today: date) -> date | None:
    if match.group("before_yesterday"):
        return today - timedelta(days=2)
    if match.group("yesterday"):
        return today - timedelta(days=1)
    if match.group("today"):
        return today
    weekday_name = match.group("last_weekday") or match.group("weekday_last")
    if weekday_name:
        back = (today.weekday() - _WEEKDAYS[weekday_name.lower()]) % 7 or 7
        return today - timedelta(days=back)
    count = match.group("days") or match.group("tage")
    number = int(count) if count.isdigit() else _SMALL_NUMBERS[count.lower()]
    return today - timedelta(days=number)


def _date_of(match: re.Match[str]) -> date | None:
    if match.group("iso_year"):
        return _valid_date(match.group("iso_year"), match.group("iso_month"), match.group("iso_day"))
    if match.group("num_year"):
        first, second, year = match.group("num_first"), match.group("num_second"), match.group("num_year")
        day_first = _valid_date(year, second, first)
        if day_first is not None or match.group("num_sep") == ".":
            return day_first
        return _valid_date(year, first, second)
    if match.group("dm_year"):
        month = _MONTHS[match.group("dm_month").lower()]
        return _valid_date(match.group("dm_year"), str(month), match.group("dm_day"))
    month = _MONTHS[match.group("md_month").lower()]
    return _valid_date(match.group("md_year"), str(month), match.group("md_day"))


def _valid_date(year: str, month: str, day: str) -> date | None:
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


_PAYMENT_DATE_CUE = any_of(
    r"\b(?:payment|value|transfer|remittance) date\b",
    r"\bdate of (?:the )?payment\b",
    r"\bvaluta\b",
    r"\bzahlungsdatum\b",
    r"\bdate de (?:paiement|valeur)\b",
    r"\bfecha (?:de pago|valor)\b",
    r"\bbetaaldatum\b",
)
_NOT_A_PAYMENT_DATE = re.compile(
    r"\b(?:due|dated|issued|invoice date|fällig|vom|datiert|échéance|daté|vencimiento|vence|vervaldatum)"
    r"\b[^.!?;\n]{0,12}$",
    re.IGNORECASE,
)
_PAID_CUES = next(cue for role, cue in ROLE_CUES if role is Role.PAID)


def find_payment_date(text: str, *, today: date | None = None) -> date | None:
    """The day the customer says they paid: the first date in a clause that says they paid.

    "We paid 18,500.00 on 28 Sep", "On 28.09.2026 we transferred ...", "value date 2026-09-28".
    A date the words call due, issued or dated is not it, nor a day after ``today``; a date written
    without its year is the last such day up to ``today``.
    """
    for span in _date_spans(text, today=today):
        clause = _clause_around(text, span.start, span.end)
        if not (_PAID_CUES.search(clause) or _PAYMENT_DATE_CUE.search(clause)):
            continue
        if _NOT_A_PAYMENT_DATE.search(text[max(0, span.start - 40) : span.start]):
            continue
        day = span.day
        if today is not None and day > today and span.inferred_year:
            day = _valid_date(str(day.year - 1), str(day.month), str(day.day)) or day
        if today is not None and day > today + timedelta(days=1):
            continue  # not yet: a promise, not a payment
        return day
    return None


def _clause_around(text: str, start: int, end: int) -> str:
    window_start = max(0, start - CONTEXT)
    breaks = list(CLAUSE_BREAK.finditer(text, window_start, start))
    clause_start = breaks[-1].end() if breaks else window_start
    following = CLAUSE_BREAK.search(text, end, min(len(text), end + CONTEXT))
    return text[clause_start : following.start() if following else min(len(text), end + CONTEXT)]
