"""Business time: working hours added to an instant, working time between two instants.

Pure functions over a :class:`BusinessCalendar` (working days, opening hours, days off, an IANA
time zone). Every instant going in must be timezone-aware; every instant coming out is UTC.
Opening and closing times are local wall-clock times, so a working day stays 09:00 to 17:00 in
its own zone across a daylight-saving change; the arithmetic is done in UTC, so the hour that
a change adds or removes overnight never counts.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

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
