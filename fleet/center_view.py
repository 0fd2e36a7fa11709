"""What the center page shows besides its devices: each window's display, today's queue and satisfaction.

Each window's display is mirrored from what it was told: the edge agent reports, in its edge_health
summary, the `window_display` it last published for every window (windows.<n>.display), and the fleet
draws it as the display's firmware does, with the `idle_text` of the display's configuration in force.
That is the truth of the screen (a paused window shows 暂停服务, a configured greeting shows), where the
ticket events only say who was called. Only for an edge that does not report it yet is the display
*derived* from the ticket events: a window's latest `called`/`recalled` ticket that has not been
finished, skipped or transferred since is the one on its display, as 请A001号到3号窗口; such rows are
marked as inferred.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.alerts.models import CenterHealthReport
from fleet.alerts.rules import DISK_NEARLY_FULL_PERCENT
from fleet.coverage import rating_coverage
from fleet.devconfig.models import DeviceConfigState, DeviceConfigVersion
from fleet.models import Device, TicketEvent
from fleet.overview import day_bounds
from fleet.satisfaction import center_satisfaction
from protocol.messages import (
    DISPLAY_PAUSED,
    DISPLAY_SERVING,
    ROLE_QUEUE_DISPLAY,
    TICKET_CALLED,
    TICKET_FINISHED,
    TICKET_ISSUED,
    TICKET_RECALLED,
    TICKET_SKIPPED,
    TICKET_TRANSFERRED,
)

CALLS = (TICKET_CALLED, TICKET_RECALLED)
ENDS = (TICKET_FINISHED, TICKET_SKIPPED, TICKET_TRANSFERRED)

SERVING = "serving"
IDLE = "idle"
PAUSED = "paused"
TOLD = "told"  # what the edge last told the display (edge_health windows.<n>.display)
DERIVED = "derived"  # inferred from the ticket events: the edge does not report what it told

# What the queue display's firmware shows when it is told nothing else (firmware/queue_display/app.py).
DISPLAY_IDLE_TEXT = "欢迎光临"
DISPLAY_PAUSED_TEXT = "暂停服务"


def _today_events(session: Session, code: str, day: date, tz: ZoneInfo) -> list[TicketEvent]:
    start, end = day_bounds(day, tz)
    query = select(TicketEvent).where(TicketEvent.center_code == code, TicketEvent.ts >= start,
                                      TicketEvent.ts < end).order_by(col(TicketEvent.ts), col(TicketEvent.id))
    return list(session.exec(query).all())


def call_text(ticket: str, window: int) -> str:
    """The LED line of a call, as the edge agent writes it (see docs/protocol.md, window_display)."""
    return f"请{ticket}号到{window}号窗口"


def display_lines(window: int, display: dict[str, Any], idle_text: str | None = None) -> list[str]:
    """The lines a queue display draws for a told window_display (state, ticket, text) and the idle_text of its
    configuration in force: firmware/queue_display/app.py lines() without the offline mark (a test holds the two
    to the same answers)."""
    ticket, text = str(display.get("ticket") or ""), str(display.get("text") or "")
    if display.get("state") == DISPLAY_SERVING and ticket:
        return [ticket, text or call_text(ticket, window)]
    if display.get("state") == DISPLAY_PAUSED:
        return [f"{window}号窗口", text or DISPLAY_PAUSED_TEXT]
    return [f"{window}号窗口", idle_text or text or DISPLAY_IDLE_TEXT]


def told_displays(health: dict[str, Any] | None, idle_texts: dict[int, str | None],
                  as_of: datetime | None) -> dict[int, dict[str, Any]]:
    """Per window, what its display was told, from an edge_health summary (windows.<n>.display) as of `as_of`."""
    told: dict[int, dict[str, Any]] = {}
    windows = health.get("windows") if isinstance(health, dict) else None
    for number, info in (windows if isinstance(windows, dict) else {}).items():
        display = info.get("display") if isinstance(info, dict) else None
        if not str(number).isdigit() or not isinstance(display, dict):
            continue
        window = int(number)
        state = display.get("state") if display.get("state") in (IDLE, SERVING, PAUSED) else IDLE
        lines = display_lines(window, display, idle_texts.get(window))
        told[window] = {"window": window, "state": state, "ticket": display.get("ticket") or None,
                        "text": " ".join(lines), "lines": lines, "since": as_of, "source": TOLD}
    return told


def window_displays(events: list[TicketEvent], windows: set[int],
                    told: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per window, what its queue display shows now: as it was told (`told_displays`), else derived from the
    ticket events (oldest first)."""
    shown: dict[int, dict[str, Any]] = {w: {"window": w, "state": IDLE, "ticket": None, "text": "", "since": None}
                                        for w in windows}
    for event in events:
        if event.window is None:
            continue
        slot = shown.setdefault(event.window, {"window": event.window, "state": IDLE, "ticket": None, "text": "",
                                               "since": None})
        if event.kind in CALLS:
            slot.update(state=SERVING, ticket=event.ticket, text=call_text(event.ticket, event.window),
                        since=datetime.fromtimestamp(event.ts, UTC))
        elif event.kind in ENDS and slot["ticket"] == event.ticket:
            slot.update(state=IDLE, text="", since=datetime.fromtimestamp(event.ts, UTC))
    for slot in shown.values():
        slot.update(source=DERIVED, lines=[slot["text"]] if slot["text"] else [])
    shown.update(told or {})
    return [shown[w] for w in sorted(shown)]


def display_idle_texts(session: Session, code: str) -> dict[int, str | None]:
    """Per window, the idle_text of its queue display's configuration in force (None: the firmware's own)."""
    displays = session.exec(select(Device.device_id, Device.window).where(
        Device.center_code == code, Device.role == ROLE_QUEUE_DISPLAY)).all()
    windows = {device_id: window for device_id, window in displays if window is not None}
    states = session.exec(select(DeviceConfigState).where(col(DeviceConfigState.device_id).in_(list(windows)))).all()
    texts: dict[int, str | None] = {}
    for state in states:
        if not state.applied_version:
            continue
        version = session.exec(select(DeviceConfigVersion.config).where(
            DeviceConfigVersion.device_id == state.device_id,
            DeviceConfigVersion.version == state.applied_version)).first()
        config = json.loads(version) if version else {}
        texts[windows[state.device_id]] = config.get("idle_text") or None
    return texts


def staff_directory(health: dict[str, Any] | None) -> dict[str, str]:
    """Staff number -> name, from an edge_health summary's `staff` (the center's staff directory)."""
    staff = health.get("staff") if isinstance(health, dict) else None
    if not isinstance(staff, dict):
        return {}
    return {str(number): name for number, name in staff.items() if isinstance(name, str) and name}


def latest_health(session: Session, code: str) -> tuple[dict[str, Any] | None, datetime | None]:
    """The center's latest edge_health summary and when it arrived (None, None before the first)."""
    report = session.get(CenterHealthReport, code)
    if report is None:
        return None, None
    try:
        return json.loads(report.summary), report.received_at
    except ValueError:
        return None, report.received_at


def queue_figures(events: list[TicketEvent]) -> dict[str, Any]:
    """Today's tickets issued, called (first call of each), finished, and the average wait issued → first call."""
    issued: dict[str, float] = {}
    first_call: dict[str, float] = {}
    finished = 0
    for event in events:
        if event.kind == TICKET_ISSUED:
            issued.setdefault(event.ticket, event.ts)
        elif event.kind == TICKET_CALLED:
            first_call.setdefault(event.ticket, event.ts)
        elif event.kind == TICKET_FINISHED:
            finished += 1
    waits = [first_call[t] - issued[t] for t in first_call if t in issued and first_call[t] >= issued[t]]
    return {
        "issued": len(issued),
        "called": len(first_call),
        "finished": finished,
        "waiting": len([t for t in issued if t not in first_call]),
        "average_wait_s": round(sum(waits) / len(waits)) if waits else None,
    }


def satisfaction(session: Session, code: str, day: date, tz: ZoneInfo) -> dict[str, Any]:
    """Today's ratings: how many, 满意率 as fleet.satisfaction defines it for every page and the API, 差评."""
    return center_satisfaction(session, code, *day_bounds(day, tz))


CLOCK_LABELS = {"synced": "已同步", "unsynced": "未同步", "unknown": "未知"}


def host_figures(health: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Pi under the edge, from an edge_health summary's `host`, as the center page shows it (None: not told).

    `disk_warning` and `clock_warning` mark what the alerts judge (fleet.alerts.rules.host_conditions)."""
    host = health.get("host") if isinstance(health, dict) else None
    if not isinstance(host, dict):
        return None
    total, free = host.get("disk_total_bytes"), host.get("disk_free_bytes")
    known = isinstance(total, int | float) and isinstance(free, int | float) and total > 0
    used = round(100 * (total - free) / total) if known else None
    temperature = host.get("cpu_temp_c")
    database = host.get("db_bytes")
    clock = host.get("clock") if host.get("clock") in CLOCK_LABELS else "unknown"
    return {
        "version": str(host.get("version") or "—"),
        "disk_free_gb": round(free / 1024 ** 3, 1) if known else None,
        "disk_total_gb": round(total / 1024 ** 3, 1) if known else None,
        "disk_used_percent": used,
        "disk_warning": used is not None and used >= DISK_NEARLY_FULL_PERCENT,
        "cpu_temp_c": temperature if isinstance(temperature, int | float) else None,
        "clock": clock,
        "clock_label": CLOCK_LABELS[clock],
        "clock_warning": clock == "unsynced",
        "db_mb": round(database / 1024 ** 2, 1) if isinstance(database, int | float) else None,
    }


def center_today(session: Session, code: str, day: date, tz: ZoneInfo, windows: set[int]) -> dict[str, Any]:
    events = _today_events(session, code, day, tz)
    health, as_of = latest_health(session, code)
    told = told_displays(health, display_idle_texts(session, code), as_of)
    window_info = health.get("windows") if isinstance(health, dict) and isinstance(health.get("windows"), dict) else {}
    return {
        "displays": window_displays(events, windows, told),
        "window_info": {int(n): info for n, info in window_info.items() if str(n).isdigit() and isinstance(info, dict)},
        "staff_names": staff_directory(health),
        "host": host_figures(health),
        "queue": queue_figures(events),
        "satisfaction": satisfaction(session, code, day, tz),
        "coverage": rating_coverage(session, "window", *day_bounds(day, tz), tz, center_code=code),
    }
