"""The queue as the center runs it: rules from rules.py, persisted in the store.

Each operation is one SQLite transaction that also writes the event for the
county into the outbox, so an accepted ticket or rating is never lost.
Listeners (displays, printer, voice, pages) are told after the commit; this
module knows nothing about MQTT, printers, speakers or web pages.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.appointments import Appointment, check_in_refusal
from edge_agent.config import CenterConfig
from edge_agent.queue import rules
from edge_agent.store import TICKET_COLUMNS, EdgeStore, TicketRow
from protocol import messages, topics

log = logging.getLogger(__name__)

# Kinds of change told to listeners.
ISSUED = "issued"
CALLED = "called"
RECALLED = "recalled"
SKIPPED = "skipped"
REQUEUED = "requeued"
TRANSFERRED = "transferred"
FINISHED = "finished"
RATED = "rated"
UNRATED = "unrated"  # a rating request closed with no rating: staff moved on, or the pad never answered
MARKED = "marked"  # staff marked a waiting ticket green channel
WINDOW = "window"  # a window paused, resumed, opened by a login or closed by a logout

OPEN, PAUSED, CLOSED = "open", "paused", "closed"
RECENT_DURATIONS = 20  # service durations the waiting estimate averages
WAITING_LIST_LENGTH = 30  # how much of a window's call order the staff page shows
PAD_ANSWER_GRACE_S = 30  # an online pad answers its time-out with 未评价 within this: silence means offline


class QueueError(Exception):
    """An operation staff or a resident asked for that cannot be done (shown to them in Chinese)."""


@dataclass(frozen=True)
class ActingOn:
    """What staff saw at their window when they pressed a button, named in the request.

    A double click, a retried request or the same window's caller open twice sends one request twice; the
    second one names a state the window has already left (another ticket, a later call), so it changes
    nothing. Without this a double click on 下一位 called the next resident and closed them 13 ms later.
    """

    ticket: str  # the number being served at the window, "" for none
    call_seq: int | None = None  # the window's count of calls and recalls; None: not checked


class StaleRequest(Exception):
    """A staff request names a state its window has already left: nothing was changed (not an error)."""

    def __init__(self, window: int, ticket: str, call_seq: int) -> None:
        super().__init__(f"window {window} is now at {ticket or 'no ticket'}, call {call_seq}")
        self.window, self.ticket, self.call_seq = window, ticket, call_seq


@dataclass(frozen=True)
class QueueChange:
    kind: str
    ticket: TicketRow | None
    window: int | None = None
    request_id: str | None = None
    score: int | None = None
    reason: str = ""  # for CALLED: why this ticket (rules.BY_*)


@dataclass(frozen=True)
class IssuedTicket:
    ticket: TicketRow
    service_name: str
    people_ahead: int
    wait_s: float | None = None  # estimate; None when no open window serves the service
    repeated: bool = False  # the same kiosk tap asked before: this is the ticket it got then

    @property
    def wait_text(self) -> str:
        return rules.wait_minutes_text(self.wait_s)


@dataclass(frozen=True)
class RatingOutcome:
    accepted: bool
    reason: str
    # A rating (or reason) sent again that the edge has stored before: not taken twice, but stored, so the pad
    # hears "stored" and forgets it (the acknowledgement of its first copy was lost).
    already_stored: bool = False

    @property
    def stored(self) -> bool:
        """Whether the rating is in the database now (accepted now or before): its rating_ack's status."""
        return self.accepted or self.already_stored


@dataclass(frozen=True)
class WindowState:
    number: int
    current_ticket_id: int | None
    call_seq: int
    state: str
    priority_streak: int
    staff_no: str | None
    staff_name: str | None
    login_at: float | None


WINDOW_COLUMNS = "number, current_ticket_id, call_seq, state, priority_streak, staff_no, staff_name, login_at"


class QueueService:
    def __init__(self, store: EdgeStore, config: CenterConfig, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.listeners: list[Callable[[QueueChange], None]] = []
        self.fairness = rules.Fairness(config.queue.priority_interleave, config.queue.max_wait_s)
        with store.transaction() as db:
            for window in config.windows:
                store.ensure_window(db, window.number)
        if config.appointments:
            self.import_appointments(config.appointments)

    # -- helpers ---------------------------------------------------------

    def today(self, now: float | None = None) -> str:
        return rules.business_day(self.clock() if now is None else now, self.config.opening_time,
                                  self.config.timezone)

    def _notify(self, change: QueueChange) -> None:
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:  # a broken listener must not undo an accepted ticket
                log.exception("queue listener failed for %s %s", change.kind,
                              change.ticket.number if change.ticket else "-")

    def _ticket_event(self, db, kind: str, ticket: TicketRow, now: float, window: int | None = None,
                      **extra) -> None:
        service = ticket.queue_service or ticket.service
        staff_no = self._staff_no(db, window) if window else ""
        payload = messages.make(
            "ticket_event", event_id=uuid.uuid4().hex, kind=kind, ticket=ticket.number, service=service,
            service_name=self.config.service(service).name, window=window, staff_no=staff_no or None, ts=now,
            **extra)
        self.store.enqueue(db, topics.build(topics.TICKET_EVENT, center=self.config.code),
                           messages.encode("ticket_event", payload), 1, False, now)

    def _on_duty(self, staff_no: str | None) -> dict:
        """亮牌上岗: the 工号 and 职务 of whoever is signed in at a window, shown with the name on the hall display
        and the window's caller, and whether the roster has a photo of them (served at /staff-photo/<工号>)."""
        try:
            member = self.config.staff_member(staff_no or "")
        except KeyError:
            return {"staff_no": staff_no or "", "staff_title": "", "staff_photo": False}
        return {"staff_no": member.staff_no, "staff_title": member.title, "staff_photo": bool(member.photo)}

    def _staff_no(self, db, window: int) -> str:
        """Who is accountable for the window now: the staff member logged in, else the configured one."""
        row = db.execute("SELECT staff_no FROM windows WHERE number = ?", (window,)).fetchone()
        return (row[0] if row and row[0] else "") or self.config.window(window).staff_no

    @staticmethod
    def _load(db, ticket_id: int) -> TicketRow:
        return TicketRow(*db.execute(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (ticket_id,)).fetchone())

    @staticmethod
    def _window_state(db, number: int) -> WindowState:
        return WindowState(*db.execute(f"SELECT {WINDOW_COLUMNS} FROM windows WHERE number = ?",
                                       (number,)).fetchone())

    def _window(self, number: int):
        try:
            return self.config.window(number)
        except KeyError:
            raise QueueError(f"没有{number}号窗口") from None

    def _service_name(self, prefix: str) -> str:
        try:
            return self.config.service(prefix).name
        except KeyError:
            raise QueueError(f"没有这项业务：{prefix}") from None

    def _serving(self, db, window: int) -> TicketRow:
        state = self._window_state(db, window)
        current = self._load(db, state.current_ticket_id) if state.current_ticket_id is not None else None
        if current is None or current.status != rules.SERVING:
            raise QueueError("当前没有正在办理的号码")
        return current

    def _serving_number(self, db, state: WindowState) -> str:
        if state.current_ticket_id is None:
            return ""
        current = self._load(db, state.current_ticket_id)
        return current.number if current.status == rules.SERVING else ""

    def _check_acting_on(self, db, state: WindowState, acting_on: ActingOn | None) -> None:
        if acting_on is None:
            return
        serving = self._serving_number(db, state)
        if (acting_on.ticket.strip().upper() != serving
                or (acting_on.call_seq is not None and acting_on.call_seq != state.call_seq)):
            raise StaleRequest(state.number, serving, state.call_seq)

    def window_now(self, window: int) -> dict:
        """What a staff request should name next: the number being served ("" for none) and the call count."""
        self._window(window)
        with self.store.transaction() as db:
            state = self._window_state(db, window)
            return {"ticket": self._serving_number(db, state), "call_seq": state.call_seq,
                    "window_state": state.state}

    def _require_caller(self, state: WindowState) -> None:
        if state.state == PAUSED:
            raise QueueError("本窗口已暂停服务，请先点“恢复”")
        if state.state == CLOSED:
            raise QueueError("本窗口未开放，请先登录")
        if not state.staff_no:
            raise QueueError("请先输入工号和密码登录")

    def _waiting_views(self, db, day: str) -> list[rules.TicketView]:
        return [TicketRow(*r).view() for r in db.execute(
            f"SELECT {TICKET_COLUMNS} FROM tickets WHERE business_day = ? AND status = ?",
            (day, rules.WAITING)).fetchall()]

    @staticmethod
    def _release_pinned(db, window: int) -> int:
        """Tickets transferred to a window that pauses or closes go back to their service's queue."""
        return db.execute("UPDATE tickets SET target_window = NULL WHERE target_window = ? AND status = ?",
                          (window, rules.WAITING)).rowcount

    def _is_available(self, state: WindowState) -> bool:
        return state.state == OPEN and bool(state.staff_no)

    # -- resident at the kiosk ------------------------------------------

    def _issue(self, db, service: str, now: float, priority: str = "", slot_end: float | None = None) -> TicketRow:
        day = self.today(now)
        seq = self.store.next_seq(db, day, service)
        number = rules.ticket_number(service, seq)
        cursor = db.execute(
            "INSERT INTO tickets (business_day, service, seq, number, status, issued_at, priority, slot_end) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (day, service, seq, number, rules.WAITING, now, priority, slot_end))
        ticket = self._load(db, cursor.lastrowid)
        self._ticket_event(db, messages.TICKET_ISSUED, ticket, now)
        return ticket

    def _ahead_of(self, db, ticket: TicketRow, now: float) -> int:
        """People a new ticket waits for: its service's queue, or the priority ones for a priority ticket."""
        mine = ticket.view()
        if rules.priority_class(mine, now) is None:  # the common case, kept cheap for a busy morning
            return db.execute(
                "SELECT COUNT(*) FROM tickets WHERE business_day = ? AND status = ? AND id != ? "
                "AND COALESCE(queue_service, service) = ? AND target_window IS NULL",
                (ticket.business_day, rules.WAITING, ticket.id, mine.service)).fetchone()[0]
        views = [v for v in self._waiting_views(db, ticket.business_day)
                 if v.id != ticket.id and v.service == mine.service and v.target_window is None]
        return sum(1 for v in views if rules.priority_class(v, now) is not None)

    def _earlier_ticket(self, db, kiosk_request: str, now: float) -> IssuedTicket | None:
        row = db.execute(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE kiosk_request = ?",
                         (kiosk_request,)).fetchone()
        if row is None:
            return None
        ticket = TicketRow(*row)
        ahead = self._ahead_of(db, ticket, now)
        return IssuedTicket(ticket, self._service_name(ticket.service), ahead,
                            self.estimate_wait_s(ticket.service, ahead), repeated=True)

    def kiosk_ticket(self, kiosk_request: str) -> IssuedTicket | None:
        """The ticket an earlier tap with this id got, or None."""
        with self.store.transaction() as db:
            return self._earlier_ticket(db, kiosk_request, self.clock())

    def issue_ticket(self, service: str, priority: str = "", kiosk_request: str = "") -> IssuedTicket:
        """A new ticket; `kiosk_request` names the resident's tap, so a repeated tap gets the same ticket back."""
        service_name = self._service_name(service)
        if not self.config.service(service).offered:  # the county removed it here; its waiting tickets stay
            raise QueueError(f"{service_name}已停止取号，请咨询工作人员")
        now = self.clock()
        with self.store.transaction() as db:
            earlier = self._earlier_ticket(db, kiosk_request, now) if kiosk_request else None
            if earlier is not None:
                return earlier
            ticket = self._issue(db, service, now, priority)
            if kiosk_request:
                db.execute("UPDATE tickets SET kiosk_request = ? WHERE id = ?", (kiosk_request, ticket.id))
            ahead = self._ahead_of(db, ticket, now)
        log.info("issued %s (%s%s), %d ahead", ticket.number, service_name, ", green" if priority else "", ahead)
        self._notify(QueueChange(ISSUED, ticket))
        return IssuedTicket(ticket, service_name, ahead, self.estimate_wait_s(service, ahead))

    def check_in(self, code: str) -> IssuedTicket:
        """An appointment's code scanned at the kiosk: a ticket that goes ahead while the slot lasts."""
        now = self.clock()
        with self.store.transaction() as db:
            row = db.execute("SELECT code, service, slot_start, slot_end, name_masked, ticket_id FROM appointments "
                             "WHERE code = ?", (code.strip(),)).fetchone()
            if row is None:
                raise QueueError("未找到该预约，请核对预约码或现场取号")
            appointment = Appointment(*row[:5])
            if row[5] is not None:
                raise QueueError(f"该预约已签到，您的号码是 {self._load(db, row[5]).number}")
            refusal = check_in_refusal(appointment, now, self.config.queue.appointment_early_min,
                                       self.config.timezone)
            if refusal:
                raise QueueError(refusal)
            ticket = self._issue(db, appointment.service, now, rules.APPOINTMENT, appointment.slot_end)
            db.execute("UPDATE appointments SET ticket_id = ?, checked_in_at = ? WHERE code = ?",
                       (ticket.id, now, appointment.code))
            ahead = self._ahead_of(db, ticket, now)
        log.info("appointment checked in as %s", ticket.number)
        self._notify(QueueChange(ISSUED, ticket))
        return IssuedTicket(ticket, self.config.service(ticket.service).name, ahead,
                            self.estimate_wait_s(ticket.service, ahead))

    def import_appointments(self, appointments: tuple[Appointment, ...] | list[Appointment]) -> int:
        """Add or update appointments; one already checked in keeps its slot and ticket."""
        with self.store.transaction() as db:
            for a in appointments:
                db.execute(
                    "INSERT INTO appointments (code, service, slot_start, slot_end, name_masked) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (code) DO UPDATE SET service = excluded.service, slot_start = excluded.slot_start, "
                    "slot_end = excluded.slot_end, name_masked = excluded.name_masked "
                    "WHERE appointments.ticket_id IS NULL",
                    (a.code, a.service, a.slot_start, a.slot_end, a.name_masked))
        return len(appointments)

    def appointments(self) -> list[dict]:
        rows = self.store.query(
            "SELECT a.code, a.service, a.slot_start, a.slot_end, a.name_masked, t.number FROM appointments a "
            "LEFT JOIN tickets t ON t.id = a.ticket_id ORDER BY a.slot_start, a.code")
        return [dict(zip(("code", "service", "slot_start", "slot_end", "name", "ticket"), r, strict=True))
                for r in rows]

    # -- waiting estimate --------------------------------------------------

    def recent_durations(self, service: str) -> list[float]:
        rows = self.store.query(
            "SELECT finished_at - called_at FROM tickets WHERE COALESCE(queue_service, service) = ? AND status = ? "
            "AND called_at IS NOT NULL AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?",
            (service, rules.FINISHED, RECENT_DURATIONS))
        return [r[0] for r in rows]

    def window_states(self) -> dict[int, WindowState]:
        """Every window's stored state (open/paused/closed, who is logged in, what it serves now)."""
        return {r[0]: WindowState(*r) for r in self.store.query(f"SELECT {WINDOW_COLUMNS} FROM windows")}

    def open_windows(self, service: str) -> int:
        states = self.window_states()
        return sum(1 for w in self.config.windows
                   if service in w.services and w.number in states and self._is_available(states[w.number]))

    def estimate_wait_s(self, service: str, ahead: int) -> float | None:
        average = rules.average_service_s(self.recent_durations(service), self.config.queue.default_service_min * 60)
        return rules.estimate_wait_s(ahead, average, self.open_windows(service))

    # -- staff at a window ------------------------------------------------

    def call_next(self, window: int, acting_on: ActingOn | None = None) -> TicketRow | None:
        """下一位: the window's current ticket (if any) is done; the next one is called."""
        config = self._window(window)
        now = self.clock()
        day = self.today(now)
        with self.store.transaction() as db:
            state = self._window_state(db, window)
            self._check_acting_on(db, state, acting_on)
            self._require_caller(state)
            finished = None
            if state.current_ticket_id is not None:
                current = self._load(db, state.current_ticket_id)
                if current.status == rules.SERVING:
                    # Staff skipped 办结: 下一位 is 办结 first, so this resident is asked to rate too.
                    finished = self._finish_and_ask(db, window, current, now)
            choice = rules.choose_next(self._waiting_views(db, day), config.services, window, now, self.fairness,
                                       state.priority_streak)
            if choice is None:
                db.execute("UPDATE windows SET current_ticket_id = NULL WHERE number = ?", (window,))
                ticket = None
            else:
                db.execute("UPDATE tickets SET status = ?, called_at = ?, window = ?, target_window = NULL, "
                           "recall_count = 0, call_reason = ? WHERE id = ?",
                           (rules.SERVING, now, window, choice.reason, choice.ticket.id))
                db.execute("UPDATE windows SET current_ticket_id = ?, call_seq = ?, priority_streak = ? "
                           "WHERE number = ?", (choice.ticket.id, state.call_seq + 1,
                                                rules.next_priority_streak(choice, state.priority_streak), window))
                ticket = self._load(db, choice.ticket.id)
                extra = {"priority": choice.reason} if choice.is_priority else {}
                self._ticket_event(db, messages.TICKET_CALLED, ticket, now, window, **extra)
        if finished is not None:
            log.info("window %d finished %s with 下一位, rating requested", window, finished.ticket.number)
            self._notify(finished)
        if ticket is None:
            log.info("window %d: nobody waiting", window)
            return None
        log.info("window %d calls %s (%s)", window, ticket.number, choice.reason)
        self._notify(QueueChange(CALLED, ticket, window, reason=choice.reason))
        return ticket

    def recall(self, window: int, acting_on: ActingOn | None = None) -> TicketRow:
        """重呼: call the current ticket again (display and voice), at most recall_limit times."""
        self._window(window)
        now = self.clock()
        limit = self.config.queue.recall_limit
        with self.store.transaction() as db:
            state = self._window_state(db, window)
            self._check_acting_on(db, state, acting_on)
            self._require_caller(state)
            current = self._serving(db, window)
            if current.recall_count >= limit:
                raise QueueError(f"{current.number} 已重呼 {limit} 次，群众未到可点“过号”")
            db.execute("UPDATE tickets SET recall_count = recall_count + 1 WHERE id = ?", (current.id,))
            db.execute("UPDATE windows SET call_seq = call_seq + 1 WHERE number = ?", (window,))
            ticket = self._load(db, current.id)
            self._ticket_event(db, messages.TICKET_RECALLED, ticket, now, window)
        log.info("window %d recalls %s (%d/%d)", window, ticket.number, ticket.recall_count, limit)
        self._notify(QueueChange(RECALLED, ticket, window))
        return ticket

    def skip(self, window: int, acting_on: ActingOn | None = None) -> TicketRow:
        """过号: the resident did not come; the ticket goes to the missed list."""
        self._window(window)
        now = self.clock()
        with self.store.transaction() as db:
            self._check_acting_on(db, self._window_state(db, window), acting_on)
            current = self._serving(db, window)
            db.execute("UPDATE tickets SET status = ?, missed_at = ? WHERE id = ?", (rules.MISSED, now, current.id))
            db.execute("UPDATE windows SET current_ticket_id = NULL WHERE number = ?", (window,))
            ticket = self._load(db, current.id)
            self._ticket_event(db, messages.TICKET_SKIPPED, ticket, now, window)
        log.info("window %d: %s did not come (过号)", window, ticket.number)
        self._notify(QueueChange(SKIPPED, ticket, window))
        return ticket

    def _ticket_by_number(self, db, number: str) -> TicketRow:
        row = db.execute(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE business_day = ? AND number = ?",
                         (self.today(), number.strip().upper())).fetchone()
        if row is None:
            raise QueueError(f"今天没有 {number} 这个号码")
        return TicketRow(*row)

    def requeue(self, number: str, window: int | None = None) -> TicketRow:
        """A missed resident came back: staff put the ticket back; it is called before the plain queue."""
        now = self.clock()
        with self.store.transaction() as db:
            ticket = self._ticket_by_number(db, number)
            if ticket.status == rules.WAITING and ticket.requeued_at is not None:
                return ticket  # asked twice (a double click, two callers): it is back in the queue once
            if ticket.status != rules.MISSED:
                raise QueueError(f"{ticket.number} 不在过号列表中")
            db.execute("UPDATE tickets SET status = ?, requeued_at = ?, target_window = NULL WHERE id = ?",
                       (rules.WAITING, now, ticket.id))
            ticket = self._load(db, ticket.id)
            self._ticket_event(db, messages.TICKET_REQUEUED, ticket, now, window)
        log.info("%s re-queued", ticket.number)
        self._notify(QueueChange(REQUEUED, ticket, None))
        return ticket

    def mark_green(self, number: str) -> TicketRow:
        """Staff give a waiting ticket the green channel (elderly, disabled, pregnant ...)."""
        with self.store.transaction() as db:
            ticket = self._ticket_by_number(db, number)
            if ticket.status != rules.WAITING:
                raise QueueError(f"{ticket.number} 不在等候中")
            if ticket.priority == rules.GREEN:
                return ticket  # asked twice: nothing more to do
            db.execute("UPDATE tickets SET priority = ? WHERE id = ?", (rules.GREEN, ticket.id))
            ticket = self._load(db, ticket.id)
        log.info("%s marked green channel by staff", ticket.number)
        self._notify(QueueChange(MARKED, ticket, None))
        return ticket

    def unmark_green(self, number: str) -> TicketRow:
        """撤销: a green channel given by mistake goes back to the plain queue (its place by issue time)."""
        with self.store.transaction() as db:
            ticket = self._ticket_by_number(db, number)
            if ticket.status != rules.WAITING:
                raise QueueError(f"{ticket.number} 不在等候中")
            if ticket.priority != rules.GREEN:
                return ticket  # asked twice: nothing more to do
            db.execute("UPDATE tickets SET priority = '' WHERE id = ?", (ticket.id,))
            ticket = self._load(db, ticket.id)
        log.info("%s: green channel withdrawn by staff", ticket.number)
        self._notify(QueueChange(MARKED, ticket, None))
        return ticket

    def transfer(self, window: int, to_service: str | None = None, to_window: int | None = None,
                 acting_on: ActingOn | None = None) -> TicketRow:
        """转移: the current ticket waits again, for another service or one window, keeping its issue time."""
        self._window(window)
        if (to_service is None) == (to_window is None):
            raise QueueError("请选择转到的业务或窗口")
        if to_service is not None:
            self._service_name(to_service)
        if to_window is not None:
            self._window(to_window)
            if to_window == window:
                raise QueueError("不能转到本窗口")
        now = self.clock()
        with self.store.transaction() as db:
            self._check_acting_on(db, self._window_state(db, window), acting_on)
            current = self._serving(db, window)
            if to_service is not None and to_service == (current.queue_service or current.service):
                raise QueueError(f"{current.number} 已在{self._service_name(to_service)}队列中，无需转移")
            if to_window is not None:
                target = self._window_state(db, to_window)
                if not target.staff_no:
                    raise QueueError(f"{to_window}号窗口无人值守，不能转入")
                if not self._is_available(target):
                    raise QueueError(f"{to_window}号窗口暂停服务，不能转入")
            if to_service is not None:
                db.execute("UPDATE tickets SET status = ?, queue_service = ?, target_window = NULL, requeued_at = NULL "
                           "WHERE id = ?", (rules.WAITING, to_service, current.id))
            else:
                db.execute("UPDATE tickets SET status = ?, target_window = ?, requeued_at = NULL WHERE id = ?",
                           (rules.WAITING, to_window, current.id))
            db.execute("UPDATE windows SET current_ticket_id = NULL WHERE number = ?", (window,))
            ticket = self._load(db, current.id)
            # The event names where the ticket came from; to_service/to_window where it goes.
            self._ticket_event(db, messages.TICKET_TRANSFERRED, current, now, window,
                               **({"to_service": to_service} if to_service else {"to_window": to_window}))
        log.info("window %d transferred %s to %s", window, ticket.number,
                 f"service {to_service}" if to_service else f"window {to_window}")
        self._notify(QueueChange(TRANSFERRED, ticket, window))
        return ticket

    def finish(self, window: int, acting_on: ActingOn | None = None) -> QueueChange:
        """办结: the current ticket is done and the window's rating pad asks the resident."""
        self._window(window)
        now = self.clock()
        with self.store.transaction() as db:
            self._check_acting_on(db, self._window_state(db, window), acting_on)
            change = self._finish_and_ask(db, window, self._serving(db, window), now)
        log.info("window %d finished %s, rating requested", window, change.ticket.number)
        self._notify(change)
        return change

    def finish_for_case(self, window: int, case_no: str, matter: str) -> tuple[QueueChange, bool]:
        """The window's business system finished case `case_no`: 办结 of the window's ticket, rated for that case.

        Idempotent on the case number: a call repeated (a lost answer, a retry) changes nothing and answers
        what the first did; returns (the change, whether it was a repeat). Staff may have pressed 办结 first: the
        window's rating request still open, and bound to no case, is then bound to this one (the pad asks already).
        """
        self._window(window)
        now = self.clock()
        with self.store.transaction() as db:
            earlier = db.execute("SELECT request_id, ticket_id, window FROM rating_requests WHERE case_no = ?",
                                 (case_no,)).fetchone()
            if earlier is not None:
                request_id, ticket_id, at_window = earlier
                if at_window != window:
                    raise QueueError(f"办件编号 {case_no} 已在{at_window}号窗口请求过评价")
                return QueueChange(FINISHED, self._load(db, ticket_id), window, request_id), True
            state = self._window_state(db, window)
            current = self._load(db, state.current_ticket_id) if state.current_ticket_id is not None else None
            if current is None or current.status != rules.SERVING:
                asking = db.execute("SELECT request_id, ticket_id FROM rating_requests WHERE window = ? "
                                    "AND state = 'open' AND case_no IS NULL", (window,)).fetchone()
                if asking is None:
                    raise QueueError("当前没有正在办理的号码")
                db.execute("UPDATE rating_requests SET case_no = ?, matter = ? WHERE request_id = ?",
                           (case_no, matter, asking[0]))
                ticket = self._load(db, asking[1])
                log.info("window %d: the rating %s asks for is bound to case %s", window, ticket.number, case_no)
                return QueueChange(FINISHED, ticket, window, asking[0]), False
            change = self._finish_and_ask(db, window, current, now, case_no, matter)
        log.info("window %d finished %s for case %s, rating requested", window, change.ticket.number, case_no)
        self._notify(change)
        return change, False

    def _finish_and_ask(self, db, window: int, current: TicketRow, now: float, case_no: str | None = None,
                        matter: str | None = None) -> QueueChange:
        """Every served ticket ends with a rating request; the window's earlier one, unanswered, is closed.

        `case_no` and `matter`: the 办件编号 and 事项 the window's business system finished it with.
        """
        request_id = uuid.uuid4().hex
        db.execute("UPDATE tickets SET status = ?, finished_at = ? WHERE id = ?", (rules.FINISHED, now, current.id))
        for (earlier,) in db.execute("SELECT request_id FROM rating_requests WHERE window = ? AND state = 'open'",
                                     (window,)).fetchall():
            self._close_unanswered(db, earlier, now)
        db.execute("INSERT INTO rating_requests (request_id, ticket_id, window, state, opened_at, case_no, matter, "
                   "staff_no) VALUES (?, ?, ?, 'open', ?, ?, ?, ?)",
                   (request_id, current.id, window, now, case_no, matter, self._staff_no(db, window)))
        ticket = self._load(db, current.id)
        self._ticket_event(db, messages.TICKET_FINISHED, ticket, now, window)
        return QueueChange(FINISHED, ticket, window, request_id)

    def _close_unanswered(self, db, request_id: str, now: float) -> QueueChange:
        """A request the pad never answered: staff moved on first (skipped), or the pad said nothing at all
        within its time-out (pad offline: an online pad answers a time-out with score 0, 未评价)."""
        ticket_id, window, opened_at, case_no, matter, served_by = db.execute(
            "SELECT ticket_id, window, opened_at, case_no, matter, staff_no FROM rating_requests WHERE request_id = ?",
            (request_id,)).fetchone()
        silent = now - opened_at > self.config.rating_timeout_s + PAD_ANSWER_GRACE_S
        outcome = messages.RATING_PAD_OFFLINE if silent else messages.RATING_SKIPPED
        db.execute("UPDATE rating_requests SET state = 'closed', closed_at = ?, outcome = ? WHERE request_id = ?",
                   (now, outcome, request_id))
        ticket = self._load(db, ticket_id)
        event = messages.make(
            "rating_event", event_id=uuid.uuid4().hex, rating_id=f"edge-{request_id}", ticket=ticket.number,
            service=ticket.queue_service or ticket.service, window=window,
            staff_no=served_by or self._staff_no(db, window) or None, score=0, outcome=outcome, case_no=case_no,
            matter=matter, ts=now)
        self.store.enqueue(db, topics.build(topics.RATING_EVENT, center=self.config.code),
                           messages.encode("rating_event", event), 1, False, now)
        log.info("window %d: %s not rated (%s)", window, ticket.number, outcome)
        return QueueChange(UNRATED, ticket, window, request_id)

    def close_silent_requests(self) -> int:
        """Close the requests no pad has answered within its time-out (run every few seconds by the agent)."""
        now = self.clock()
        deadline = now - self.config.rating_timeout_s - PAD_ANSWER_GRACE_S
        with self.store.transaction() as db:
            silent = [r[0] for r in db.execute("SELECT request_id FROM rating_requests WHERE state = 'open' "
                                               "AND opened_at < ?", (deadline,)).fetchall()]
            closed = [self._close_unanswered(db, request_id, now) for request_id in silent]
        for change in closed:  # the pads' retained requests say closed
            self._notify(change)
        return len(closed)

    def _set_window(self, window: int, change: Callable[[sqlite3.Connection, WindowState], None]) -> WindowState:
        self._window(window)
        with self.store.transaction() as db:
            change(db, self._window_state(db, window))
            state = self._window_state(db, window)
        self._notify(QueueChange(WINDOW, None, window))
        return state

    def _no_ticket_at(self, db, state: WindowState, doing: str) -> None:
        if state.current_ticket_id is not None and self._load(db, state.current_ticket_id).status == rules.SERVING:
            raise QueueError(f"请先办结、过号或转移当前号码，再{doing}")

    def pause(self, window: int) -> WindowState:
        """暂停: the display shows 暂停服务; tickets transferred to this window go back to their queue."""
        def change(db, state: WindowState) -> None:
            if state.state == CLOSED:
                raise QueueError("本窗口未开放")
            self._no_ticket_at(db, state, "暂停")
            db.execute("UPDATE windows SET state = ? WHERE number = ?", (PAUSED, window))
            self._release_pinned(db, window)

        state = self._set_window(window, change)
        log.info("window %d paused", window)
        return state

    def resume(self, window: int) -> WindowState:
        def change(db, state: WindowState) -> None:
            if state.state == CLOSED:
                raise QueueError("本窗口未开放，请先登录")
            db.execute("UPDATE windows SET state = ? WHERE number = ?", (OPEN, window))

        state = self._set_window(window, change)
        log.info("window %d resumed", window)
        return state

    def _attendance_event(self, db, kind: str, window: int, staff_no: str, staff_name: str | None, now: float,
                          reason: str | None = None) -> None:
        """考勤 for the county, in the same transaction as the sign-in or sign-out itself."""
        extra = {"reason": reason} if reason else {}
        payload = messages.make("attendance_event", event_id=uuid.uuid4().hex, kind=kind, window=window,
                                staff_no=staff_no, staff_name=staff_name or None, ts=now, **extra)
        self.store.enqueue(db, topics.build(topics.ATTENDANCE_EVENT, center=self.config.code),
                           messages.encode("attendance_event", payload), 1, False, now)

    def _end_attendance(self, db, state: WindowState, now: float, reason: str) -> None:
        """Whoever is signed in at the window is not any more (their 考勤 record closes)."""
        db.execute("UPDATE attendance SET logout_at = ? WHERE window = ? AND logout_at IS NULL", (now, state.number))
        if state.staff_no:
            self._attendance_event(db, messages.SIGNED_OUT, state.number, state.staff_no, state.staff_name, now,
                                   reason)

    def _close_window(self, db, state: WindowState, now: float, reason: str) -> None:
        self._end_attendance(db, state, now, reason)
        db.execute("UPDATE windows SET staff_no = NULL, staff_name = NULL, login_at = NULL, state = ? "
                   "WHERE number = ?", (CLOSED, state.number))
        self._release_pinned(db, state.number)

    def login(self, window: int, staff_no: str) -> WindowState:
        """Staff log in at a window's caller (考勤 starts); the window opens."""
        staff_no = staff_no.strip()
        try:
            member = self.config.staff_member(staff_no)
        except KeyError:
            raise QueueError("工号不存在，请核对") from None
        now = self.clock()

        def change(db, state: WindowState) -> None:
            elsewhere = db.execute("SELECT number FROM windows WHERE staff_no = ? AND number != ?",
                                   (staff_no, window)).fetchone()
            if elsewhere:
                raise QueueError(f"工号 {staff_no} 已在{elsewhere[0]}号窗口登录，请先在那里退出")
            if state.staff_no == staff_no:
                return
            self._end_attendance(db, state, now, messages.OUT_REPLACED)
            db.execute("INSERT INTO attendance (window, staff_no, staff_name, login_at) VALUES (?, ?, ?, ?)",
                       (window, member.staff_no, member.name, now))
            self._attendance_event(db, messages.SIGNED_IN, window, member.staff_no, member.name, now)
            db.execute("UPDATE windows SET staff_no = ?, staff_name = ?, login_at = ?, "
                       "state = CASE WHEN state = ? THEN ? ELSE state END WHERE number = ?",
                       (member.staff_no, member.name, now, CLOSED, OPEN, window))

        state = self._set_window(window, change)
        log.info("window %d: staff %s logged in", window, staff_no)
        return state

    def logout(self, window: int) -> WindowState:
        """Staff log out (考勤 ends); the window closes until the next login."""
        now = self.clock()

        def change(db, state: WindowState) -> None:
            self._no_ticket_at(db, state, "退出")
            self._close_window(db, state, now, messages.OUT_BY_STAFF)

        state = self._set_window(window, change)
        log.info("window %d: staff logged out, window closed", window)
        return state

    def end_of_day_logout(self, window: int, today: str) -> None:
        """A sign-in of an earlier business day ends with it: attendance closes, the window closes."""
        now = self.clock()

        def change(db, state: WindowState) -> None:
            if state.login_at is None or self.today(state.login_at) == today:
                return
            self._close_window(db, state, now, messages.OUT_DAY_END)

        self._set_window(window, change)
        log.info("window %d: yesterday's sign-in ended with the business day", window)

    def last_sign_outs(self) -> dict[int, float]:
        """Each window's latest sign-out (when it became unstaffed, if nobody is signed in now)."""
        return dict(self.store.query("SELECT window, MAX(logout_at) FROM attendance WHERE logout_at IS NOT NULL "
                                     "GROUP BY window"))

    def attendance(self, since: float = 0.0) -> list[dict]:
        rows = self.store.query("SELECT window, staff_no, staff_name, login_at, logout_at FROM attendance "
                                "WHERE COALESCE(logout_at, login_at) >= ? ORDER BY login_at", (since,))
        return [dict(zip(("window", "staff_no", "staff_name", "login_at", "logout_at"), r, strict=True))
                for r in rows]

    def unattended_windows(self) -> list[int]:
        """Windows with nobody logged in (shown on the hall display and in health)."""
        rows = dict(self.store.query("SELECT number, staff_no FROM windows"))
        return [w.number for w in self.config.windows if not rows.get(w.number)]

    # -- ratings from the window's pad ---------------------------------

    def record_rating(self, device_id: str, rating: dict) -> RatingOutcome:
        """Accept one rating per ticket, bound to the request the edge opened."""
        now = self.clock()
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM ratings WHERE rating_id = ?", (rating["rating_id"],)).fetchone():
                return self._add_reason(db, rating, now)
            row = db.execute("SELECT ticket_id, window, state, opened_at, outcome, case_no, matter, staff_no "
                             "FROM rating_requests WHERE request_id = ?", (rating["request_id"],)).fetchone()
            if row is None:
                return RatingOutcome(False, "no such rating request")
            ticket_id, window, state, opened_at, outcome, case_no, matter, served_by = row
            # Dated when the resident pressed: the pad says how long ago (a rating kept on its flash through
            # an outage), bounded by when the request was opened and by now.
            rated_at = now
            if rating.get("age_ms") is not None:
                rated_at = min(now, max(opened_at, now - rating["age_ms"] / 1000))
            ticket = self._load(db, ticket_id)
            if window != rating["window"] or ticket.number != rating["ticket"]:
                return RatingOutcome(False, "rating does not match its request's window and ticket")
            if db.execute("SELECT 1 FROM ratings WHERE ticket_id = ?", (ticket_id,)).fetchone():
                return RatingOutcome(False, f"ticket {ticket.number} is already rated")
            if state != "open" and outcome not in (messages.RATING_SKIPPED, messages.RATING_PAD_OFFLINE):
                return RatingOutcome(False, "rating request is closed")
            # A pad that was offline (or answered after staff moved on) still counts: its press is the truth.
            db.execute("INSERT INTO ratings (rating_id, request_id, ticket_id, window, score, device_id, received_at, "
                       "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (rating["rating_id"], rating["request_id"], ticket_id, window, rating["score"], device_id, now,
                        rating.get("reason")))
            db.execute("UPDATE rating_requests SET state = 'closed', closed_at = ?, outcome = ? WHERE request_id = ?",
                       (rated_at, messages.RATING_RATED if rating["score"] else messages.RATING_TIMEOUT,
                        rating["request_id"]))
            staff_no = served_by or self._staff_no(db, window)  # who served, though someone else sits there now
            event = messages.make(
                "rating_event", event_id=uuid.uuid4().hex, rating_id=rating["rating_id"], ticket=ticket.number,
                service=ticket.queue_service or ticket.service, window=window, staff_no=staff_no or None,
                score=rating["score"], reason=rating.get("reason"), case_no=case_no, matter=matter, ts=rated_at)
            self.store.enqueue(db, topics.build(topics.RATING_EVENT, center=self.config.code),
                               messages.encode("rating_event", event), 1, False, now)
        log.info("window %d: %s rated %s", window, ticket.number, messages.RATING_LABELS[rating["score"]])
        self._notify(QueueChange(RATED, ticket, window, rating["request_id"], rating["score"]))
        return RatingOutcome(True, "accepted")

    def _add_reason(self, db, rating: dict, now: float) -> RatingOutcome:
        """An accepted rating again: with a 差评's reason, that reason (docs/protocol.md, rating_submitted).

        The pad sends the score at the press and the same rating with `reason` once the resident picked
        one; the reason is stored once and forwarded as a second rating_event of the rating.
        """
        reason = rating.get("reason")
        if reason is None:
            return RatingOutcome(False, "duplicate delivery of an accepted rating", already_stored=True)
        request_id, ticket_id, window, score, known, rated_at, case_no, matter, served_by = db.execute(
            "SELECT r.request_id, r.ticket_id, r.window, r.score, r.reason, q.closed_at, q.case_no, q.matter, "
            "q.staff_no "
            "FROM ratings r "
            "JOIN rating_requests q ON q.request_id = r.request_id WHERE r.rating_id = ?",
            (rating["rating_id"],)).fetchone()
        if known is not None:
            return RatingOutcome(False, "duplicate delivery of the rating's reason", already_stored=True)
        if (request_id, window, score) != (rating["request_id"], rating["window"], rating["score"]):
            return RatingOutcome(False, "reason does not match its rating's request, window and score")
        db.execute("UPDATE ratings SET reason = ? WHERE rating_id = ?", (reason, rating["rating_id"]))
        ticket = self._load(db, ticket_id)
        event = messages.make(
            "rating_event", event_id=uuid.uuid4().hex, rating_id=rating["rating_id"], ticket=ticket.number,
            service=ticket.queue_service or ticket.service, window=window,
            staff_no=served_by or self._staff_no(db, window) or None, score=score, reason=reason, case_no=case_no,
            matter=matter, ts=rated_at or now)
        self.store.enqueue(db, topics.build(topics.RATING_EVENT, center=self.config.code),
                           messages.encode("rating_event", event), 1, False, now)
        log.info("window %d: %s 差评 reason %s", window, ticket.number, messages.RATING_REASON_LABELS[reason])
        return RatingOutcome(True, "reason added")

    # -- what displays and pages show -----------------------------------

    def display_payload(self, window: int) -> dict:
        rows = self.store.query(f"SELECT {WINDOW_COLUMNS} FROM windows WHERE number = ?", (window,))
        state = WindowState(*rows[0]) if rows else WindowState(window, None, 0, OPEN, 0, None, None, None)
        ticket = self.store.ticket(state.current_ticket_id) if state.current_ticket_id is not None else None
        if state.state in (PAUSED, CLOSED):
            return messages.make("window_display", window=window, state=messages.DISPLAY_PAUSED,
                                 ticket="", text="暂停服务", call_seq=state.call_seq)
        if ticket is None or ticket.status != rules.SERVING:
            # 亮牌上岗: the board shows who serves here with its idle text (no 职务: its font may lack the glyphs).
            staff = f"{state.staff_name} 工号{state.staff_no}" if state.staff_no and state.staff_name else None
            return messages.make("window_display", window=window, state=messages.DISPLAY_IDLE,
                                 ticket=ticket.number if ticket else "", text="欢迎光临", call_seq=state.call_seq,
                                 staff=staff)
        return messages.make("window_display", window=window, state=messages.DISPLAY_SERVING, ticket=ticket.number,
                             text=rules.display_call_text(ticket.number, window), call_seq=state.call_seq)

    def rating_request_payload(self, window: int) -> dict | None:
        rows = self.store.query(
            "SELECT r.request_id, r.state, t.number, t.service FROM rating_requests r JOIN tickets t "
            "ON t.id = r.ticket_id WHERE r.window = ? ORDER BY r.opened_at DESC LIMIT 1", (window,))
        if not rows:
            return None
        request_id, state, number, service = rows[0]
        config = self.config.window(window)
        logged_in = self.store.query("SELECT staff_no, staff_name FROM windows WHERE number = ?", (window,))
        staff_no, staff_name = logged_in[0] if logged_in and logged_in[0][0] else (config.staff_no, config.staff_name)
        return messages.make(
            "rating_request", request_id=request_id, window=window, state=state, ticket=number,
            service=self.config.service(service).name, staff_no=staff_no or None,
            staff_name=staff_name or None, timeout_s=self.config.rating_timeout_s)

    def snapshot(self) -> dict:
        """Everything the kiosk, staff and hall pages show, as plain JSON: public. The 工号 of staff on duty is
        shown (亮牌上岗, as the rules ask), and is no secret: a PIN signs staff in."""
        now = self.clock()
        day = self.today(now)
        tickets = self.store.tickets_of_day(day)
        waiting_views = [t.view() for t in tickets if t.status == rules.WAITING]
        states = self.window_states()
        by_id = {t.id: t for t in tickets}
        windows = []
        current_calls: list[TicketRow] = []
        for window in self.config.windows:
            state = states.get(window.number) or WindowState(window.number, None, 0, OPEN, 0, None, None, None)
            display = self.display_payload(window.number)
            current = by_id.get(state.current_ticket_id) if state.current_ticket_id else None
            serving = current is not None and current.status == rules.SERVING
            if window.retiring and not serving:
                continue  # removed by the county, its last ticket done: gone with the next configuration
            if serving and display["state"] == messages.DISPLAY_SERVING:
                current_calls.append(current)
            order = rules.call_order(waiting_views, window.services, window.number, now, self.fairness,
                                     state.priority_streak, WAITING_LIST_LENGTH)
            waiting_count = sum(1 for t in waiting_views if rules.callable_by(t, window.number, window.services))
            windows.append({
                "number": window.number, "services": list(window.services), "state": display["state"],
                "window_state": state.state, "available": self._is_available(state),
                "ticket": display["ticket"] if display["state"] == messages.DISPLAY_SERVING else "",
                "text": display["text"], "call_seq": state.call_seq,
                # Names, as the hall shows them (公开).
                "staff_name": state.staff_name or "", "attended": bool(state.staff_no),
                "assigned_staff_name": window.staff_name,
                **self._on_duty(state.staff_no),
                "recall_count": current.recall_count if serving else 0,
                "call_reason": current.call_reason if serving else "",
                "waiting_count": waiting_count,
                "waiting": [t.number for t in order],
                "waiting_detail": [{"number": t.number, "priority": rules.priority_class(t, now) or "",
                                    "waited_s": round(now - t.issued_at)} for t in order],
            })
        services = []
        for s in self.config.services:
            count = sum(1 for t in waiting_views if t.service == s.prefix and t.target_window is None)
            wait_s = self.estimate_wait_s(s.prefix, count)
            services.append({"prefix": s.prefix, "name": s.name, "waiting": count, "wait_s": wait_s,
                             "wait_text": rules.wait_minutes_text(wait_s), "open_windows": self.open_windows(s.prefix)})
        missed = [{"ticket": t.number, "service": t.queue_service or t.service, "window": t.window,
                   "missed_at": t.missed_at} for t in tickets if t.status == rules.MISSED]
        called = sorted((t for t in tickets if t.called_at and t.window), key=lambda t: t.called_at,
                        reverse=True)[:8]
        recent = [{"ticket": t.number, "window": t.window,
                   "text": rules.display_call_text(t.number, t.window)} for t in called]
        # The calls residents should answer now, latest first: a window serving the number it called. A missed,
        # transferred or finished number, or a paused window, is no longer called (the hall's banner).
        calling = [{"ticket": t.number, "window": t.window, "text": rules.display_call_text(t.number, t.window)}
                   for t in sorted(current_calls, key=lambda t: t.called_at or 0, reverse=True)]
        ratings = self.store.query(
            "SELECT COUNT(*) FROM ratings r JOIN tickets t ON t.id = r.ticket_id WHERE t.business_day = ?", (day,))
        return {"center": {"code": self.config.code, "name": self.config.name}, "business_day": day,
                "services": services, "windows": windows, "recent_calls": recent, "calling": calling,
                "missed": missed,
                "unattended": [w["number"] for w in windows if not w["attended"]],
                "notice": self.config.queue.notice,
                "issued_today": len(tickets), "rated_today": ratings[0][0]}
