"""Read side: what the API and the dashboard show. Plain functions over a session.

"Today" is a calendar day in the county's time zone (Asia/Shanghai), never the
server's or UTC's: at 07:30 Beijing time the UTC date is still yesterday's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import false, func
from sqlmodel import Session, col, select

from fleet.auth.principal import CurrentUser
from fleet.centers.names import attach_names, center_names, name_or_code_clause, town_names
from fleet.db import among
from fleet.models import OFFLINE_DEVICES, OFFLINE_EDGES, Center, Device, RatingEvent, TicketEvent
from fleet.presence import STATUS_AWAITING, STATUS_OFFLINE, STATUS_ONLINE, STATUS_UNKNOWN, device_status
from protocol.messages import BAD_SCORES, ROLE_QUEUE_DISPLAY, ROLE_RATING_PAD, TICKET_ISSUED, UNRATED

SERVING_ROLES = (ROLE_QUEUE_DISPLAY, ROLE_RATING_PAD)  # a window cannot call or rate without them
CENTERS_PER_PAGE = 100  # rows of the overview's center table
TOWNS_PER_PAGE = 200  # rows of the overview's roll-up by town (a county has tens, a country some 40,000)
NOT_SERVING_NAMED = 500  # centers of the "cannot serve" box named (the page shows fewer; names are one query)


def local_day(now: datetime, tz: ZoneInfo) -> date:
    """The calendar day of `now` (aware) in `tz`."""
    return now.astimezone(tz).date()


def day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """[start, end) of `day` in `tz`, as Unix epoch seconds."""
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def day_counts(session: Session, day: date, tz: ZoneInfo, center_code: str | None = None,
               group: Any = None, where: Sequence[Any] = ()) -> dict[str, dict[str, int]]:
    """Tickets issued, ratings given (score 1..5), unrated (0) and bad (差评) ratings on `day`.

    Per center by default; `group` is another Center column to sum by (Center.town_code), `where`
    conditions on Center that select the centers counted.
    """
    start, end = day_bounds(day, tz)
    group = Center.code if group is None else group
    where = [*where, *([Center.code == center_code] if center_code is not None else [])]
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: {"tickets_today": 0, "ratings_today": 0, "unrated_today": 0, "bad_ratings_today": 0}
    )
    tickets = (select(group, func.count()).select_from(TicketEvent)
               .join(Center, col(Center.code) == col(TicketEvent.center_code))
               .where(TicketEvent.kind == TICKET_ISSUED, TicketEvent.ts >= start, TicketEvent.ts < end, *where)
               .group_by(group))
    ratings = (select(group, RatingEvent.score, func.count()).select_from(RatingEvent)
               .join(Center, col(Center.code) == col(RatingEvent.center_code))
               .where(RatingEvent.ts >= start, RatingEvent.ts < end, *where)
               .group_by(group, RatingEvent.score))
    for key, n in session.exec(tickets).all():
        counts[key]["tickets_today"] = n
    for key, score, n in session.exec(ratings).all():
        if score == UNRATED:
            counts[key]["unrated_today"] += n
        else:
            counts[key]["ratings_today"] += n
            if score in BAD_SCORES:
                counts[key]["bad_ratings_today"] += n
    return dict(counts)


def device_counts(session: Session, group: Any = None, where: Sequence[Any] = ()) -> dict[str, dict[str, int]]:
    """Devices online, unknown (behind an offline edge), awaiting first contact and total, in one GROUP BY.

    Per center by default, or per another Center column (`group`); `where`: conditions on Center.
    devices_total counts the devices ever seen (online + offline + unknown): one awaiting its first
    contact is neither online nor offline.
    """
    group = Center.code if group is None else group
    never_seen = col(Device.last_seen).is_(None)
    query = (select(group, Device.online, Center.edge_online, never_seen, func.count()).select_from(Device)
             .join(Center, col(Center.code) == col(Device.center_code)).where(*where)
             .group_by(group, Device.online, Center.edge_online, never_seen))
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: {"devices_online": 0, "devices_unknown": 0, "devices_awaiting": 0, "devices_total": 0})
    for key, online, edge_online, unseen, n in session.exec(query).all():
        status = device_status(online, edge_online, ever_seen=not unseen)
        if status == STATUS_AWAITING:
            counts[key]["devices_awaiting"] += n
            continue
        counts[key]["devices_total"] += n
        if status == STATUS_ONLINE:
            counts[key]["devices_online"] += n
        elif status == STATUS_UNKNOWN:
            counts[key]["devices_unknown"] += n
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
        "devices_awaiting": devices.get("devices_awaiting", 0),
        "devices_total": devices.get("devices_total", 0),
        "day": today,
        "tickets_today": day.get("tickets_today", 0),
        "ratings_today": day.get("ratings_today", 0),
        "unrated_today": day.get("unrated_today", 0),
        "bad_ratings_today": day.get("bad_ratings_today", 0),
    }


def center_filter(user: CurrentUser | None = None, prefix: str | None = None, q: str | None = None) -> list[Any]:
    """Conditions on Center: in `user`'s scope, and (when given) under the division code `prefix` and matching
    the search text `q` (part of its code, its name or its town's name)."""
    where = []
    if user is not None:
        where.append(user.scope_clause(Center.code))
    if prefix:
        where.append(col(Center.code).startswith(prefix, autoescape=True))
    if q:
        where.append(name_or_code_clause(q, Center.code))
    return where


def count_centers(session: Session, user: CurrentUser | None = None, prefix: str | None = None,
                  q: str | None = None) -> int:
    return session.exec(select(func.count()).select_from(Center).where(*center_filter(user, prefix, q))).one()


def center_summaries(session: Session, now: datetime, tz: ZoneInfo, user: CurrentUser | None = None,
                     prefix: str | None = None, limit: int | None = None, offset: int = 0,
                     q: str | None = None) -> list[dict[str, Any]]:
    """Centers (of `user`'s scope, under `prefix`, matching `q`) by division code, `limit` of them from `offset`:
    each with its name and its town's, its edge state, device counts and today's counts."""
    today = local_day(now, tz)
    query = select(Center).where(*center_filter(user, prefix, q)).order_by(col(Center.code)).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    centers = session.exec(query).all()
    if not centers:
        return []
    # The listed centers are a run of codes in order: count that range (an index range scan, however long).
    listed = [col(Center.code).between(centers[0].code, centers[-1].code)]
    devices = device_counts(session, where=listed)
    days = day_counts(session, today, tz, where=listed)
    return attach_names(session, [_summary(c, devices.get(c.code, {}), days.get(c.code, {}), today) for c in centers])


def center_summary(session: Session, code: str, now: datetime, tz: ZoneInfo) -> dict[str, Any] | None:
    """One center's summary, or None when unknown."""
    center = session.get(Center, code)
    if center is None:
        return None
    today = local_day(now, tz)
    devices = device_counts(session, where=[Center.code == code]).get(code, {})
    day = day_counts(session, today, tz, code).get(code, {})
    return attach_names(session, [_summary(center, devices, day, today)])[0]


def list_devices(session: Session, center_code: str | None = None, user: CurrentUser | None = None,
                 prefix: str | None = None, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Devices (of `user`'s scope, under `prefix`) ordered by center, window, role and id; each with its `status`.

    `limit` of them from `offset` (all by default).
    """
    query = select(Device, Center.edge_online).join(Center, col(Center.code) == col(Device.center_code))
    query = _where_devices(query, center_code, user, prefix).order_by(*_device_order())
    if limit is not None:
        query = query.limit(limit).offset(offset)
    elif offset:
        query = query.offset(offset)
    return [
        {**device.model_dump(),
         "status": device_status(device.online, edge_online, ever_seen=device.last_seen is not None)}
        for device, edge_online in session.exec(query).all()
    ]


def count_devices(session: Session, center_code: str | None = None, user: CurrentUser | None = None,
                  prefix: str | None = None) -> int:
    return session.exec(_where_devices(select(func.count()).select_from(Device), center_code, user, prefix)).one()


def _device_order() -> tuple[Any, ...]:
    """Center, window (devices without one first, on SQLite and PostgreSQL alike), role, id."""
    return col(Device.center_code), col(Device.window).nulls_first(), col(Device.role), col(Device.device_id)


def _where_devices(query: Any, center_code: str | None, user: CurrentUser | None, prefix: str | None) -> Any:
    """`query` narrowed to one center, to `user`'s scope and to a division-code prefix (each when given)."""
    if center_code is not None:
        query = query.where(Device.center_code == center_code)
    if user is not None:
        query = query.where(user.scope_clause(Device.center_code))
    if prefix:
        query = query.where(col(Device.center_code).startswith(prefix, autoescape=True))
    return query


def serving_problems(summary: dict[str, Any], devices: list[dict[str, Any]],
                     edge_reasons: list[str] = ()) -> list[dict[str, Any]]:
    """Why a center cannot serve residents right now (empty when it can).

    Each problem is a Chinese message with its fields, `{"text": "{window}号窗口评价器离线",
    "fields": {"window": 3}}`, so pages can translate it; `problem_text` formats it.
    From what the fleet knows: the edge agent's presence and the devices at each
    window (a window whose queue display or rating pad is not online cannot call
    or rate), plus the reasons the edge agent itself gives in its latest
    edge_health summary (printer paper, card reader, its center broker), in the
    edge's Chinese words. A device awaiting its first contact is not a problem
    yet: it is being installed.
    """
    if not summary["edge_online"]:
        return [{"text": "边缘网关离线", "fields": {}}]
    problems = []
    for device in devices:
        if device["role"] in SERVING_ROLES and device["status"] not in (STATUS_ONLINE, STATUS_AWAITING):
            what = "排队显示屏" if device["role"] == ROLE_QUEUE_DISPLAY else "评价器"
            if device["window"] is None:
                problems.append({"text": what + "离线", "fields": {}})
            else:
                problems.append({"text": "{window}号窗口" + what + "离线", "fields": {"window": device["window"]}})
    known = {problem_text(problem) for problem in problems} if edge_reasons else set()
    for reason in edge_reasons:
        if reason not in known:  # the edge also names offline devices; those are already counted above
            problems.append({"text": reason.replace("{", "{{").replace("}", "}}"), "fields": {}})
            known.add(reason)
    return problems


def edge_reasons_by_center(session: Session, where: Sequence[Any] = ()) -> dict[str, list[str]]:
    """The reasons of each center's latest edge_health summary (kept by the alerts module's ingest).

    `where`: conditions on Center selecting whose reports are read.
    """
    from fleet.alerts.models import NOTABLE_REPORTS, CenterHealthReport

    query = (select(CenterHealthReport.center_code, CenterHealthReport.summary)  # one with reasons is notable
             .join(Center, col(Center.code) == col(CenterHealthReport.center_code)).where(NOTABLE_REPORTS, *where))
    reasons = {}
    for code, summary in session.exec(query).all():
        try:
            reasons[code] = [str(r) for r in json.loads(summary).get("reasons", [])]
        except (ValueError, AttributeError):
            continue
    return reasons


def problem_text(problem: dict[str, Any]) -> str:
    return problem["text"].format(**problem["fields"])


def not_serving_centers(session: Session, where: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Centers (selected by `where` on Center) that cannot serve residents now, by division code:
    each as {"code", "town_code", "problems"} (see `serving_problems`).

    Only the devices that are a problem are read: a queue display or rating pad seen before,
    not online now, at a center whose edge agent is online (behind an offline edge the
    center has one problem, its edge).
    """
    found: dict[str, dict[str, Any]] = {}
    offline_edges = select(Center.code, Center.town_code).where(col(Center.edge_online).is_(False), *where)
    for code, town in session.exec(offline_edges).all():
        found[code] = {"code": code, "town_code": town, "problems": serving_problems({"edge_online": False}, [])}
    visible = [col(Center.edge_online).is_(True), *where]
    silent = (select(Device.center_code, Center.town_code, Device.role, Device.window)
              .join(Center, col(Center.code) == col(Device.center_code))
              .where(*_silent_devices(), *visible)
              .order_by(*_device_order()))
    devices: dict[str, list[dict[str, Any]]] = defaultdict(list)
    towns: dict[str, str] = {}
    for code, town, role, window in session.exec(silent).all():
        devices[code].append({"role": role, "window": window, "status": STATUS_OFFLINE})
        towns[code] = town
    reasons = edge_reasons_by_center(session, visible)
    unplaced = [code for code in reasons.keys() - towns.keys() if reasons[code]]  # no reasons: no problem
    if unplaced:
        towns.update(session.exec(select(Center.code, Center.town_code).where(*among(Center.code, unplaced))).all())
    for code in devices.keys() | reasons.keys():
        problems = serving_problems({"edge_online": True}, devices.get(code, []), reasons.get(code, []))
        if problems:
            found[code] = {"code": code, "town_code": towns[code], "problems": problems}
    return [found[code] for code in sorted(found)]


def _silent_devices() -> list[Any]:
    """Conditions on Device: a queue display or rating pad seen before and offline now (through the partial
    index of offline devices, ix_device_offline)."""
    return [OFFLINE_DEVICES, col(Device.role).in_(SERVING_ROLES), col(Device.last_seen).is_not(None)]


def offline_devices(session: Session, user: CurrentUser | None = None) -> list[tuple[str, str | None, bool]]:
    """(center code, role, ever seen) of every offline device in `user`'s scope, read once through their partial
    index (a country has some 80,000 of its 3,000,000): the overview's totals and its "cannot serve" box use
    them both."""
    scope = [user.scope_clause(Device.center_code)] if user is not None else []
    return [tuple(row) for row in session.exec(  # type: ignore[misc]
        select(Device.center_code, Device.role, col(Device.last_seen).is_not(None)).where(OFFLINE_DEVICES, *scope))]


def not_serving_codes(session: Session, user: CurrentUser | None = None,
                      offline: list[tuple[str, str | None, bool]] | None = None) -> list[str]:
    """The codes of the centers in `user`'s scope that cannot serve now, in order: what `not_serving_centers`
    returns, without working out each one's problems (a country has some 90,000). `offline`: what
    `offline_devices` returns, when the caller has it already."""
    where = center_filter(user)
    edges_down = set(session.exec(select(Center.code).where(OFFLINE_EDGES, *where)).all())
    offline = offline_devices(session, user) if offline is None else offline
    silent = {code for code, role, seen in offline if seen and role in SERVING_ROLES and code not in edges_down}
    reasons = edge_reasons_by_center(session, [col(Center.edge_online).is_(True), *where])
    return sorted(edges_down | silent | {code for code, found in reasons.items() if found})


def open_alerts_by_center(session: Session) -> dict[str, int] | None:
    """Open alerts per center code, when the alerts module offers `fleet.alerts.open_alert_counts(session)`.

    None while it does not exist (the overview then shows no alert figures).
    """
    try:
        from fleet.alerts import open_alert_counts  # type: ignore[attr-defined]
    except ImportError:
        return None
    return open_alert_counts(session)


def open_alerts(session: Session, group: Any = None, where: Sequence[Any] = ()) -> dict[str, int] | None:
    """Active (open + acknowledged) alerts per center, or per another Center column (`group`), in one GROUP BY.

    None while the alerts module does not exist (the overview then shows no alert figures).
    """
    try:
        from fleet.alerts.models import ACTIVE_STATES, Alert
    except ImportError:
        return None
    group = Center.code if group is None else group
    query = (select(group, func.count()).select_from(Alert)
             .join(Center, col(Center.code) == col(Alert.center_code))
             .where(col(Alert.state).in_(ACTIVE_STATES), *where).group_by(group))
    return dict(session.exec(query).all())


def device_totals(session: Session, user: CurrentUser | None = None,
                  offline: list[tuple[str, str | None, bool]] | None = None) -> dict[str, int]:
    """`device_counts` summed over `user`'s scope, for a country's devices.

    Only the count of every device reads them all; the few that are not online and seen (awaiting their
    first contact, offline: `offline_devices`, passed in when the caller has them; behind an offline edge)
    are counted apart and taken off, instead of grouping 3,000,000 devices by their status and their center's.
    """
    scope = [user.scope_clause(Device.center_code)] if user is not None else []
    seen = col(Device.last_seen).is_not(None)

    def count(query: Any, *where: Any) -> int:
        return session.exec(query.where(*where, *scope)).one()

    every = count(select(func.count()).select_from(Device))
    awaiting = count(select(func.count()).select_from(Device), col(Device.last_seen).is_(None))
    offline = offline_devices(session, user) if offline is None else offline
    offline_seen = sum(1 for _, _, was_seen in offline if was_seen)
    unknown = count(select(func.count()).select_from(Center).join(Device, col(Device.center_code) == col(Center.code)),
                    OFFLINE_EDGES, col(Device.online).is_(True), seen)
    total = every - awaiting
    return {"devices_online": total - offline_seen - unknown, "devices_unknown": unknown,
            "devices_awaiting": awaiting, "devices_total": total}


def active_alert_count(session: Session, user: CurrentUser | None = None) -> int:
    """Active (open + acknowledged) alerts in `user`'s scope, counted as the alerts page lists them (by their
    center code, without reading every center: every alert is of a registered center)."""
    from fleet.alerts.models import ACTIVE_STATES, Alert

    scope = [user.scope_clause(Alert.center_code)] if user is not None else []
    return session.exec(select(func.count()).select_from(Alert).where(col(Alert.state).in_(ACTIVE_STATES), *scope)
                        ).one()


def county_overview(session: Session, now: datetime, tz: ZoneInfo, user: CurrentUser, prefix: str | None = None,
                    page: int = 1, per_page: int = CENTERS_PER_PAGE, q: str | None = None, towns_page: int = 1,
                    towns_per_page: int | None = None) -> dict[str, Any]:
    """The overview page: totals, centers that cannot serve now, a roll-up by town (all in `user`'s scope),
    and one page of the centers (those under the division code `prefix` and matching `q`, when given).
    Names stand beside codes: each center's (its profile's) and each town's (the imported division list's).

    Every figure is a GROUP BY in the database; only the listed page of centers, the listed page of towns
    (`towns_page`, `towns_per_page` of them: a country has some 40,000) and the first NOT_SERVING_NAMED
    centers that cannot serve (with their problems) are read row by row.
    """
    today = local_day(now, tz)
    scope = center_filter(user)
    towns_per_page = towns_per_page or TOWNS_PER_PAGE
    town_count = session.exec(select(func.count(func.distinct(Center.town_code))).where(*scope)).one()
    town_pages = max(1, -(-town_count // towns_per_page))
    towns_page = min(max(towns_page, 1), town_pages)
    # The listed page of towns alone: in town code order through its index, not a roll-up of every center.
    listed_towns = session.exec(select(Center.town_code, func.min(Center.county_code), func.count()).where(*scope)
                                .group_by(Center.town_code).order_by(Center.town_code)
                                .offset((towns_page - 1) * towns_per_page).limit(towns_per_page)).all()
    # The listed towns' centers: a run of codes (a town's are its code and 3 digits more).
    in_listed_towns = [*scope, col(Center.code).between(listed_towns[0][0] + "000", listed_towns[-1][0] + "999")] \
        if listed_towns else [false()]
    devices = device_counts(session, Center.town_code, in_listed_towns)
    days = day_counts(session, today, tz, group=Center.town_code, where=in_listed_towns)
    alerts = open_alerts(session, Center.town_code, in_listed_towns)
    offline = offline_devices(session, user)
    not_serving_all = not_serving_codes(session, user, offline)
    not_serving_by_town: dict[str, int] = defaultdict(int)
    for code in not_serving_all:
        not_serving_by_town[code[:9]] += 1  # its town code (Center.town_code)
    # The first of them named, with their problems: a run of codes, read as such.
    named = not_serving_all[:NOT_SERVING_NAMED]
    not_serving = not_serving_centers(session, [*scope, col(Center.code).between(named[0], named[-1])]) \
        if named else []
    towns = []
    for town_code, county, n in listed_towns:
        town_devices, town_day = devices.get(town_code, {}), days.get(town_code, {})
        town = {
            "town_code": town_code, "county_code": county, "center_count": n,
            "devices_online": town_devices.get("devices_online", 0),
            "devices_total": town_devices.get("devices_total", 0),
            "devices_awaiting": town_devices.get("devices_awaiting", 0),
            "not_serving": not_serving_by_town.get(town_code, 0),
            "open_alerts": None if alerts is None else alerts.get(town_code, 0),
            "tickets_today": town_day.get("tickets_today", 0),
            "bad_ratings_today": town_day.get("bad_ratings_today", 0),
        }
        town["online_pct"] = percent(town["devices_online"], town["devices_total"])
        towns.append(town)

    names_of_towns = town_names(session, (town["town_code"] for town in towns))
    for town in towns:
        town["town_name"] = names_of_towns.get(town["town_code"])
    names = center_names(session, (center["code"] for center in not_serving))
    for center in not_serving:
        center["name"] = names.get(center["code"])

    listed = count_centers(session, user, prefix, q)
    pages = max(1, -(-listed // per_page))
    page = min(max(page, 1), pages)
    centers = center_summaries(session, now, tz, user, prefix, limit=per_page, offset=(page - 1) * per_page, q=q)
    problems = {center["code"]: center["problems"] for center in not_serving}
    if len(not_serving_all) > len(named) and centers and centers[-1]["code"] > named[-1]:  # listed beyond them
        problems.update((center["code"], center["problems"]) for center in not_serving_centers(
            session, [*scope, col(Center.code).between(centers[0]["code"], centers[-1]["code"])]))
    center_alerts = None if alerts is None else open_alerts(session, where=[
        col(Center.code).in_([c["code"] for c in centers])])
    for center in centers:
        center["problems"] = problems.get(center["code"], [])
        center["open_alerts"] = None if center_alerts is None else center_alerts.get(center["code"], 0)

    totals = device_totals(session, user, offline)
    online, total = totals["devices_online"], totals["devices_total"]
    return {
        "centers": centers,
        "center_count": listed if not (prefix or q) else count_centers(session, user),
        "listed_count": listed,
        "prefix": prefix,
        "q": q,
        "page": page,
        "pages": pages,
        "towns": towns,
        "towns_page": towns_page,
        "town_pages": town_pages,
        "town_count": town_count,
        "not_serving": not_serving,
        "not_serving_count": len(not_serving_all),
        "devices_online": online,
        "devices_total": total,
        "devices_awaiting": totals["devices_awaiting"],
        "online_pct": percent(online, total),
        "open_alerts": None if alerts is None else active_alert_count(session, user),
        "today": today,
    }


def percent(part: int, whole: int) -> float | None:
    """part/whole in percent, one decimal; None when there is nothing to count."""
    return None if whole == 0 else round(100.0 * part / whole, 1)
