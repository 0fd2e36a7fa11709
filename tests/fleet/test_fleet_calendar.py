"""Working days with the Chinese public-holiday calendar (chinese-calendar), and opening hours."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from fleet.calendar import (
    REST,
    UNKNOWN,
    WORKDAY,
    OpeningHours,
    add_working_days,
    covered_years,
    day_kind,
    is_working_day,
    parse_hours,
    working_days_between,
)

TZ = ZoneInfo("Asia/Shanghai")


def test_the_holiday_data_covers_2026_with_its_make_up_working_days() -> None:
    assert covered_years()[1] >= 2026
    assert day_kind(date(2026, 2, 17)) == REST  # Spring Festival
    assert day_kind(date(2026, 2, 14)) == WORKDAY  # a Saturday made a working day (调休)
    assert day_kind(date(2026, 10, 1)) == REST
    assert day_kind(date(2026, 1, 5)) == WORKDAY


def test_a_year_without_data_is_unknown_and_counted_monday_to_friday_as_an_estimate() -> None:
    year = covered_years()[1] + 1
    monday = next(date(year, 1, d) for d in range(1, 8) if date(year, 1, d).weekday() == 0)
    assert day_kind(monday) == UNKNOWN
    assert is_working_day(monday) == (True, True)
    assert is_working_day(date(year, 1, 1)) in ((True, True), (False, True))  # estimated either way
    deadline = add_working_days(date(year - 1, 12, 30), 5)
    assert deadline.estimated


def test_deadlines_skip_the_spring_festival_and_count_the_make_up_saturday() -> None:
    # Rated Friday 2026-02-13: Saturday 14th is a make-up working day, then the holiday (15th-23rd).
    deadline = add_working_days(date(2026, 2, 13), 2)
    assert deadline.day == date(2026, 2, 24) and not deadline.estimated
    assert working_days_between(date(2026, 2, 13), date(2026, 2, 24)) == 2
    assert add_working_days(date(2026, 1, 5), 5).day == date(2026, 1, 12)


def test_opening_hours() -> None:
    hours = OpeningHours.parse("08:30-12:00,14:00-17:30")
    monday_10 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
    assert hours.open_since(monday_10, TZ) == datetime(2026, 1, 5, 8, 30, tzinfo=TZ)
    assert not hours.is_open(datetime(2026, 1, 5, 5, 0, tzinfo=UTC), TZ)  # 13:00 lunch break
    assert not hours.is_open(datetime(2026, 2, 17, 2, 0, tzinfo=UTC), TZ)  # Spring Festival
    assert hours.is_open(datetime(2026, 2, 14, 2, 0, tzinfo=UTC), TZ)  # make-up Saturday
    assert not hours.is_open(datetime(2026, 1, 10, 2, 0, tzinfo=UTC), TZ)  # a plain Saturday
    assert OpeningHours.parse("09:00-17:00", open_on_rest_days=True).is_open(datetime(2026, 1, 10, 2, 0,
                                                                                          tzinfo=UTC), TZ)
    assert hours.text() == "08:30-12:00,14:00-17:30"
    for bad in ("8-12", "12:00-08:00", "08:00-12:00,11:00-13:00", "25:00-26:00"):
        with pytest.raises(ValueError):
            parse_hours(bad)
