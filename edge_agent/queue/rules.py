"""Pure queue rules: no clock, no database, no I/O. Tests call them directly.

docs/queue-rules.md explains each rule in prose; tests/edge/test_queue_rules.py
proves each one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

WAITING = "waiting"
SERVING = "serving"
FINISHED = "finished"
MISSED = "missed"  # 过号: called, did not come; waits on the missed list until staff re-queue it

# Why a ticket goes ahead of the plain queue (the ticket's `priority` column).
GREEN = "green"  # 绿色通道: elderly by ID card age, or marked by staff
APPOINTMENT = "appointment"  # checked in with an appointment code

# Why a ticket was chosen (reported with the call; the first three are the contract's `priority` values).
BY_REQUEUE = "requeued"
BY_GREEN = GREEN
BY_APPOINTMENT = APPOINTMENT
BY_MAX_WAIT = "max_wait"
BY_INTERLEAVE = "interleave"
BY_ORDER = "order"


@dataclass(frozen=True)
class TicketView:
    """What the rules need to know about a ticket."""

    id: int
    number: str
    service: str  # the service whose queue it is in now (after a transfer, the new one)
    status: str
    issued_at: float  # kept through transfers and re-queues: waiting time counts from here
    priority: str = ""  # "", GREEN or APPOINTMENT
    requeued_at: float | None = None  # set when staff put a missed ticket back
    target_window: int | None = None  # transferred to one window: only that window calls it
    slot_end: float | None = None  # an appointment's slot end: its priority lasts until then


@dataclass(frozen=True)
class Fairness:
    """How priority tickets share a window with normal ones."""

    interleave: int = 2  # after this many priority calls in a row, one normal ticket (0: no interleave)
    max_wait_s: float = 1800.0  # a normal ticket waiting this long goes before any priority ticket


@dataclass(frozen=True)
class Choice:
    ticket: TicketView
    reason: str  # BY_*

    @property
    def is_priority(self) -> bool:
        return self.reason in (BY_REQUEUE, BY_GREEN, BY_APPOINTMENT)


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


def priority_class(ticket: TicketView, now: float) -> str | None:
    """BY_REQUEUE, BY_GREEN or BY_APPOINTMENT when the ticket goes ahead of the plain queue now, else None."""
    if ticket.requeued_at is not None:
        return BY_REQUEUE
    if ticket.priority == GREEN:
        return BY_GREEN
    if ticket.priority == APPOINTMENT and ticket.slot_end is not None and now <= ticket.slot_end:
        return BY_APPOINTMENT
    return None


def callable_by(ticket: TicketView, window: int | None, services: Sequence[str]) -> bool:
    """A ticket transferred to a window waits for that window only; any other for every window of its service."""
    if ticket.status != WAITING:
        return False
    if ticket.target_window is not None:
        return ticket.target_window == window
    return ticket.service in services


def choose_next(waiting: Iterable[TicketView], services: Sequence[str], window: int | None, now: float,
                fairness: Fairness = Fairness(), priority_streak: int = 0) -> Choice | None:
    """下一位 for a window serving `services`, which called `priority_streak` priority tickets in a row.

    Order: a normal ticket that waited `max_wait_s` or longer; a normal ticket when the window has called
    `interleave` priority tickets in a row; re-queued no-shows (by when they were re-queued); green
    channel; appointments within their slot; then the earliest issued ticket.
    """
    candidates = [t for t in waiting if callable_by(t, window, services)]
    if not candidates:
        return None
    by_issue = sorted(candidates, key=lambda t: (t.issued_at, t.id))
    normal = [t for t in by_issue if priority_class(t, now) is None]
    if normal and now - normal[0].issued_at >= fairness.max_wait_s:
        return Choice(normal[0], BY_MAX_WAIT)
    if normal and fairness.interleave and priority_streak >= fairness.interleave:
        return Choice(normal[0], BY_INTERLEAVE)
    requeued = sorted((t for t in candidates if priority_class(t, now) == BY_REQUEUE),
                      key=lambda t: (t.requeued_at, t.issued_at, t.id))
    if requeued:
        return Choice(requeued[0], BY_REQUEUE)
    for reason in (BY_GREEN, BY_APPOINTMENT):
        group = [t for t in by_issue if priority_class(t, now) == reason]
        if group:
            return Choice(group[0], reason)
    return Choice(normal[0], BY_ORDER)


def next_priority_streak(choice: Choice, streak: int) -> int:
    """Priority calls in a row at a window: grows with each priority call, back to 0 with a normal one."""
    return streak + 1 if choice.is_priority else 0


def pick_next(waiting: Iterable[TicketView], services: Sequence[str], window: int | None = None,
              now: float = 0.0, fairness: Fairness = Fairness(), priority_streak: int = 0) -> TicketView | None:
    """The ticket a window serving `services` calls next (see choose_next)."""
    choice = choose_next(waiting, services, window, now, fairness, priority_streak)
    return choice.ticket if choice else None


def call_order(waiting: Iterable[TicketView], services: Sequence[str], window: int | None, now: float,
               fairness: Fairness = Fairness(), priority_streak: int = 0, limit: int | None = None) -> list[TicketView]:
    """The window's waiting list in the order 下一位 would call it, if nothing else changed (the first `limit`)."""
    remaining = [t for t in waiting if callable_by(t, window, services)]
    order = []
    while remaining and (limit is None or len(order) < limit):
        choice = choose_next(remaining, services, window, now, fairness, priority_streak)
        order.append(choice.ticket)
        priority_streak = next_priority_streak(choice, priority_streak)
        remaining = [t for t in remaining if t.id != choice.ticket.id]
    return order


def people_ahead(waiting: Iterable[TicketView], service: str) -> int:
    """How many tickets of the same service wait before a new one."""
    return sum(1 for t in waiting if t.status == WAITING and t.service == service)


def display_call_text(number: str, window: int) -> str:
    """The LED text: 请A012号到3号窗口."""
    return f"请{number}号到{window}号窗口"


def average_service_s(durations: Sequence[float], default_s: float) -> float:
    """The mean of recent service durations (called to finished), or the configured default before any."""
    recent = [d for d in durations if d > 0]
    return sum(recent) / len(recent) if recent else default_s


def estimate_wait_s(ahead: int, average_s: float, open_windows: int) -> float | None:
    """Seconds until a ticket with `ahead` people before it is called; None when no open window serves it.

    The windows serving the service work in parallel: the people ahead are shared among them, and a new
    ticket waits for the rounds before its own.
    """
    if open_windows <= 0:
        return None
    return math.ceil(ahead / open_windows) * average_s


def wait_minutes_text(seconds: float | None) -> str:
    """What the kiosk and the ticket say: 预计等候约 N 分钟."""
    if seconds is None:
        return "暂无窗口办理该业务"
    if seconds < 60:
        return "预计很快就到您"
    return f"预计等候约 {math.ceil(seconds / 60)} 分钟"
