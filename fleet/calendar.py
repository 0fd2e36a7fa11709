"""Working days and opening hours: the Chinese public-holiday calendar with make-up working days (调休).

The holiday data comes from the PyPI package `chinese-calendar` (pinned in
requirements.txt). The State Council publishes each year's holidays in
November or December of the year before, and the package only knows the years
it shipped with (1.11.0: 2004 through 2026). A day of any other year is
*unknown*, never silently a working day or a holiday:

- `day_kind(day)` says `workday`, `rest` or `unknown`;
- everything that must still decide something (alert gating, case deadlines)
  falls back to the plain Monday-to-Friday week for an unknown year and says
  so (`estimated=True`, a log line once per year), so a county that has not
  upgraded the package sees why a deadline may be off by the holidays.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

WORKDAY = "workday"
REST = "rest"  # weekend or public holiday
UNKNOWN = "unknown"  # the holiday data does not cover this year

_warned_years: set[int] = set()


class UnknownYear(LookupError):
    """The holiday calendar has no data for this year."""


def covered_years() -> tuple[int, int]:
    """First and last year the installed holiday data covers."""
    days = list(chinese_calendar.holidays) + list(chinese_calendar.workdays)
    return min(days).year, max(days).year


def day_kind(day: date) -> str:
    """WORKDAY (including a make-up working day on a weekend), REST (weekend or holiday) or UNKNOWN."""
    try:
        return WORKDAY if chinese_calendar.is_workday(day) else REST
    except NotImplementedError:
        return UNKNOWN


def is_working_day(day: date) -> tuple[bool, bool]:
    """(working, estimated): a day of an unknown year is judged Monday-to-Friday, with estimated=True."""
    kind = day_kind(day)
    if kind != UNKNOWN:
        return kind == WORKDAY, False
    if day.year not in _warned_years:
        _warned_years.add(day.year)
        first, last = covered_years()
        log.warning("no public-holiday data for %d (chinese-calendar covers %d-%d): counting Monday to Friday "
                    "as working days; upgrade the chinese-calendar package", day.year, first, last)
    return day.weekday() < 5, True


@dataclass(frozen=True)
class Deadline:
    day: date  # the last day on which the work is on time
    estimated: bool  # some day counted lies in a year without holiday data


def add_working_days(start: date, count: int) -> Deadline:
    """The `count`-th working day after `start` (start itself not counted)."""
    if count < 0:
        raise ValueError("count must be >= 0")
    day, left, estimated = start, count, False
    while left > 0:
        day += timedelta(days=1)
        working, guessed = is_working_day(day)
        estimated = estimated or guessed
        if working:
            left -= 1
    return Deadline(day, estimated)


def working_days_between(start: date, end: date) -> int:
    """Working days in (start, end]; negative when end is before start."""
    if end < start:
        return -working_days_between(end, start)
    return sum(1 for n in range(1, (end - start).days + 1) if is_working_day(start + timedelta(days=n))[0])


# Opening hours ---------------------------------------------------------------

_PERIOD = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_hours(text: str) -> tuple[tuple[time, time], ...]:
    """'08:30-12:00,14:00-17:30' -> ((08:30, 12:00), (14:00, 17:30)); ValueError saying what is wrong."""
    periods = []
    for part in text.split(","):
        match = _PERIOD.match(part)
        if not match:
            raise ValueError(f"opening hours must look like 08:30-12:00,14:00-17:30, got {part.strip()!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"not a time of day in {part.strip()!r}")
        start, end = time(h1, m1), time.max if h2 == 24 else time(h2, m2)
        if end <= start:
            raise ValueError(f"period {part.strip()!r} ends before it starts")
        periods.append((start, end))
    periods.sort()
    for (_, end), (start, _) in zip(periods, periods[1:], strict=False):
        if start < end:
            raise ValueError(f"opening periods overlap in {text!r}")
    return tuple(periods)


@dataclass(frozen=True)
class OpeningHours:
    """When a center serves residents: periods of the day, on working days (and weekends if it says so)."""

    periods: tuple[tuple[time, time], ...]
    open_on_rest_days: bool = False  # e.g. a center with weekend service (周末延时服务)

    @classmethod
    def parse(cls, text: str, open_on_rest_days: bool = False) -> OpeningHours:
        return cls(parse_hours(text), open_on_rest_days)

    def text(self) -> str:
        return ",".join(f"{a:%H:%M}-{'24:00' if b == time.max else f'{b:%H:%M}'}" for a, b in self.periods)

    def open_since(self, now: datetime, tz: ZoneInfo) -> datetime | None:
        """The start of the opening period `now` falls in (aware), or None when the center is closed."""
        local = now.astimezone(tz)
        day = local.date()
        if not self.open_on_rest_days and not is_working_day(day)[0]:
            return None
        for start, end in self.periods:
            if start <= local.time() < end:
                return datetime.combine(day, start, tzinfo=tz)
        return None

    def is_open(self, now: datetime, tz: ZoneInfo) -> bool:
        return self.open_since(now, tz) is not None
