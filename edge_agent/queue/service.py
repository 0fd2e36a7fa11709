"""The queue as the center runs it: rules from rules.py, persisted in the store.

Each operation is one SQLite transaction that also writes the event for the
county into the outbox, so an accepted ticket or rating is never lost.
Listeners (displays, printer, hall page) are told after the commit; this
module knows nothing about MQTT, printers or web pages.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.config import CenterConfig
from edge_agent.queue import rules
from edge_agent.store import TICKET_COLUMNS, EdgeStore, TicketRow
from protocol import messages, topics

log = logging.getLogger(__name__)

ISSUED = "issued"
CALLED = "called"
FINISHED = "finished"
RATED = "rated"


class QueueError(Exception):
    """An operation staff or a resident asked for that cannot be done (shown to them in Chinese)."""


@dataclass(frozen=True)
class QueueChange:
    kind: str
    ticket: TicketRow
    window: int | None = None
    request_id: str | None = None
    score: int | None = None


@dataclass(frozen=True)
class IssuedTicket:
    ticket: TicketRow
    service_name: str
    people_ahead: int


@dataclass(frozen=True)
class RatingOutcome:
    accepted: bool
    reason: str


class QueueService:
    def __init__(self, store: EdgeStore, config: CenterConfig, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.listeners: list[Callable[[QueueChange], None]] = []
        with store.transaction() as db:
            for window in config.windows:
                store.ensure_window(db, window.number)

    # -- helpers ---------------------------------------------------------

    def today(self, now: float | None = None) -> str:
        return rules.business_day(self.clock() if now is None else now, self.config.opening_time,
                                  self.config.timezone)

    def _notify(self, change: QueueChange) -> None:
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:  # a broken listener must not undo an accepted ticket
                log.exception("queue listener failed for %s %s", change.kind, change.ticket.number)

    def _ticket_event(self, db, kind: str, ticket: TicketRow, now: float, window: int | None = None) -> None:
        staff_no = self.config.window(window).staff_no if window else ""
        payload = messages.make(
            "ticket_event", event_id=uuid.uuid4().hex, kind=kind, ticket=ticket.number, service=ticket.service,
            service_name=self.config.service(ticket.service).name, window=window, staff_no=staff_no or None, ts=now)
        self.store.enqueue(db, topics.build(topics.TICKET_EVENT, center=self.config.code),
                           messages.encode("ticket_event", payload), 1, False, now)

    @staticmethod
    def _load(db, ticket_id: int) -> TicketRow:
        return TicketRow(*db.execute(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (ticket_id,)).fetchone())

    # -- resident at the kiosk ------------------------------------------

    def issue_ticket(self, service: str) -> IssuedTicket:
        try:
            service_name = self.config.service(service).name
        except KeyError:
            raise QueueError(f"没有这项业务：{service}") from None
        now = self.clock()
        day = self.today(now)
        with self.store.transaction() as db:
            seq = self.store.next_seq(db, day, service)
            number = rules.ticket_number(service, seq)
            ahead = db.execute("SELECT COUNT(*) FROM tickets WHERE business_day = ? AND service = ? AND status = ?",
                               (day, service, rules.WAITING)).fetchone()[0]
            cursor = db.execute(
                "INSERT INTO tickets (business_day, service, seq, number, status, issued_at) VALUES (?, ?, ?, ?, ?, ?)",
                (day, service, seq, number, rules.WAITING, now))
            ticket = self._load(db, cursor.lastrowid)
            self._ticket_event(db, messages.TICKET_ISSUED, ticket, now)
        log.info("issued %s (%s), %d ahead", number, service_name, ahead)
        self._notify(QueueChange(ISSUED, ticket))
        return IssuedTicket(ticket, service_name, ahead)

    # -- staff at a window ------------------------------------------------

    def _window(self, number: int):
        try:
            return self.config.window(number)
        except KeyError:
            raise QueueError(f"没有{number}号窗口") from None

    def call_next(self, window: int) -> TicketRow | None:
        """下一位: the window's current ticket (if any) is done; the next one is called."""
        config = self._window(window)
        now = self.clock()
        day = self.today(now)
        with self.store.transaction() as db:
            current_id, call_seq, _state = db.execute(
                "SELECT current_ticket_id, call_seq, state FROM windows WHERE number = ?", (window,)).fetchone()
            if current_id is not None:
                current = self._load(db, current_id)
                if current.status == rules.SERVING:
                    # Staff skipped 办结: close the ticket without asking the next resident to rate it.
                    db.execute("UPDATE tickets SET status = ?, finished_at = ? WHERE id = ?",
                               (rules.FINISHED, now, current_id))
                    self._ticket_event(db, messages.TICKET_FINISHED, current, now, window)
            waiting = [TicketRow(*r).view() for r in db.execute(
                f"SELECT {TICKET_COLUMNS} FROM tickets WHERE business_day = ? AND status = ?",
                (day, rules.WAITING)).fetchall()]
            chosen = rules.pick_next(waiting, config.services)
            if chosen is None:
                db.execute("UPDATE windows SET current_ticket_id = NULL WHERE number = ?", (window,))
                ticket = None
            else:
                db.execute("UPDATE tickets SET status = ?, called_at = ?, window = ? WHERE id = ?",
                           (rules.SERVING, now, window, chosen.id))
                db.execute("UPDATE windows SET current_ticket_id = ?, call_seq = ? WHERE number = ?",
                           (chosen.id, call_seq + 1, window))
                ticket = self._load(db, chosen.id)
                self._ticket_event(db, messages.TICKET_CALLED, ticket, now, window)
        if ticket is None:
            log.info("window %d: nobody waiting", window)
            return None
        log.info("window %d calls %s", window, ticket.number)
        self._notify(QueueChange(CALLED, ticket, window))
        return ticket

    def finish(self, window: int) -> QueueChange:
        """办结: the current ticket is done and the window's rating pad asks the resident."""
        self._window(window)
        now = self.clock()
        request_id = uuid.uuid4().hex
        with self.store.transaction() as db:
            current_id = db.execute("SELECT current_ticket_id FROM windows WHERE number = ?",
                                    (window,)).fetchone()[0]
            current = self._load(db, current_id) if current_id is not None else None
            if current is None or current.status != rules.SERVING:
                raise QueueError("当前没有正在办理的号码")
            db.execute("UPDATE tickets SET status = ?, finished_at = ? WHERE id = ?", (rules.FINISHED, now, current_id))
            db.execute("UPDATE rating_requests SET state = 'closed', closed_at = ? WHERE window = ? AND state = 'open'",
                       (now, window))
            db.execute("INSERT INTO rating_requests (request_id, ticket_id, window, state, opened_at) "
                       "VALUES (?, ?, ?, 'open', ?)", (request_id, current_id, window, now))
            ticket = self._load(db, current_id)
            self._ticket_event(db, messages.TICKET_FINISHED, ticket, now, window)
        change = QueueChange(FINISHED, ticket, window, request_id)
        log.info("window %d finished %s, rating requested", window, ticket.number)
        self._notify(change)
        return change

    # -- ratings from the window's pad ---------------------------------

    def record_rating(self, device_id: str, rating: dict) -> RatingOutcome:
        """Accept one rating per ticket, bound to the request the edge opened."""
        now = self.clock()
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM ratings WHERE rating_id = ?", (rating["rating_id"],)).fetchone():
                return RatingOutcome(False, "duplicate delivery of an accepted rating")
            row = db.execute("SELECT ticket_id, window, state FROM rating_requests WHERE request_id = ?",
                             (rating["request_id"],)).fetchone()
            if row is None:
                return RatingOutcome(False, "no such rating request")
            ticket_id, window, state = row
            ticket = self._load(db, ticket_id)
            if window != rating["window"] or ticket.number != rating["ticket"]:
                return RatingOutcome(False, "rating does not match its request's window and ticket")
            if db.execute("SELECT 1 FROM ratings WHERE ticket_id = ?", (ticket_id,)).fetchone():
                return RatingOutcome(False, f"ticket {ticket.number} is already rated")
            if state != "open":
                return RatingOutcome(False, "rating request is closed")
            db.execute("INSERT INTO ratings (rating_id, request_id, ticket_id, window, score, device_id, received_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (rating["rating_id"], rating["request_id"], ticket_id, window, rating["score"], device_id, now))
            db.execute("UPDATE rating_requests SET state = 'closed', closed_at = ? WHERE request_id = ?",
                       (now, rating["request_id"]))
            staff_no = self.config.window(window).staff_no
            event = messages.make(
                "rating_event", event_id=uuid.uuid4().hex, rating_id=rating["rating_id"], ticket=ticket.number,
                service=ticket.service, window=window, staff_no=staff_no or None, score=rating["score"], ts=now)
            self.store.enqueue(db, topics.build(topics.RATING_EVENT, center=self.config.code),
                               messages.encode("rating_event", event), 1, False, now)
        log.info("window %d: %s rated %s", window, ticket.number, messages.RATING_LABELS[rating["score"]])
        self._notify(QueueChange(RATED, ticket, window, rating["request_id"], rating["score"]))
        return RatingOutcome(True, "accepted")

    # -- what displays and pages show -----------------------------------

    def display_payload(self, window: int) -> dict:
        current_id, call_seq, state = self.store.window_row(window)
        ticket = self.store.ticket(current_id) if current_id is not None else None
        if state == "paused":
            return messages.make("window_display", window=window, state=messages.DISPLAY_PAUSED,
                                 ticket="", text="暂停服务", call_seq=call_seq)
        if ticket is None or ticket.status != rules.SERVING:
            return messages.make("window_display", window=window, state=messages.DISPLAY_IDLE,
                                 ticket=ticket.number if ticket else "", text="欢迎光临", call_seq=call_seq)
        return messages.make("window_display", window=window, state=messages.DISPLAY_SERVING, ticket=ticket.number,
                             text=rules.display_call_text(ticket.number, window), call_seq=call_seq)

    def rating_request_payload(self, window: int) -> dict | None:
        rows = self.store.query(
            "SELECT r.request_id, r.state, t.number, t.service FROM rating_requests r JOIN tickets t "
            "ON t.id = r.ticket_id WHERE r.window = ? ORDER BY r.opened_at DESC LIMIT 1", (window,))
        if not rows:
            return None
        request_id, state, number, service = rows[0]
        config = self.config.window(window)
        return messages.make(
            "rating_request", request_id=request_id, window=window, state=state, ticket=number,
            service=self.config.service(service).name, staff_no=config.staff_no or None,
            staff_name=config.staff_name or None, timeout_s=self.config.rating_timeout_s)

    def snapshot(self) -> dict:
        """Everything the kiosk, staff and hall pages show, as plain JSON."""
        day = self.today()
        tickets = self.store.tickets_of_day(day)
        waiting = [t for t in tickets if t.status == rules.WAITING]
        windows = []
        for window in self.config.windows:
            display = self.display_payload(window.number)
            windows.append({
                "number": window.number, "services": list(window.services), "state": display["state"],
                "ticket": display["ticket"] if display["state"] == messages.DISPLAY_SERVING else "",
                "text": display["text"], "staff_no": window.staff_no, "staff_name": window.staff_name,
                "waiting": [t.number for t in waiting if t.service in window.services],
            })
        services = [{"prefix": s.prefix, "name": s.name, "waiting": sum(1 for t in waiting if t.service == s.prefix)}
                    for s in self.config.services]
        called = sorted((t for t in tickets if t.called_at), key=lambda t: t.called_at, reverse=True)[:8]
        recent = [{"ticket": t.number, "window": t.window,
                   "text": rules.display_call_text(t.number, t.window)} for t in called]
        ratings = self.store.query(
            "SELECT COUNT(*) FROM ratings r JOIN tickets t ON t.id = r.ticket_id WHERE t.business_day = ?", (day,))
        return {"center": {"code": self.config.code, "name": self.config.name}, "business_day": day,
                "services": services, "windows": windows, "recent_calls": recent,
                "issued_today": len(tickets), "rated_today": ratings[0][0]}
