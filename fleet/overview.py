"""Read side: what the API and the dashboard show. Plain functions over a session.

"Today" is a calendar day in the county's time zone (Asia/Shanghai), never the
server's or UTC's: at 07:30 Beijing time the UTC date is still yesterday's.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from fleet.models import Center, Device, RatingEvent, TicketEvent
from fleet.presence import STATUS_ONLINE, STATUS_UNKNOWN, device_status
from protocol.messages import BAD_SCORES, TICKET_ISSUED, UNRATED


def local_day(now: datetime, tz: ZoneInfo) -> date:
    """The calendar day of `now` (aware) in `tz`."""
    return now.astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """[start, end) of `day` in `tz`, as Unix epoch seconds."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def day_counts(session: Session, day: date, tz: ZoneInfo, center_code: str | None = None) -> dict[str, dict[str, int]]:
    """Per center: tickets issued, ratings given (score 1..5), unrated (0) and bad (差评) ratings on `day`."""
    start, end = day_bounds(day, tz)
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: {"tickets_today": 0, "ratings_today": 0, "unrated_today": 0, "bad_ratings_today": 0}
    )

    tickets = select(TicketEvent.center_code, func.count()).where(
        TicketEvent.kind == TICKET_ISSUED, TicketEvent.ts >= start, TicketEvent.ts < end
    )
    ratings = select(RatingEvent.center_code, RatingEvent.score, func.count()).where(
        RatingEvent.ts >= start, RatingEvent.ts < end
    )
    if center_code is not None:
        tickets = tickets.where(TicketEvent.center_code == center_code)
        ratings = ratings.where(RatingEvent.center_code == center_code)

    for code, n in session.exec(tickets.group_by(TicketEvent.center_code)).all():
        counts[code]["tickets_today"] = n
    for code, score, n in session.exec(ratings.group_by(RatingEvent.center_code, RatingEvent.score)).all():
        if score == UNRATED:
            counts[code]["unrated_today"] += n
        else:
            counts[code]["ratings_today"] += n
            if score in BAD_SCORES:
                counts[code]["bad_ratings_today"] += n
    return dict(counts)


def _device_counts(session: Session, center_code: str | None = None) -> dict[str, dict[str, int]]:
    query = (
        select(Device.center_code, Device.online, Center.edge_online, func.count())
        .join(Center, col(Center.code) == col(Device.center_code))
        .group_by(Device.center_code, Device.online, Center.edge_online)
    )
    if center_code is not None:
        query = query.where(Device.center_code == center_code)
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: {"devices_online": 0, "devices_unknown": 0, "devices_total": 0})
    for code, online, edge_online, n in session.exec(query).all():
        counts[code]["devices_total"] += n
        status = device_status(online, edge_online)
        if status == STATUS_ONLINE:
            counts[code]["devices_online"] += n
        elif status == STATUS_UNKNOWN:
            counts[code]["devices_unknown"] += n
    return dict(counts)


def _summary(center: Center, devices: dict[str, int], day: dict[str, int], today: date) -> dict[str, Any]:
    return {
        "code": center.code,
        "county_code": center.county_code,
        "town_code": center.town_code,
        "edge_online": center.edge_online,
        "edge_session": center.edge_session,
        "edge_offline_reason": center.edge_offline_reason,
        "edge_fw": center.edge_fw,
        "edge_last_seen": center.edge_last_seen,
        "first_seen": center.first_seen,
        "devices_online": devices.get("devices_online", 0),
        "devices_unknown": devices.get("devices_unknown", 0),
        "devices_total": devices.get("devices_total", 0),
        "day": today,
        "tickets_today": day.get("tickets_today", 0),
        "ratings_today": day.get("ratings_today", 0),
        "unrated_today": day.get("unrated_today", 0),
        "bad_ratings_today": day.get("bad_ratings_today", 0),
    }


def center_summaries(session: Session, now: datetime, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Every center with its edge state, device counts and today's counts, by division code."""
    today = local_day(now, tz)
    devices = _device_counts(session)
    days = day_counts(session, today, tz)
    centers = session.exec(select(Center).order_by(col(Center.code))).all()
    return [_summary(c, devices.get(c.code, {}), days.get(c.code, {}), today) for c in centers]


def center_summary(session: Session, code: str, now: datetime, tz: ZoneInfo) -> dict[str, Any] | None:
    """One center's summary, or None when unknown."""
    center = session.get(Center, code)
    if center is None:
        return None
    today = local_day(now, tz)
    devices = _device_counts(session, code).get(code, {})
    day = day_counts(session, today, tz, code).get(code, {})
    return _summary(center, devices, day, today)


def list_devices(session: Session, center_code: str | None = None) -> list[dict[str, Any]]:
    """Devices ordered by center, window, role and id; each with its `status` (see fleet.presence)."""
    query = select(Device, Center.edge_online).join(Center, col(Center.code) == col(Device.center_code))
    if center_code is not None:
        query = query.where(Device.center_code == center_code)
    query = query.order_by(col(Device.center_code), col(Device.window), col(Device.role), col(Device.device_id))
    return [
        {**device.model_dump(), "status": device_status(device.online, edge_online)}
        for device, edge_online in session.exec(query).all()
    ]
