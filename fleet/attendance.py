"""考勤 at the county: present hours, late arrivals and early leaves per staff member and day, from the sign-ins
and sign-outs the edges forward (attendance_event). Plain functions over a session.

A staff member is present from a sign-in to the next sign-out at that center (a sign-in still open counts up to
`until`, or the end of its day). Late: the day's first sign-in after the center opened plus the grace; early
leave: the day's last sign-out before the center closed minus the grace (a sign-out by the day's end, when
nobody pressed 退出登录, is not a leave). Opening hours are each center's own (fleet.calendar).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.auth.principal import CurrentUser
from fleet.calendar import OpeningHours
from fleet.models import AttendanceEvent
from protocol.messages import OUT_DAY_END, SIGNED_IN, SIGNED_OUT

GRACE_S = 5 * 60  # a sign-in this late after opening is not yet 迟到 (and a sign-out this early not 早退)


def _local_day(ts: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def _opening(hours: OpeningHours, day: date, tz: ZoneInfo) -> tuple[float, float] | None:
    """The first opening and the last closing of `day` as epoch seconds (None when the center keeps no hours)."""
    if not hours.periods:
        return None
    start = datetime.combine(day, hours.periods[0][0], tzinfo=tz)
    end = datetime.combine(day, hours.periods[-1][1], tzinfo=tz)
    return start.timestamp(), end.timestamp()


def attendance_days(session: Session, since_ts: float, until_ts: float, tz: ZoneInfo,
                    hours_of: Callable[[str], OpeningHours], user: CurrentUser | None = None) -> list[dict[str, Any]]:
    """One row per center, staff member and day in [since, until): present minutes, first in, last out,
    late and early-leave flags (and minutes), the windows used."""
    query = select(AttendanceEvent).where(AttendanceEvent.ts >= since_ts, AttendanceEvent.ts < until_ts)
    if user is not None:
        query = query.where(user.scope_clause(AttendanceEvent.center_code))
    events: dict[tuple[str, str], list[AttendanceEvent]] = defaultdict(list)
    for event in session.exec(query.order_by(col(AttendanceEvent.ts), col(AttendanceEvent.id))):
        events[(event.center_code, event.staff_no)].append(event)
    rows: dict[tuple[str, str, date], dict[str, Any]] = {}
    for (code, staff_no), staff_events in events.items():
        opened: AttendanceEvent | None = None
        for event in staff_events:
            day = _local_day(event.ts, tz)
            row = rows.setdefault((code, staff_no, day), {
                "center_code": code, "staff_no": staff_no, "staff_name": event.staff_name or "", "day": day.isoformat(),
                "present_s": 0.0, "first_in": None, "last_out": None, "last_out_reason": None, "windows": set(),
                "last_kind": None})
            row["windows"].add(event.window)
            row["last_kind"] = event.kind
            if event.kind == SIGNED_IN:
                row["first_in"] = event.ts if row["first_in"] is None else row["first_in"]
                opened = opened or event
            elif event.kind == SIGNED_OUT:
                row["last_out"], row["last_out_reason"] = event.ts, event.reason
                if opened is not None:
                    row["present_s"] += event.ts - opened.ts
                    opened = None
        if opened is not None:  # still signed in: present until `until` or the end of that day
            day = _local_day(opened.ts, tz)
            day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz).timestamp()
            rows[(code, staff_no, day)]["present_s"] += max(0.0, min(until_ts, day_end) - opened.ts)
    result = []
    for (code, _staff_no, day), row in sorted(rows.items()):
        opening = _opening(hours_of(code), day, tz)
        late_s = early_s = 0.0
        if opening is not None and row["first_in"] is not None and row["first_in"] > opening[0] + GRACE_S:
            late_s = row["first_in"] - opening[0]
        if (opening is not None and row["last_kind"] == SIGNED_OUT and row["last_out_reason"] != OUT_DAY_END
                and row["last_out"] < opening[1] - GRACE_S):
            early_s = opening[1] - row["last_out"]
        hidden = ("present_s", "windows", "last_out_reason", "last_kind")
        result.append({**{k: v for k, v in row.items() if k not in hidden},
                       "windows": sorted(row["windows"]), "present_min": round(row["present_s"] / 60),
                       "late": late_s > 0, "late_min": round(late_s / 60),
                       "left_early": early_s > 0, "early_min": round(early_s / 60)})
    return result
