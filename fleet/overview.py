"""Read side: what the API and the dashboard show. Plain functions over a session.

"Today" is a calendar day in the county's time zone (Asia/Shanghai), never the
server's or UTC's: at 07:30 Beijing time the UTC date is still yesterday's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from fleet.auth.principal import CurrentUser
from fleet.models import Center, Device, RatingEvent, TicketEvent
from fleet.presence import STATUS_ONLINE, STATUS_UNKNOWN, device_status
from protocol.messages import BAD_SCORES, ROLE_QUEUE_DISPLAY, ROLE_RATING_PAD, TICKET_ISSUED, UNRATED


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


def center_summaries(session: Session, now: datetime, tz: ZoneInfo,
                     user: CurrentUser | None = None) -> list[dict[str, Any]]:
    """Every center (of `user`'s scope) with its edge state, device counts and today's counts, by division code."""
    today = local_day(now, tz)
    devices = _device_counts(session)
    days = day_counts(session, today, tz)
    query = select(Center).order_by(col(Center.code))
    if user is not None:
        query = query.where(user.scope_clause(Center.code))
    centers = session.exec(query).all()
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


def list_devices(session: Session, center_code: str | None = None,
                 user: CurrentUser | None = None) -> list[dict[str, Any]]:
    """Devices (of `user`'s scope) ordered by center, window, role and id; each with its `status`."""
    query = select(Device, Center.edge_online).join(Center, col(Center.code) == col(Device.center_code))
    if center_code is not None:
        query = query.where(Device.center_code == center_code)
    if user is not None:
        query = query.where(user.scope_clause(Device.center_code))
    query = query.order_by(col(Device.center_code), col(Device.window), col(Device.role), col(Device.device_id))
    return [
        {**device.model_dump(), "status": device_status(device.online, edge_online)}
        for device, edge_online in session.exec(query).all()
    ]


def serving_problems(summary: dict[str, Any], devices: list[dict[str, Any]],
                     edge_reasons: list[str] = ()) -> list[dict[str, Any]]:
    """Why a center cannot serve residents right now (empty when it can).

    Each problem is a Chinese message with its fields, `{"text": "{window}号窗口评价器离线",
    "fields": {"window": 3}}`, so pages can translate it; `problem_text` formats it.
    From what the fleet knows: the edge agent's presence and the devices at each
    window (a window whose queue display or rating pad is not online cannot call
    or rate), plus the reasons the edge agent itself gives in its latest
    edge_health summary (printer paper, card reader, its center broker), in the
    edge's Chinese words.
    """
    if not summary["edge_online"]:
        return [{"text": "边缘网关离线", "fields": {}}]
    problems = []
    for device in devices:
        if device["role"] in (ROLE_QUEUE_DISPLAY, ROLE_RATING_PAD) and device["status"] != STATUS_ONLINE:
            what = "排队显示屏" if device["role"] == ROLE_QUEUE_DISPLAY else "评价器"
            if device["window"] is None:
                problems.append({"text": what + "离线", "fields": {}})
            else:
                problems.append({"text": "{window}号窗口" + what + "离线", "fields": {"window": device["window"]}})
    known = {problem_text(problem) for problem in problems}
    for reason in edge_reasons:
        if reason not in known:  # the edge also names offline devices; those are already counted above
            problems.append({"text": reason.replace("{", "{{").replace("}", "}}"), "fields": {}})
            known.add(reason)
    return problems


def edge_reasons_by_center(session: Session) -> dict[str, list[str]]:
    """The reasons of each center's latest edge_health summary (kept by the alerts module's ingest)."""
    from fleet.alerts.models import CenterHealthReport

    reasons = {}
    for report in session.exec(select(CenterHealthReport)).all():
        try:
            reasons[report.center_code] = [str(r) for r in json.loads(report.summary).get("reasons", [])]
        except (ValueError, AttributeError):
            continue
    return reasons


def problem_text(problem: dict[str, Any]) -> str:
    return problem["text"].format(**problem["fields"])


def open_alerts_by_center(session: Session) -> dict[str, int] | None:
    """Open alerts per center code, when the alerts module offers `fleet.alerts.open_alert_counts(session)`.

    None while it does not exist (the overview then shows no alert figures).
    """
    try:
        from fleet.alerts import open_alert_counts  # type: ignore[attr-defined]
    except ImportError:
        return None
    return open_alert_counts(session)


def county_overview(session: Session, now: datetime, tz: ZoneInfo, user: CurrentUser) -> dict[str, Any]:
    """The overview page: totals, centers that cannot serve now, and a roll-up county → town → center."""
    centers = center_summaries(session, now, tz, user)
    devices_by_center: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for device in list_devices(session, user=user):
        devices_by_center[device["center_code"]].append(device)
    alerts = open_alerts_by_center(session)
    reported = edge_reasons_by_center(session)
    towns: dict[str, dict[str, Any]] = {}
    for center in centers:
        center["problems"] = serving_problems(center, devices_by_center.get(center["code"], []),
                                              reported.get(center["code"], []))
        center["open_alerts"] = None if alerts is None else alerts.get(center["code"], 0)
        town = towns.setdefault(center["town_code"], {
            "town_code": center["town_code"], "county_code": center["county_code"], "centers": [],
            "devices_online": 0, "devices_total": 0, "not_serving": 0, "open_alerts": None if alerts is None else 0,
            "tickets_today": 0, "bad_ratings_today": 0,
        })
        town["centers"].append(center)
        for name in ("devices_online", "devices_total", "tickets_today", "bad_ratings_today"):
            town[name] += center[name]
        town["not_serving"] += bool(center["problems"])
        if alerts is not None:
            town["open_alerts"] += center["open_alerts"]
    for town in towns.values():
        town["online_pct"] = percent(town["devices_online"], town["devices_total"])
    online = sum(c["devices_online"] for c in centers)
    total = sum(c["devices_total"] for c in centers)
    return {
        "centers": centers,
        "towns": [towns[code] for code in sorted(towns)],
        "not_serving": [c for c in centers if c["problems"]],
        "devices_online": online,
        "devices_total": total,
        "online_pct": percent(online, total),
        "open_alerts": None if alerts is None else sum(c["open_alerts"] for c in centers),
        "today": local_day(now, tz),
    }


def percent(part: int, whole: int) -> float | None:
    """part/whole in percent, one decimal; None when there is nothing to count."""
    return None if whole == 0 else round(100.0 * part / whole, 1)
