"""Business time: working hours added to an instant, working time between two instants.

Pure functions over a :class:`BusinessCalendar` (working days, opening hours, days off, an IANA
time zone), and the calendar as a rules file writes it (:class:`CalendarRules`, the ``[calendar]``
table of routing's rules file): routing keeps SLA clocks with it, the workspace shows the time
left in business hours with the same one. Every instant going in must be timezone-aware; every
instant coming out is UTC. Opening and closing times are local wall-clock times, so a working
day stays 09:00 to 17:00 in its own zone across a daylight-saving change; the arithmetic is done
in UTC, so the hour that a change adds or removes overnight never counts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

# How far ahead to look for working time before giving up: a calendar with no working day in
# ten years is a broken calendar, not a long wait.
_HORIZON_DAYS = 3660


@dataclass(frozen=True)
class ClosedDays:
    """The days off besides the weekly ones: public holidays, yearly and one-off closing days.

    ``public`` is any container of dates, such as a ``holidays`` package calendar (which works out
    each year's holidays when it is first asked about it); ``every_year`` holds (month, day) pairs.
    """

    public: Container[date] = frozenset()
    every_year: frozenset[tuple[int, int]] = frozenset()
    once: frozenset[date] = frozenset()

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, date):
            return False
        return day in self.once or (day.month, day.day) in self.every_year or day in self.public


@dataclass(frozen=True)
class BusinessCalendar:
    """When SLA time passes: ``opens`` to ``closes`` local time on working days that are not holidays.

    A day in ``worked_days`` is a working day even when it is a holiday or a weekly day off.
    """

    time_zone: ZoneInfo
    working_days: frozenset[int]  # date.weekday(): Monday is 0
    opens: time
    closes: time
    holidays: Container[date] = frozenset()
    worked_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not self.working_days or not self.working_days <= set(range(7)):
            raise ValueError("a calendar needs at least one working day, each a weekday from 0 to 6")
        if self.opens >= self.closes:
            raise ValueError(f"opening time {self.opens} must be before closing time {self.closes}")

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working hours of ``day`` as UTC instants, or None on a day off."""
        if day not in self.worked_days and (day.weekday() not in self.working_days or day in self.holidays):
            return None
        return (
            datetime.combine(day, self.opens, tzinfo=self.time_zone).astimezone(UTC),
            datetime.combine(day, self.closes, tzinfo=self.time_zone).astimezone(UTC),
        )

    def local_date(self, instant: datetime) -> date:
        return _aware(instant).astimezone(self.time_zone).date()


def add_working_time(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The instant at which ``duration`` of working time has passed since ``start``.

    Time before opening, after closing, on days off and on holidays does not count. A duration
    that ends exactly at closing time ends then (due by close of business), not at the next
    opening. Adding nothing returns ``start`` itself, even outside working hours.
    """
    if duration < timedelta(0):
        raise ValueError(f"cannot add negative working time {duration}")
    cursor = _aware(start).astimezone(UTC)
    if duration == timedelta(0):
        return cursor
    remaining = duration
    day = calendar.local_date(cursor)
    for _ in range(_HORIZON_DAYS):
        window = calendar.window(day)
        if window is not None:
            begin, end = max(window[0], cursor), window[1]
            if begin < end:
                if remaining <= end - begin:
                    return begin + remaining
                remaining -= end - begin
        day += timedelta(days=1)
    raise ValueError(f"no working time within {_HORIZON_DAYS} days of {start.isoformat()}")


def working_time_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time from ``start`` to ``end``; nothing if ``end`` is not after ``start``."""
    start, end = _aware(start).astimezone(UTC), _aware(end).astimezone(UTC)
    total = timedelta(0)
    if end <= start:
        return total
    day, last = calendar.local_date(start), calendar.local_date(end)
    while day <= last:
        window = calendar.window(day)
        if window is not None:
            overlap = min(end, window[1]) - max(start, window[0])
            if overlap > timedelta(0):
                total += overlap
        day += timedelta(days=1)
    return total


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"business time needs timezone-aware instants, got {instant.isoformat()}")
    return instant


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class _CalendarModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


MonthDay = Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
"""A day of every year, ``MM-DD``."""


class PublicHolidays(_CalendarModel):
    """Whose public holidays the calendar keeps: a country (ISO 3166) and, optionally, a subdivision.

    The dates come from the ``holidays`` package (pinned), so no year has to be typed in.
    """

    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    subdivision: str | None = None

    @model_validator(mode="after")
    def _known(self) -> PublicHolidays:
        self.calendar()
        return self

    def calendar(self) -> holidays.HolidayBase:
        try:
            return holidays.country_holidays(self.country, subdiv=self.subdivision)
        except NotImplementedError as error:
            raise ValueError(f"[calendar.public_holidays] {error}") from error


class CalendarRules(_CalendarModel):
    """The business calendar as written in the file."""

    time_zone: str
    working_days: tuple[str, ...] = Field(min_length=1)
    opens: time
    closes: time
    public_holidays: PublicHolidays | None = None
    closed_every_year: tuple[MonthDay, ...] = ()
    holidays: tuple[date, ...] = Field(default=(), description="One-off closing days")
    worked_days: tuple[date, ...] = Field(default=(), description="Days worked although days off")

    @model_validator(mode="after")
    def _usable(self) -> CalendarRules:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"[calendar] time_zone {self.time_zone!r} is not an IANA time zone") from error
        unknown = [day for day in self.working_days if day not in WEEKDAYS]
        if unknown:
            raise ValueError(f"[calendar] working_days: {', '.join(unknown)} (use monday … sunday)")
        if self.opens >= self.closes:
            raise ValueError(f"[calendar] opens ({self.opens}) must be before closes ({self.closes})")
        return self

    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            time_zone=ZoneInfo(self.time_zone),
            working_days=frozenset(WEEKDAYS.index(day) for day in self.working_days),
            opens=self.opens,
            closes=self.closes,
            holidays=ClosedDays(
                public=self.public_holidays.calendar() if self.public_holidays else frozenset(),
                every_year=frozenset(_month_day(day) for day in self.closed_every_year),
                once=frozenset(self.holidays),
            ),
            worked_days=frozenset(self.worked_days),
        )


def _month_day(text: str) -> tuple[int, int]:
    month, day = text.split("-")
    return int(month), int(day)


def load_calendar(path: Path) -> BusinessCalendar:
    """The business calendar of the ``[calendar]`` table of the rules file at ``path``.

    For a reader of the calendar that is not routing (the workspace): routing reads and checks the
    whole file (:func:`services.routing.rules.load_rules`).
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return CalendarRules.model_validate(raw["calendar"]).calendar()
    except (OSError, KeyError, tomllib.TOMLDecodeError, ValidationError) as error:
        raise ValueError(f"no usable [calendar] in {path}: {error}") from error
