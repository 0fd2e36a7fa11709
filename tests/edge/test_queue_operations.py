"""The queue service's staff and resident operations on a real SQLite file (docs/queue-rules.md)."""

import json
import sqlite3

import pytest

from edge_agent.appointments import Appointment
from edge_agent.config import parse_config
from edge_agent.queue import rules
from edge_agent.queue.service import (
    CALLED,
    RECALLED,
    SKIPPED,
    TRANSFERRED,
    WINDOW,
    QueueError,
    QueueService,
)
from edge_agent.store import EdgeStore
from protocol import messages, topics

CENTER = "445202101001"
START = 1_795_400_000.0  # 2026-11-23 09:33 Shanghai


def raw_config(**queue) -> dict:
    return {
        "center": {"code": CENTER, "name": "示例镇便民服务中心"},
        "services": [{"prefix": "A", "name": "社保业务"}, {"prefix": "B", "name": "医保业务"}],
        "windows": [{"number": 1, "services": ["A", "B"], "staff_no": "1001", "staff_name": "张敏"},
                    {"number": 2, "services": ["B"], "staff_no": "1002", "staff_name": "李强"},
                    {"number": 3, "services": ["A"], "staff_no": "1003", "staff_name": "王芳"}],
        "staff": [{"staff_no": "1009", "name": "赵丽"}],
        "queue": {"recall_limit": 2, "priority_interleave": 2, "max_wait_min": 30, **queue},
    }


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_queue(tmp_path, clock):
    stores = []

    def make(staffed: bool = True, **queue) -> QueueService:
        """A queue whose windows are open with their own staff signed in (windows call only when staffed)."""
        store = EdgeStore(tmp_path / "edge.sqlite3")
        stores.append(store)
        service = QueueService(store, parse_config(raw_config(**queue)), clock)
        if staffed:
            for window in service.config.windows:
                service.login(window.number, window.staff_no)
        return service

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def queue(make_queue):
    return make_queue()


def events(queue: QueueService) -> list[dict]:
    """The county events in the outbox, each checked against the contract."""
    rows = queue.store.pending(1000)
    assert all(topics.parse(r.topic)[0] in (topics.TICKET_EVENT, topics.RATING_EVENT, topics.ATTENDANCE_EVENT)
               for r in rows)
    return [messages.decode("ticket_event", r.payload) for r in rows if topics.parse(r.topic)[0] == "ticket_event"]


def issue(queue, clock, service="A", priority="", gap=10.0):
    clock.advance(gap)
    return queue.issue_ticket(service, priority).ticket


def test_green_channel_goes_first_but_after_two_a_normal_ticket_is_interleaved(queue, clock):
    a1, a2 = issue(queue, clock), issue(queue, clock)
    greens = [issue(queue, clock, priority=rules.GREEN) for _ in range(3)]
    called = [queue.call_next(3).number for _ in range(5)]
    assert called == [greens[0].number, greens[1].number, a1.number, greens[2].number, a2.number]
    priorities = [e.get("priority") for e in events(queue) if e["kind"] == messages.TICKET_CALLED]
    assert priorities == ["green", "green", None, "green", None]


def test_a_normal_ticket_that_waited_too_long_goes_before_green(queue, clock):
    plain = issue(queue, clock)
    clock.advance(31 * 60)
    issue(queue, clock, priority=rules.GREEN)
    assert queue.call_next(3).number == plain.number


def test_recall_is_bounded_and_each_recall_is_a_new_call_on_the_display(queue, clock):
    changes = []
    queue.listeners.append(changes.append)
    issue(queue, clock)
    queue.call_next(3)
    seq = queue.display_payload(3)["call_seq"]
    assert queue.recall(3).recall_count == 1
    assert queue.recall(3).recall_count == 2
    assert queue.display_payload(3)["call_seq"] == seq + 2
    with pytest.raises(QueueError, match="已重呼 2 次"):
        queue.recall(3)
    assert [c.kind for c in changes].count(RECALLED) == 2
    assert [e["kind"] for e in events(queue)].count(messages.TICKET_RECALLED) == 2


def test_skip_puts_the_ticket_on_the_missed_list_and_a_requeued_one_is_called_first(queue, clock):
    first, second, third = issue(queue, clock), issue(queue, clock), issue(queue, clock)
    queue.call_next(3)
    skipped = queue.skip(3)
    assert skipped.status == rules.MISSED
    assert queue.display_payload(3)["state"] == messages.DISPLAY_IDLE
    assert [m["ticket"] for m in queue.snapshot()["missed"]] == [first.number]
    with pytest.raises(QueueError, match="不在过号列表"):
        queue.requeue(second.number)
    assert queue.call_next(3).number == second.number
    queue.requeue(first.number.lower(), window=3)  # typed in lower case at the caller
    assert queue.snapshot()["missed"] == []
    assert queue.call_next(1).number == first.number  # any window of the service, before third
    assert queue.call_next(3).number == third.number
    kinds = [e["kind"] for e in events(queue)]
    assert kinds.count(messages.TICKET_SKIPPED) == 1 and kinds.count(messages.TICKET_REQUEUED) == 1
    requeue_called = [e for e in events(queue) if e["kind"] == "called" and e["ticket"] == first.number][-1]
    assert requeue_called["priority"] == "requeued"


def test_transfer_to_another_service_keeps_the_issue_time(queue, clock):
    a1 = issue(queue, clock, "A")
    b1 = issue(queue, clock, "B")
    queue.call_next(3)  # A001 at window 3 (serves A only)
    moved = queue.transfer(3, to_service="B")
    assert (moved.status, moved.queue_service, moved.issued_at) == (rules.WAITING, "B", a1.issued_at)
    assert queue.display_payload(3)["state"] == messages.DISPLAY_IDLE
    assert queue.call_next(2).number == a1.number  # window 2 serves B: the transferred A001 is older than B001
    assert queue.call_next(2).number == b1.number
    transfer = next(e for e in events(queue) if e["kind"] == messages.TICKET_TRANSFERRED)
    assert (transfer["service"], transfer["to_service"], transfer["window"]) == ("A", "B", 3)
    called_again = [e for e in events(queue) if e["kind"] == "called" and e["ticket"] == a1.number][-1]
    assert called_again["service"] == "B"


def test_transfer_to_a_window_pins_the_ticket_until_that_window_pauses(queue, clock):
    a1, a2 = issue(queue, clock), issue(queue, clock)
    queue.call_next(3)
    with pytest.raises(QueueError, match="不能转到本窗口"):
        queue.transfer(3, to_window=3)
    queue.transfer(3, to_window=2)
    assert queue.call_next(3).number == a2.number  # window 3 no longer sees the pinned A001
    queue.finish(3)
    assert queue.snapshot()["windows"][1]["waiting"] == [a1.number]
    queue.pause(2)  # the window it was pinned to closes: nobody's ticket is stuck there
    assert queue.call_next(3).number == a1.number
    with pytest.raises(QueueError, match="暂停服务，不能转入"):
        queue.transfer(3, to_window=2)


def test_pause_shows_on_the_display_and_blocks_calls_until_resumed(queue, clock):
    changes = []
    queue.listeners.append(changes.append)
    issue(queue, clock)
    queue.call_next(3)
    with pytest.raises(QueueError, match="请先办结"):
        queue.pause(3)
    queue.finish(3)
    queue.pause(3)
    display = queue.display_payload(3)
    assert (display["state"], display["text"]) == (messages.DISPLAY_PAUSED, "暂停服务")
    with pytest.raises(QueueError, match="暂停服务"):
        queue.call_next(3)
    queue.resume(3)
    assert queue.display_payload(3)["state"] == messages.DISPLAY_IDLE
    assert [c.kind for c in changes if c.kind == WINDOW] == [WINDOW, WINDOW]


def test_first_free_window_takes_the_next_ticket(queue, clock):
    a1, a2 = issue(queue, clock), issue(queue, clock)
    assert queue.call_next(1).number == a1.number  # window 1 serves A and B
    assert queue.call_next(3).number == a2.number


def test_login_is_the_attendance_record_and_a_window_calls_only_when_staffed(make_queue, clock):
    queue = make_queue(staffed=False)
    issue(queue, clock)
    assert queue.unattended_windows() == [1, 2, 3]
    with pytest.raises(QueueError, match="请先输入工号和密码登录"):
        queue.call_next(3)
    with pytest.raises(QueueError, match="工号不存在"):
        queue.login(3, "9999")
    queue.login(3, "1009")  # a stand-in (AB角) from [[staff]]
    with pytest.raises(QueueError, match="已在3号窗口登录"):
        queue.login(1, "1009")
    assert queue.call_next(3) is not None
    assert events(queue)[-1]["staff_no"] == "1009"  # the event names who actually served
    with pytest.raises(QueueError, match="请先办结"):
        queue.logout(3)
    queue.finish(3)
    clock.advance(600)
    queue.logout(3)
    assert queue.display_payload(3)["state"] == messages.DISPLAY_PAUSED
    with pytest.raises(QueueError, match="未开放"):
        queue.call_next(3)
    record = queue.attendance()
    assert [(r["window"], r["staff_no"], r["staff_name"]) for r in record] == [(3, "1009", "赵丽")]
    assert record[0]["logout_at"] - record[0]["login_at"] >= 600
    assert queue.unattended_windows() == [1, 2, 3]
    snapshot = queue.snapshot()
    assert snapshot["unattended"] == [1, 2, 3] and snapshot["windows"][2]["window_state"] == "closed"


def test_the_waiting_estimate_uses_recent_service_times_and_open_windows(queue, clock):
    for _ in range(3):
        issue(queue, clock)
    queue.call_next(3)
    clock.advance(120)
    queue.finish(3)  # one A service took 120 s
    estimate = next(s for s in queue.snapshot()["services"] if s["prefix"] == "A")
    assert (estimate["waiting"], estimate["open_windows"]) == (2, 2)  # windows 1 and 3 serve A
    assert estimate["wait_s"] == 120  # 2 ahead over 2 windows: one round
    issued = queue.issue_ticket("A")
    assert (issued.people_ahead, issued.wait_s) == (2, 120)
    queue.pause(3)
    assert queue.issue_ticket("A").wait_s == 3 * 120  # one window left, three ahead
    queue.pause(1)
    assert queue.issue_ticket("A").wait_text == "暂无窗口办理该业务"


def test_an_appointment_checks_in_within_its_slot_once(queue, clock):
    queue.import_appointments([
        Appointment("YY001", "B", START + 600, START + 2400, "张*"),
        Appointment("YY002", "A", START + 7200, START + 9000, "李*"),
        Appointment("YY003", "A", START - 3600, START - 1800, "王*"),
    ])
    plain = issue(queue, clock, "B")
    with pytest.raises(QueueError, match="未找到该预约"):
        queue.check_in("NOPE")
    with pytest.raises(QueueError, match="请届时再来签到"):
        queue.check_in("YY002")
    with pytest.raises(QueueError, match="时段已过"):
        queue.check_in("YY003")
    checked = queue.check_in("YY001")  # 10 min before the slot: within the 15 min early window
    assert (checked.ticket.number, checked.ticket.priority) == ("B002", rules.APPOINTMENT)
    with pytest.raises(QueueError, match="已签到，您的号码是 B002"):
        queue.check_in(" YY001 ")
    assert queue.call_next(2).number == "B002"  # ahead of the earlier plain B001 while the slot lasts
    assert queue.call_next(2).number == plain.number
    assert next(a for a in queue.appointments() if a["code"] == "YY001")["ticket"] == "B002"
    # Re-importing does not move an appointment already checked in.
    queue.import_appointments([Appointment("YY001", "A", START, START + 60, "张*")])
    assert next(a for a in queue.appointments() if a["code"] == "YY001")["service"] == "B"


def test_staff_can_mark_a_waiting_ticket_green(queue, clock):
    first, second = issue(queue, clock), issue(queue, clock)
    queue.mark_green(second.number)
    assert queue.call_next(3).number == second.number
    queue.call_next(3)
    with pytest.raises(QueueError, match="不在等候中"):
        queue.mark_green(first.number)


def test_every_operation_event_follows_the_contract(queue, clock):
    changes = []
    queue.listeners.append(changes.append)
    issue(queue, clock)
    issue(queue, clock)
    queue.call_next(3)
    queue.recall(3)
    queue.skip(3)
    queue.call_next(3)
    queue.transfer(3, to_service="B")
    queue.requeue("A001")
    kinds = [e["kind"] for e in events(queue)]  # decode() validated each one
    assert kinds == ["issued", "issued", "called", "recalled", "skipped", "called", "transferred", "requeued"]
    assert [c.kind for c in changes][2:7] == [CALLED, RECALLED, SKIPPED, CALLED, TRANSFERRED]


def test_a_database_of_the_first_release_is_migrated_in_place(tmp_path, clock):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE tickets (id INTEGER PRIMARY KEY, business_day TEXT NOT NULL, service TEXT NOT NULL,
              seq INTEGER NOT NULL, number TEXT NOT NULL, status TEXT NOT NULL, issued_at REAL NOT NULL,
              called_at REAL, finished_at REAL, window INTEGER, UNIQUE (business_day, service, seq));
            CREATE TABLE windows (number INTEGER PRIMARY KEY, current_ticket_id INTEGER, call_seq INTEGER NOT NULL
              DEFAULT 0, state TEXT NOT NULL DEFAULT 'open');
            INSERT INTO tickets (business_day, service, seq, number, status, issued_at)
              VALUES ('2026-11-23', 'A', 1, 'A001', 'waiting', 1795399000);
        """)
    store = EdgeStore(path)
    try:
        queue = QueueService(store, parse_config(raw_config()), clock)
        queue.login(3, "1003")
        assert queue.issue_ticket("A").ticket.number == "A002"
        assert queue.call_next(3).number == "A001"
    finally:
        store.close()


def test_the_snapshot_is_plain_json(queue, clock):
    issue(queue, clock)
    json.dumps(queue.snapshot(), ensure_ascii=False)
