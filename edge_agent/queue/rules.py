"""Pure queue rules: no clock, no database, no I/O. Tests call them directly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

WAITING = "waiting"
SERVING = "serving"
FINISHED = "finished"


@dataclass(frozen=True)
class TicketView:
    """What the rules need to know about a ticket."""

    id: int
    number: str
    service: str
    status: str
    issued_at: float


def business_day(now: float, day_starts_at: time, timezone: str = "Asia/Shanghai") -> str:
    """The business day (YYYY-MM-DD) a moment belongs to; numbers restart with each one.

    The day starts at `day_starts_at` local time, so a center that stays open
    past midnight keeps one sequence of numbers for the whole session.
    """
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    start = datetime.combine(local.date(), day_starts_at, tzinfo=local.tzinfo)
    if local < start:
        local -= timedelta(days=1)
    return local.date().isoformat()


def ticket_number(prefix: str, seq: int) -> str:
    """A012: prefix letter and at least three digits, as residents know it."""
    if seq < 1:
        raise ValueError("ticket sequence starts at 1")
    return f"{prefix}{seq:03d}"


def pick_next(waiting: Iterable[TicketView], services: Sequence[str]) -> TicketView | None:
    """The ticket a window serving `services` calls next: the earliest issued of its services."""
    candidates = [t for t in waiting if t.status == WAITING and t.service in services]
    if not candidates:
        return None
    return min(candidates, key=lambda t: (t.issued_at, t.id))


def people_ahead(waiting: Iterable[TicketView], service: str) -> int:
    """How many tickets of the same service wait before a new one."""
    return sum(1 for t in waiting if t.status == WAITING and t.service == service)


def display_call_text(number: str, window: int) -> str:
    """The LED text: 请A012号到3号窗口."""
    return f"请{number}号到{window}号窗口"
