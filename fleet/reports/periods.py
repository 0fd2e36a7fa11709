"""The periods a report covers: any from/to dates (days in the county's time zone, Asia/Shanghai) and the
shortcuts the county asks for most (本月, 上月, 本季度, 本年). Plain functions of `today`, never the wall clock."""

from __future__ import annotations

from datetime import date, timedelta

THIS_MONTH = "this_month"
LAST_MONTH = "last_month"
THIS_QUARTER = "this_quarter"
THIS_YEAR = "this_year"
SHORTCUTS = (THIS_MONTH, LAST_MONTH, THIS_QUARTER, THIS_YEAR)
SHORTCUT_LABELS = {THIS_MONTH: "本月", LAST_MONTH: "上月", THIS_QUARTER: "本季度", THIS_YEAR: "本年"}
MAX_DAYS = 366 + 31  # a year and a month at most: a report reads every event of its period


def month_bounds(day: date) -> tuple[date, date]:
    """First and last day of `day`'s month."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def previous_month(today: date) -> tuple[date, date]:
    """First and last day of the month before `today`'s."""
    return month_bounds(today.replace(day=1) - timedelta(days=1))


def shortcut_dates(shortcut: str, today: date) -> tuple[date, date]:
    """(first, last) day of a shortcut; the current month, quarter and year end today (nothing later exists)."""
    if shortcut == THIS_MONTH:
        return today.replace(day=1), today
    if shortcut == LAST_MONTH:
        return previous_month(today)
    if shortcut == THIS_QUARTER:
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today
    if shortcut == THIS_YEAR:
        return date(today.year, 1, 1), today
    raise ValueError(f"a period shortcut is one of {', '.join(SHORTCUTS)}, got {shortcut!r}")


def check_period(first: date, last: date) -> None:
    """ValueError (in words) when the period is backwards or too long to report."""
    if last < first:
        raise ValueError("the period ends before it starts")
    if (last - first).days + 1 > MAX_DAYS:
        raise ValueError(f"a report covers at most {MAX_DAYS} days")
    if first.year < 2000 or last.year > 2100:
        raise ValueError("dates must lie between 2000 and 2100")
