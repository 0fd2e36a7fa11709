"""A center's profile: checked, saved (audited), and read as one plain dict.

    center_profile(session, "445202101001")  # what the center configuration pushed to the edge carries

Names follow the unified form (统一标识) of the county's centers: a town's is 某某镇便民服务中心 (or
…街道便民服务中心, …政务服务中心), a village's or community's 某某村便民服务站 (or …便民服务室). Refusals are in
Chinese and name the field: county and town staff read them on the page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session

from fleet import audit
from fleet.auth.principal import CurrentUser
from fleet.calendar import OpeningHours
from fleet.centers.divisions import division_level
from fleet.centers.models import CENTER_LEVELS, LEVEL_TOWN, LEVEL_VILLAGE, CenterHours, CenterProfile
from fleet.settings import Settings

# The county default the alerts use for a center without its own hours: one definition, in Settings.
DEFAULT_OPENING_HOURS: str = Settings.model_fields["opening_hours"].default

LEVEL_LABELS = {LEVEL_TOWN: "乡镇（街道）便民服务中心", LEVEL_VILLAGE: "村（社区）便民服务站"}
NAME_ENDINGS = {LEVEL_TOWN: ("便民服务中心", "政务服务中心"), LEVEL_VILLAGE: ("便民服务站", "便民服务室")}
FIELD_LABELS = {
    "name": "中心名称", "level": "层级", "address": "地址", "consult_phone": "咨询电话", "complaint_phone": "投诉电话",
    "contact_name": "联系人", "contact_phone": "联系人电话", "opening_hours": "开放时间",
    "open_on_rest_days": "休息日开放",
}
TEXT_FIELDS = ("name", "address", "consult_phone", "complaint_phone", "contact_name", "contact_phone")
MAX_CHARS = {"name": 64, "address": 200, "consult_phone": 32, "complaint_phone": 32, "contact_name": 32,
             "contact_phone": 32}
PHONE = re.compile(r"^[0-9][0-9\- ]{2,30}$")  # 0663-8888888, 12345, 138 0000 0000
PHONE_FIELDS = ("consult_phone", "complaint_phone", "contact_phone")


class ProfileRefused(ValueError):
    """A profile that cannot be saved; `errors` maps each bad field to why, in Chinese."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("；".join(f"{FIELD_LABELS.get(field, field)}：{why}" for field, why in errors.items()))
        self.errors = errors


def default_level(code: str) -> str:
    """The level a center has until its profile says otherwise: a code ending in 000 is a town's own code."""
    return LEVEL_TOWN if division_level(code) in ("town", "county") else LEVEL_VILLAGE


def check_profile(values: Mapping[str, Any]) -> dict[str, Any]:
    """The clean profile from submitted `values` (strings from a form or JSON); ProfileRefused names every bad field.

    `opening_hours` empty means the county default; otherwise it is normalised (08:30-12:00,14:00-17:30).
    """
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for field in TEXT_FIELDS:
        value = values.get(field)
        text = "" if value is None else str(value).strip()
        if len(text) > MAX_CHARS[field]:
            errors[field] = f"不能超过 {MAX_CHARS[field]} 个字"
        clean[field] = text
    level = str(values.get("level") or "").strip()
    if level not in CENTER_LEVELS:
        errors["level"] = "请选择" + "或".join(LEVEL_LABELS.values())
    clean["level"] = level
    name = clean["name"]
    if not name:
        errors["name"] = "必填"
    elif level in NAME_ENDINGS and not name.endswith(NAME_ENDINGS[level]) and "name" not in errors:
        example = "某某镇便民服务中心" if level == LEVEL_TOWN else "某某村便民服务站"
        errors["name"] = f"请使用统一标识，以“{'”或“'.join(NAME_ENDINGS[level])}”结尾，如 {example}"
    for field in PHONE_FIELDS:
        if clean[field] and field not in errors and not PHONE.match(clean[field]):
            errors[field] = "只能填写数字、空格和连字符，如 0663-8888888 或 12345"
    hours_text = str(values.get("opening_hours") or "").strip()
    rest_days = values.get("open_on_rest_days")
    clean["open_on_rest_days"] = rest_days in (True, "true", "on", "1", 1)
    clean["opening_hours"] = ""
    if hours_text:
        try:
            clean["opening_hours"] = OpeningHours.parse(hours_text, clean["open_on_rest_days"]).text()
        except ValueError:
            errors["opening_hours"] = "格式应为 08:30-12:00,14:00-17:30（各时段不重叠，结束晚于开始）"
    if errors:
        raise ProfileRefused(errors)
    return clean


def center_profile(session: Session, code: str, default_hours: str = DEFAULT_OPENING_HOURS) -> dict[str, Any]:
    """A center's profile as one dict (no scope check: the caller has done it).

    A center without a profile has `registered` False, an empty name and the level its code suggests; a
    center without its own hours has the county's `default_hours` (`own_hours` False).
    """
    row = session.get(CenterProfile, code)
    hours = session.get(CenterHours, code)
    profile: dict[str, Any] = {"code": code, "registered": row is not None}
    if row is None:
        profile.update({field: "" for field in TEXT_FIELDS}, level=default_level(code), updated_at=None,
                       updated_by=None)
    else:
        profile.update({field: getattr(row, field) for field in TEXT_FIELDS}, level=row.level,
                       updated_at=row.updated_at, updated_by=row.updated_by)
    profile["opening_hours"] = hours.hours if hours else default_hours
    profile["open_on_rest_days"] = hours.open_on_rest_days if hours else False
    profile["own_hours"] = hours is not None
    return profile


def save_profile(session: Session, user: CurrentUser | None, code: str, values: Mapping[str, Any], now: datetime,
                 default_hours: str = DEFAULT_OPENING_HOURS) -> dict[str, Any]:
    """Check and store a center's profile and opening hours, audited as `center.profile` with what changed.

    Not committed (the caller commits the change and its audit entry together). Scope is the caller's check.
    Raises ProfileRefused.
    """
    clean = check_profile(values)
    before = center_profile(session, code, default_hours)
    row = session.get(CenterProfile, code) or CenterProfile(center_code=code, name="", level=clean["level"])
    for field in (*TEXT_FIELDS, "level"):
        setattr(row, field, clean[field])
    row.updated_at, row.updated_by = now, user.username if user else None
    session.add(row)
    hours = session.get(CenterHours, code)
    if clean["opening_hours"]:
        hours = hours or CenterHours(center_code=code, hours="")
        hours.hours, hours.open_on_rest_days = clean["opening_hours"], clean["open_on_rest_days"]
        hours.updated_at, hours.updated_by = now, user.username if user else None
        session.add(hours)
    elif hours is not None:  # back to the county default
        session.delete(hours)
    session.flush()
    after = center_profile(session, code, default_hours)
    changed = {field: after[field] for field in (*TEXT_FIELDS, "level", "opening_hours", "open_on_rest_days")
               if after[field] != before[field]}
    if not before["registered"]:
        changed = {field: after[field] for field in (*TEXT_FIELDS, "level") if after[field]} | {
            key: value for key, value in changed.items() if key in ("opening_hours", "open_on_rest_days")}
    if before["own_hours"] != after["own_hours"] and "opening_hours" not in changed:
        changed["opening_hours"] = after["opening_hours"]
    audit.record(session, user, "center.profile", target=code, detail=changed, center_code=code, at=now)
    return after
