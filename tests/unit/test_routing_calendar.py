"""Routing's business calendar: public holidays from the `holidays` package, overrides in the rules.

The shipped rules name Zurich (country CH, subdivision ZH) instead of typing dates in, so every
year has its holidays, moving feasts included; the rules add the office's own closing days and may
declare a holiday or a weekend day worked.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.routing.rules import DEFAULT_RULES_FILE, RoutingRulesError, load_rules, parse_rules
from shared.business_time import add_working_time, working_time_between

ZURICH = ZoneInfo("Europe/Zurich")
SHIPPED = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
CALENDAR = load_rules().business_calendar()


def at(day: str, clock: str = "09:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZURICH)


@pytest.mark.parametrize(
    "day",
    [
        "2028-04-14",  # Good Friday 2028: a moving feast, in no list typed by hand
        "2028-04-17",  # Easter Monday 2028
        "2029-05-10",  # Ascension 2029
        "2030-12-25",  # Christmas
        "2030-12-24",  # Christmas Eve: the office's own closing day, every year
        "2030-12-31",  # New Year's Eve: likewise
        "2031-01-02",  # Berchtoldstag: likewise
        "2030-08-01",  # Swiss National Day
    ],
)
def test_public_holidays_and_yearly_closing_days_come_without_typed_dates(day: str) -> None:
    assert CALENDAR.window(date.fromisoformat(day)) is None


def test_an_ordinary_weekday_of_a_later_year_is_worked() -> None:
    assert CALENDAR.window(date(2030, 12, 23)) is not None
    assert working_time_between(CALENDAR, at("2030-12-23", "09:00"), at("2030-12-23", "17:00")) == timedelta(
        hours=8
    )


def test_one_off_closing_days_and_worked_days_override_the_public_calendar(tmp_path: Path) -> None:
    edited = SHIPPED.replace("holidays = []", "holidays = [2030-06-14]").replace(
        "worked_days = []", "worked_days = [2030-05-01, 2030-06-15]"
    )
    assert edited != SHIPPED
    path = tmp_path / "rules.toml"
    path.write_text(edited)
    calendar = load_rules(path).business_calendar()
    assert calendar.window(date(2030, 6, 14)) is None  # a Friday the office closes
    assert calendar.window(date(2030, 5, 1)) is not None  # Labour Day, worked this year
    assert calendar.window(date(2030, 6, 15)) is not None  # a Saturday worked
    # Thursday 16:00 + 2 h: one hour on Thursday, the closed Friday skipped, one on the worked Saturday.
    assert add_working_time(calendar, at("2030-06-13", "16:00"), timedelta(hours=2)) == at(
        "2030-06-15", "10:00"
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('country = "CH"', 'country = "XX"'),
        ('subdivision = "ZH"', 'subdivision = "QQ"'),
        ('closed_every_year = ["12-24"', 'closed_every_year = ["24.12."'),
    ],
)
def test_an_unknown_country_subdivision_or_day_is_refused(old: str, new: str) -> None:
    assert old in SHIPPED
    with pytest.raises(RoutingRulesError, match="calendar"):
        parse_rules(SHIPPED.replace(old, new), source="edited.toml")
