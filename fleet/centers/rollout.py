"""Rollout coverage: which towns have a center and which villages a station, and which had one online today.

A town (乡镇/街道) is covered by a center of level town anywhere in it (a town center often carries the code of
the village it stands in); a village or community (村/居) by a station of level village with its own code.
A center counts once it is in the registry: it has a profile (planned, being built) or its edge has reported.
It was *online today* when its edge agent is online now or was last heard from today (the county's calendar
day). Centers that match no division of the imported list are listed apart (`unmatched`): a wrong code or a
list that is out of date.

The coverage of a town or the county counts every town and village once (the town itself for its center):
covered_pct = (towns with a center + villages with a station) / (towns + villages); online_pct likewise with
what was online today. A row meets the target when covered_pct >= the county's target percentage.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.audit import record
from fleet.auth.principal import CurrentUser
from fleet.centers.divisions import divisions_in_scope
from fleet.centers.models import (
    DIVISION_COUNTY,
    DIVISION_TOWN,
    DIVISION_VILLAGE,
    LEVEL_TOWN,
    CenterProfile,
    Division,
    RolloutTarget,
)
from fleet.centers.profile import default_level
from fleet.models import Center

DEFAULT_TARGET_PCT = 100.0  # every town a center, every village a station (由县统一规划、建设)


def percent(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 1)


def rollout_target(session: Session) -> float:
    row = session.get(RolloutTarget, 1)
    return DEFAULT_TARGET_PCT if row is None else row.target_pct


def set_rollout_target(session: Session, user: CurrentUser | None, target_pct: float, now: datetime) -> float:
    """Store the county's target (0-100, audited as rollout.target); not committed."""
    if not 0 <= target_pct <= 100:
        raise ValueError("目标覆盖率须在 0 到 100 之间")
    row = session.get(RolloutTarget, 1) or RolloutTarget(id=1)
    row.target_pct, row.updated_at, row.updated_by = round(float(target_pct), 1), now, user.username if user else None
    session.add(row)
    record(session, user, "rollout.target", target="rollout", detail={"target_pct": row.target_pct}, at=now)
    return row.target_pct


def registered_centers(session: Session, scope_prefix: str | None, now: datetime,
                       tz: ZoneInfo) -> dict[str, dict[str, Any]]:
    """Every center of the registry under `scope_prefix`: code -> {level, name, seen, online_today}."""
    today = now.astimezone(tz).date()
    profiles = select(CenterProfile.center_code, CenterProfile.level, CenterProfile.name)
    seen = select(Center.code, Center.edge_online, Center.edge_last_seen)
    if scope_prefix:
        profiles = profiles.where(col(CenterProfile.center_code).startswith(scope_prefix, autoescape=True))
        seen = seen.where(col(Center.code).startswith(scope_prefix, autoescape=True))
    centers: dict[str, dict[str, Any]] = {}
    for code, level, name in session.exec(profiles).all():
        centers[code] = {"code": code, "level": level, "name": name, "seen": False, "online_today": False}
    for code, online, last_seen in session.exec(seen).all():
        center = centers.setdefault(code, {"code": code, "level": default_level(code), "name": None,
                                           "seen": True, "online_today": False})
        center["seen"] = True
        center["online_today"] = bool(online) or (last_seen is not None and last_seen.astimezone(tz).date() == today)
    return centers


def _figures(towns: int, towns_covered: int, towns_online: int, villages: int, villages_covered: int,
             villages_online: int, target_pct: float) -> dict[str, Any]:
    covered = percent(towns_covered + villages_covered, towns + villages)
    return {
        "towns_total": towns, "towns_with_center": towns_covered, "towns_online_today": towns_online,
        "villages_total": villages, "villages_with_station": villages_covered,
        "villages_online_today": villages_online,
        "town_coverage_pct": percent(towns_covered, towns), "village_coverage_pct": percent(villages_covered, villages),
        "covered_pct": covered, "online_pct": percent(towns_online + villages_online, towns + villages),
        "meets_target": covered is not None and covered >= target_pct,
    }


def rollout_coverage(session: Session, now: datetime, tz: ZoneInfo, scope_prefix: str | None = None,
                     target_pct: float | None = None) -> dict[str, Any]:
    """The rollout of the towns and villages under `scope_prefix` (the user's scope; None: every one).

    {"target_pct", "county": {name, code, figures...}, "towns": [{code, town_code, name, centers, has_center,
    center_online_today, villages: [{code, name, station, station_name, online_today}], figures...}],
    "unmatched": [{code, name, level, online_today}], "divisions": how many towns and villages are listed}
    """
    target = rollout_target(session) if target_pct is None else target_pct
    towns = divisions_in_scope(session, scope_prefix, (DIVISION_TOWN,))
    villages = divisions_in_scope(session, scope_prefix, (DIVISION_VILLAGE,))
    centers = registered_centers(session, scope_prefix, now, tz)
    town_codes = {town.code[:9] for town in towns}
    village_codes = {village.code for village in villages}
    town_centers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    stations: dict[str, dict[str, Any]] = {}
    unmatched = []
    for code in sorted(centers):
        center = centers[code]
        if center["level"] == LEVEL_TOWN and code[:9] in town_codes:
            town_centers[code[:9]].append(center)
        elif center["level"] != LEVEL_TOWN and code in village_codes:
            stations[code] = center
        else:
            unmatched.append(center)
    villages_of: dict[str, list[Division]] = defaultdict(list)
    for village in villages:
        villages_of[village.code[:9]].append(village)

    rows = []
    for town in towns:
        own = town_centers.get(town.code[:9], [])
        listed = []
        for village in villages_of.get(town.code[:9], []):
            station = stations.get(village.code)
            listed.append({"code": village.code, "name": village.name,
                           "station": station["code"] if station else None,
                           "station_name": station["name"] if station else None,
                           "online_today": bool(station and station["online_today"])})
        has_center = bool(own)
        center_online = any(center["online_today"] for center in own)
        rows.append({
            "code": town.code, "town_code": town.code[:9], "name": town.name,
            "centers": [{"code": c["code"], "name": c["name"], "online_today": c["online_today"]} for c in own],
            "has_center": has_center, "center_online_today": center_online, "villages": listed,
            **_figures(1, int(has_center), int(center_online), len(listed),
                       sum(1 for v in listed if v["station"]), sum(1 for v in listed if v["online_today"]), target),
        })
    counties = divisions_in_scope(session, scope_prefix[:6] if scope_prefix else None, (DIVISION_COUNTY,))
    county_name = counties[0].name if len(counties) == 1 else None
    total = _figures(len(rows), sum(r["towns_with_center"] for r in rows), sum(r["towns_online_today"] for r in rows),
                     sum(r["villages_total"] for r in rows), sum(r["villages_with_station"] for r in rows),
                     sum(r["villages_online_today"] for r in rows), target)
    return {
        "target_pct": target,
        "county": {"code": counties[0].code if len(counties) == 1 else None, "name": county_name, **total},
        "towns": rows,
        "unmatched": [{"code": c["code"], "name": c["name"], "level": c["level"], "online_today": c["online_today"]}
                      for c in unmatched],
        "divisions": len(towns) + len(villages),
    }
