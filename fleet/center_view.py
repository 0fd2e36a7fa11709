"""What the center page shows besides its devices: each window's display, today's queue and satisfaction.

The fleet does not receive `window_display` (it travels only on the center
broker, between the edge agent and its displays). What each queue display
shows is therefore *derived* from the ticket events the edge agent forwards:
a window's latest `called`/`recalled` ticket that has not been finished,
skipped or transferred since is the one on its display, as 请A001号到3号窗口.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from fleet.coverage import rating_coverage
from fleet.models import TicketEvent
from fleet.overview import day_bounds
from fleet.satisfaction import center_satisfaction
from protocol.messages import (
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


def _today_events(session: Session, code: str, day: date, tz: ZoneInfo) -> list[TicketEvent]:
    start, end = day_bounds(day, tz)
    query = select(TicketEvent).where(TicketEvent.center_code == code, TicketEvent.ts >= start,
                                      TicketEvent.ts < end).order_by(col(TicketEvent.ts), col(TicketEvent.id))
    return list(session.exec(query).all())


def call_text(ticket: str, window: int) -> str:
    """The LED line of a call, as the edge agent writes it (see docs/protocol.md, window_display)."""
    return f"请{ticket}号到{window}号窗口"


def window_displays(events: list[TicketEvent], windows: set[int]) -> list[dict[str, Any]]:
    """Per window, what its queue display shows now, derived from the ticket events (oldest first)."""
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
    return [shown[w] for w in sorted(shown)]


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


def center_today(session: Session, code: str, day: date, tz: ZoneInfo, windows: set[int]) -> dict[str, Any]:
    events = _today_events(session, code, day, tz)
    return {
        "displays": window_displays(events, windows),
        "queue": queue_figures(events),
        "satisfaction": satisfaction(session, code, day, tz),
        "coverage": rating_coverage(session, "window", *day_bounds(day, tz), tz, center_code=code),
    }
