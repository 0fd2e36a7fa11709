"""The county's report (绩效报表): per county, town, center, window or staff member, for any period. Plain
functions over a session; the pages, the exports and the monthly webhook all call `build_report`.

What each figure counts (shown on the report page, documented in fleet/README.md):

- issued (取号): tickets issued. A ticket is issued to a service's queue, not a window, so a window's or
  staff member's row has none (None).
- served (办结): tickets finished, in the group of the window and staff who finished them (as coverage counts).
- waiting p50/p90 (等候时长): issue to first call of each called ticket, in the group of the first call; the
  nearest-rank percentile (p90 of 10 waits is the 9th shortest).
- handling (平均办理时长): first call to finish of each served ticket, averaged.
- 满意率, rated: `fleet.satisfaction` (the one definition); rating coverage: `fleet.coverage` (rated / served).
- bad (差评): ratings 1-2 that count (not excluded after appeal); bad_cases: the follow-up cases of the
  period's 差评, closed_on_time: those closed by their due day.
- attendance (出勤时长): minutes staff were signed in (`fleet.attendance`); a window's row counts the sign-ins
  at that window.
- empty (空岗): minutes of opening hours (the center's own, on its open days) in which nobody was signed in at
  a window. Counted only for centers that forwarded at least one sign-in or sign-out in the period (an edge
  that does not forward 考勤 says nothing about who sat where); a center's windows are those of its devices
  and of its sign-ins. A staff member's row has none.

Ticket numbers restart every day, so a ticket is (center, number, local day). A period is whole days in the
county's time zone, cut at `now` (nothing after it is counted, and no future minute is 空岗).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.attendance import attendance_days
from fleet.auth.principal import CurrentUser
from fleet.calendar import OpeningHours, is_working_day
from fleet.cases.models import FollowUpCase
from fleet.cases.names import staff_names
from fleet.centers.divisions import county_division
from fleet.centers.names import center_names, division_names, town_names
from fleet.coverage import rating_coverage
from fleet.models import AttendanceEvent, Device, TicketEvent
from fleet.overview import day_bounds
from fleet.satisfaction import satisfaction_rates
from protocol.identity import county_code, town_code
from protocol.messages import SIGNED_IN, SIGNED_OUT, TICKET_CALLED, TICKET_FINISHED, TICKET_ISSUED, TICKET_RECALLED

REPORT_GROUPINGS = ("county", "town", "center", "window", "staff")
GROUP_LABELS = {"county": "县", "town": "乡镇", "center": "中心", "window": "窗口", "staff": "工作人员"}
# The figures of a row, in the order of the page's table and the exports, with their Chinese headings.
FIGURES = (
    ("issued", "取号数"), ("served", "办结数"), ("wait_p50_min", "等候时长中位数（分）"),
    ("wait_p90_min", "等候时长P90（分）"), ("handling_avg_min", "平均办理时长（分）"),
    ("satisfaction_rate", "满意率（%）"), ("rated", "评价数"), ("coverage", "评价覆盖率（%）"), ("bad", "差评数"),
    ("bad_cases", "差评工单"), ("closed_on_time", "按期办结"), ("attendance_hours", "出勤时长（小时）"),
    ("empty_min", "空岗（分钟）"),
)
HoursOf = Callable[[str], OpeningHours]


@dataclass(frozen=True)
class Period:
    """Whole days [first, last] in `tz`, cut at `now_ts` (epoch seconds)."""

    first: date
    last: date
    tz: ZoneInfo
    now_ts: float

    @property
    def start_ts(self) -> float:
        return day_bounds(self.first, self.tz)[0]

    @property
    def end_ts(self) -> float:
        """The end of the last day, or now when that is earlier."""
        return min(day_bounds(self.last, self.tz)[1], self.now_ts)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least `fraction` of the values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def group_of(by: str, center: str, window: int | None, staff_no: str | None) -> tuple[str, ...]:
    """The row a fact belongs to; the same keys as fleet.satisfaction.group_key."""
    if by == "county":
        return (county_code(center),)
    if by == "town":
        return (town_code(center),)
    if by == "center":
        return (center,)
    if by == "window":
        return (center, str(window))
    if by == "staff":
        return (center, staff_no or "")
    raise ValueError(f"a report is by one of {', '.join(REPORT_GROUPINGS)}, got {by!r}")


def _scoped(query: Any, column: Any, user: CurrentUser | None) -> Any:
    return query if user is None else query.where(user.scope_clause(column))


QUARTER_HOUR_S = 900  # every time zone's offset is a whole number of quarter hours, so a day starts on one


@lru_cache(maxsize=8192)
def _quarter_hour_day(quarter: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(quarter * QUARTER_HOUR_S, tz).date()


def _local_day(ts: float, tz: ZoneInfo) -> date:
    """The day of `ts` in `tz`, looked up once per quarter hour (a report asks it for every event)."""
    return _quarter_hour_day(int(ts // QUARTER_HOUR_S), tz)


def ticket_figures(session: Session, by: str, period: Period, user: CurrentUser | None) -> dict[tuple, dict]:
    """issued, served, waits and handling times per group."""
    # Columns, not rows as objects: a month of a county is hundreds of thousands of events.
    query = _scoped(select(TicketEvent.center_code, TicketEvent.ticket, TicketEvent.kind, TicketEvent.ts,
                           TicketEvent.window, TicketEvent.staff_no).where(
        TicketEvent.ts >= period.start_ts, TicketEvent.ts < period.end_ts,
        col(TicketEvent.kind).in_((TICKET_ISSUED, TICKET_CALLED, TICKET_RECALLED, TICKET_FINISHED))),
        TicketEvent.center_code, user).order_by(col(TicketEvent.ts), col(TicketEvent.id))
    issued: dict[tuple, float] = {}
    first_call: dict[tuple, float] = {}
    rows: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"issued": 0, "served": 0, "waits": [], "handling": []})
    for event in session.exec(query):
        ticket = (event.center_code, event.ticket, _local_day(event.ts, period.tz))
        if event.kind == TICKET_ISSUED:
            issued.setdefault(ticket, event.ts)
            if by in ("county", "town", "center"):
                rows[group_of(by, event.center_code, None, None)]["issued"] += 1
        elif event.kind in (TICKET_CALLED, TICKET_RECALLED):
            if ticket not in first_call:
                first_call[ticket] = event.ts
                if ticket in issued:
                    rows[group_of(by, event.center_code, event.window, event.staff_no)]["waits"].append(
                        event.ts - issued[ticket])
        elif event.kind == TICKET_FINISHED:
            row = rows[group_of(by, event.center_code, event.window, event.staff_no)]
            row["served"] += 1
            if ticket in first_call:
                row["handling"].append(event.ts - first_call[ticket])
    result = {}
    for key, row in rows.items():
        handling = row["handling"]
        result[key] = {"issued": row["issued"] if by in ("county", "town", "center") else None,
                       "served": row["served"],
                       "wait_p50_min": _minutes(percentile(row["waits"], 0.5)),
                       "wait_p90_min": _minutes(percentile(row["waits"], 0.9)),
                       "handling_avg_min": _minutes(sum(handling) / len(handling) if handling else None)}
    return result


def case_figures(session: Session, by: str, period: Period, user: CurrentUser | None) -> dict[tuple, dict]:
    """差评 follow-up cases of the period's ratings, and how many were closed on time, per group."""
    start = datetime.fromtimestamp(period.start_ts, period.tz)
    end = datetime.fromtimestamp(period.end_ts, period.tz)
    query = _scoped(select(FollowUpCase).where(FollowUpCase.rated_at >= start, FollowUpCase.rated_at < end),
                    FollowUpCase.center_code, user)
    rows: dict[tuple, dict[str, int]] = defaultdict(lambda: {"bad_cases": 0, "closed_on_time": 0})
    for case in session.exec(query):
        row = rows[group_of(by, case.center_code, case.window, case.staff_no)]
        row["bad_cases"] += 1
        row["closed_on_time"] += 1 if case.closed_on_time else 0
    return rows


@dataclass(frozen=True)
class Staffed:
    """A staff member signed in at a window of a center, from `start` to `end` (epoch seconds)."""

    center: str
    window: int
    staff_no: str
    start: float
    end: float


def staffed_intervals(session: Session, period: Period, user: CurrentUser | None) -> list[Staffed]:
    """Sign-in to sign-out at one window, as fleet.attendance counts present time (a sign-in still open
    counts up to the end of its day or now; a second sign-in while signed in changes nothing)."""
    query = _scoped(select(AttendanceEvent).where(AttendanceEvent.ts >= period.start_ts,
                                                  AttendanceEvent.ts < period.end_ts),
                    AttendanceEvent.center_code, user).order_by(col(AttendanceEvent.ts), col(AttendanceEvent.id))
    opened: dict[tuple[str, str], AttendanceEvent] = {}
    found = []
    for event in session.exec(query):
        who = (event.center_code, event.staff_no)
        if event.kind == SIGNED_IN:
            opened.setdefault(who, event)
        elif event.kind == SIGNED_OUT and who in opened:
            start = opened.pop(who)
            found.append(Staffed(start.center_code, start.window, start.staff_no, start.ts, event.ts))
    for start in opened.values():
        day_end = day_bounds(_local_day(start.ts, period.tz), period.tz)[1]
        found.append(Staffed(start.center_code, start.window, start.staff_no, start.ts,
                             max(start.ts, min(day_end, period.end_ts))))
    return found


def opening_periods(hours: OpeningHours, period: Period) -> list[tuple[float, float]]:
    """The center's opening periods within the report period, as epoch seconds (open days only)."""
    found = []
    day = period.first
    while day <= period.last:
        if hours.open_on_rest_days or is_working_day(day)[0]:
            for opens, closes in hours.periods:
                start = datetime.combine(day, opens, tzinfo=period.tz).timestamp()
                if closes == time.max:  # 24:00
                    end = day_bounds(day, period.tz)[1]
                else:
                    end = datetime.combine(day, closes, tzinfo=period.tz).timestamp()
                start, end = max(start, period.start_ts), min(end, period.end_ts)
                if end > start:
                    found.append((start, end))
        day += timedelta(days=1)
    return found


def uncovered_seconds(spans: list[tuple[float, float]], covered: list[tuple[float, float]]) -> float:
    """Seconds of `spans` that no interval of `covered` overlaps."""
    merged: list[list[float]] = []
    for start, end in sorted(covered):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    total = 0.0
    for start, end in spans:
        inside = sum(max(0.0, min(end, b) - max(start, a)) for a, b in merged)
        total += (end - start) - inside
    return total


def empty_window_seconds(session: Session, period: Period, hours_of: HoursOf, intervals: list[Staffed],
                         user: CurrentUser | None) -> dict[tuple[str, int], float]:
    """空岗 per (center, window): opening time nobody was signed in at the window (see the module docstring)."""
    reporting = {s.center for s in intervals}
    reporting |= set(session.exec(_scoped(select(AttendanceEvent.center_code).where(
        AttendanceEvent.ts >= period.start_ts, AttendanceEvent.ts < period.end_ts), AttendanceEvent.center_code,
        user).distinct()).all())
    windows: dict[str, set[int]] = defaultdict(set)
    for staffed in intervals:
        windows[staffed.center].add(staffed.window)
    if reporting:
        for code, window in session.exec(select(Device.center_code, Device.window).where(
                col(Device.center_code).in_(sorted(reporting)), col(Device.window).is_not(None))).all():
            windows[code].add(window)
    by_window: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for staffed in intervals:
        by_window[(staffed.center, staffed.window)].append((staffed.start, staffed.end))
    result = {}
    for code in sorted(reporting):
        spans = opening_periods(hours_of(code), period)
        for window in sorted(windows[code]):
            result[(code, window)] = uncovered_seconds(spans, by_window[(code, window)])
    return result


def attendance_figures(session: Session, by: str, period: Period, hours_of: HoursOf,
                       user: CurrentUser | None) -> dict[tuple, dict]:
    """Attendance hours and 空岗 minutes per group."""
    rows: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"attendance_min": 0.0, "empty_s": None})
    intervals = staffed_intervals(session, period, user)
    if by == "window":
        for staffed in intervals:
            rows[group_of(by, staffed.center, staffed.window, None)]["attendance_min"] += (
                staffed.end - staffed.start) / 60
    else:
        for day in attendance_days(session, period.start_ts, period.end_ts, period.tz, hours_of, user):
            rows[group_of(by, day["center_code"], None, day["staff_no"])]["attendance_min"] += day["present_min"]
    if by != "staff":
        for (code, window), seconds in empty_window_seconds(session, period, hours_of, intervals, user).items():
            row = rows[group_of(by, code, window, None)]
            row["empty_s"] = (row["empty_s"] or 0.0) + seconds
    return {key: {"attendance_hours": round(row["attendance_min"] / 60, 1),
                  "empty_min": None if row["empty_s"] is None else round(row["empty_s"] / 60)}
            for key, row in rows.items()}


def known_staff_names(session: Session, centers: set[str], until_ts: float) -> dict[tuple[str, str], str]:
    """(center, 工号) -> name: the center's staff directory (edge_health), else the name its edge last gave
    with a sign-in before `until_ts`."""
    names: dict[tuple[str, str], str] = {}
    if not centers:
        return names
    query = select(AttendanceEvent.center_code, AttendanceEvent.staff_no, AttendanceEvent.staff_name).where(
        col(AttendanceEvent.center_code).in_(sorted(centers)), AttendanceEvent.ts < until_ts,
        col(AttendanceEvent.staff_name).is_not(None)).order_by(col(AttendanceEvent.ts))
    for code, staff_no, name in session.exec(query).all():
        names[(code, staff_no)] = name
    for code, directory in staff_names(session, centers).items():
        for staff_no, name in directory.items():
            if name:
                names[(code, staff_no)] = name
    return names


def group_names(session: Session, by: str, keys: list[tuple[str, ...]]) -> dict[str, str]:
    """Names of the counties, towns or centers of the rows (fleet.centers.names: the center's profile, the
    division list); the codes without one are left out."""
    if by == "county":
        found = division_names(session, [county_division(key[0]) for key in keys])
        return {code[:6]: name for code, name in found.items()}
    if by == "town":
        return town_names(session, [key[0] for key in keys])
    return center_names(session, {key[0] for key in keys})


def row_label(by: str, key: tuple[str, ...], names: dict[str, str], staff: dict[tuple[str, str], str]) -> str:
    """What a row is called on the page and in the exports: the code, and its name when the county gave one."""
    place = f"{key[0]} {names[key[0]]}" if key[0] in names else key[0]
    if by in ("county", "town", "center"):
        return place
    if by == "window":
        return f"{place} · {key[1]}号窗口"
    name = staff.get((key[0], key[1]), "")
    return f"{place} · {key[1] or '未登录'}{' ' + name if name else ''}"


def build_report(session: Session, by: str, first: date, last: date, tz: ZoneInfo, now: datetime,
                 hours_of: HoursOf, user: CurrentUser | None = None) -> dict[str, Any]:
    """The report of days first..last (inclusive, in `tz`) by `by`, within `user`'s scope (None: everything):
    {"by", "first", "last", "rows": [{"key", "label", <FIGURES>...}]}, rows by key."""
    if by not in REPORT_GROUPINGS:
        raise ValueError(f"a report is by one of {', '.join(REPORT_GROUPINGS)}, got {by!r}")
    period = Period(first, last, tz, now.timestamp())
    start, end = period.start_ts, max(period.start_ts, period.end_ts)
    parts: dict[tuple, dict[str, Any]] = defaultdict(dict)
    for key, figures in ticket_figures(session, by, period, user).items():
        parts[key].update(figures)
    for row in satisfaction_rates(session, by, start, end, user):
        parts[tuple(row["key"])].update(satisfaction_rate=row["satisfaction_rate"], rated=row["rated"], bad=row["bad"])
    for row in rating_coverage(session, by, start, end, tz, user):
        parts[tuple(row["key"])]["coverage"] = row["coverage"]
    for key, figures in case_figures(session, by, period, user).items():
        parts[key].update(figures)
    for key, figures in attendance_figures(session, by, period, hours_of, user).items():
        parts[key].update(figures)
    staff = known_staff_names(session, {key[0] for key in parts}, period.end_ts) if by == "staff" else {}
    names = group_names(session, by, list(parts))
    defaults = {"issued": 0 if by in ("county", "town", "center") else None, "served": 0, "rated": 0, "bad": 0,
                "bad_cases": 0, "closed_on_time": 0, "attendance_hours": 0.0}
    rows = []
    for key in sorted(parts):
        figures = {name: parts[key].get(name, defaults.get(name)) for name, _ in FIGURES}
        if by == "staff":
            figures["empty_min"] = None
        rows.append({"key": list(key), "label": row_label(by, key, names, staff), **figures})
    return {"by": by, "first": first.isoformat(), "last": last.isoformat(), "rows": rows}
