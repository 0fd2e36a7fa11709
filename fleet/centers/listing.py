"""The registry as a list: every center of a scope, described or only seen, with names, level and state."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.centers.models import CENTER_LEVELS, CenterProfile
from fleet.centers.names import name_or_code_clause, town_names
from fleet.centers.profile import TEXT_FIELDS, default_level
from fleet.models import Center


def list_registry(session: Session, now: datetime, tz: ZoneInfo, scope_prefix: str | None = None,
                  q: str | None = None, level: str | None = None) -> list[dict[str, Any]]:
    """Centers under `scope_prefix` (the user's scope) that have a profile or have reported, by code.

    `q` keeps those whose code, name or town's name contains it; `level` (town/village) one level. Each row:
    code, name, level, registered (has a profile), seen (its edge has reported), edge_online, edge_last_seen,
    online_today, town_code, town_name and the profile's other fields.
    """
    if level is not None and level not in CENTER_LEVELS:
        raise ValueError(f"level must be one of {', '.join(CENTER_LEVELS)}")
    profiles = select(CenterProfile)
    seen = select(Center.code, Center.edge_online, Center.edge_last_seen)
    if scope_prefix:
        profiles = profiles.where(col(CenterProfile.center_code).startswith(scope_prefix, autoescape=True))
        seen = seen.where(col(Center.code).startswith(scope_prefix, autoescape=True))
    if q:
        profiles = profiles.where(name_or_code_clause(q, CenterProfile.center_code))
        seen = seen.where(name_or_code_clause(q, Center.code))
    today = now.astimezone(tz).date()
    rows: dict[str, dict[str, Any]] = {}
    for profile in session.exec(profiles).all():
        rows[profile.center_code] = {
            "code": profile.center_code, "registered": True, "level": profile.level,
            **{field: getattr(profile, field) for field in TEXT_FIELDS},
            "seen": False, "edge_online": False, "edge_last_seen": None, "online_today": False}
    for code, online, last_seen in session.exec(seen).all():
        row = rows.setdefault(code, {"code": code, "registered": False, "level": default_level(code),
                                     **{field: "" for field in TEXT_FIELDS}})
        row.update(seen=True, edge_online=bool(online), edge_last_seen=last_seen,
                   online_today=bool(online) or (last_seen is not None and last_seen.astimezone(tz).date() == today))
    listed = [rows[code] for code in sorted(rows) if level is None or rows[code]["level"] == level]
    towns = town_names(session, {row["code"][:9] for row in listed})
    for row in listed:
        row["town_code"] = row["code"][:9]
        row["town_name"] = towns.get(row["town_code"])
        row["name"] = row["name"] or None
    return listed
