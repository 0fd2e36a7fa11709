from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from edge_agent.queue import rules
from edge_agent.queue.rules import TicketView

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


def test_business_day_follows_shanghai_time_and_the_day_start():
    assert rules.business_day(at("2026-11-23 09:00"), time(8, 30)) == "2026-11-23"
    # Before the day starts, the moment still belongs to the previous business day.
    assert rules.business_day(at("2026-11-23 08:29"), time(8, 30)) == "2026-11-22"
    # 00:30 in Shanghai is still the previous UTC day: the local day decides.
    assert rules.business_day(at("2026-11-24 00:30"), time(0, 0)) == "2026-11-24"


def test_ticket_number_has_prefix_and_three_digits():
    assert rules.ticket_number("A", 1) == "A001"
    assert rules.ticket_number("B", 12) == "B012"
    assert rules.ticket_number("C", 1000) == "C1000"
    with pytest.raises(ValueError):
        rules.ticket_number("A", 0)


def test_pick_next_takes_the_earliest_ticket_of_the_windows_services():
    waiting = [
        TicketView(1, "B001", "B", rules.WAITING, 10.0),
        TicketView(2, "A001", "A", rules.WAITING, 11.0),
        TicketView(3, "A002", "A", rules.WAITING, 12.0),
        TicketView(4, "A000", "A", rules.SERVING, 1.0),
    ]
    assert rules.pick_next(waiting, ["A"]).number == "A001"
    assert rules.pick_next(waiting, ["A", "B"]).number == "B001"
    assert rules.pick_next(waiting, ["C"]) is None


def test_people_ahead_counts_waiting_tickets_of_the_same_service():
    waiting = [TicketView(1, "A001", "A", rules.WAITING, 1), TicketView(2, "B001", "B", rules.WAITING, 2),
               TicketView(3, "A002", "A", rules.SERVING, 3)]
    assert rules.people_ahead(waiting, "A") == 1


def test_display_call_text():
    assert rules.display_call_text("A001", 3) == "请A001号到3号窗口"


# -- who 下一位 calls: docs/queue-rules.md, one test per rule -------------------------------------------------

NOW = 100_000.0
FAIR = rules.Fairness(interleave=2, max_wait_s=1800)


def ticket(id: int, service: str = "A", issued_ago: float = 60, **kw) -> TicketView:
    return TicketView(id, f"{service}{id:03d}", service, rules.WAITING, NOW - issued_ago + id / 1000, **kw)


def choose(waiting, services=("A",), window=1, streak=0, fairness=FAIR):
    return rules.choose_next(waiting, list(services), window, NOW, fairness, streak)


def test_rule_1_the_earliest_issued_ticket_of_the_windows_services_when_nobody_has_priority():
    waiting = [ticket(2, issued_ago=100), ticket(1, issued_ago=300), ticket(3, "B", issued_ago=900)]
    choice = choose(waiting)
    assert (choice.ticket.id, choice.reason) == (1, rules.BY_ORDER)
    assert choose([ticket(3, "B")], services=("A",)) is None


def test_rule_2_a_requeued_no_show_goes_first_then_green_then_appointment_in_slot():
    plain = ticket(1, issued_ago=600)
    green = ticket(2, issued_ago=60, priority=rules.GREEN)
    appointment = ticket(3, issued_ago=30, priority=rules.APPOINTMENT, slot_end=NOW + 600)
    requeued = ticket(4, issued_ago=500, requeued_at=NOW - 5)
    assert choose([plain, green, appointment, requeued]).reason == rules.BY_REQUEUE
    assert choose([plain, green, appointment]).ticket.id == 2
    assert choose([plain, appointment]).reason == rules.BY_APPOINTMENT
    # Several re-queued: in the order staff put them back.
    later = ticket(5, issued_ago=900, requeued_at=NOW - 1)
    assert choose([later, requeued]).ticket.id == 4


def test_rule_3_an_appointment_after_its_slot_is_a_normal_ticket():
    early_plain = ticket(1, issued_ago=600)
    late_appointment = ticket(2, issued_ago=60, priority=rules.APPOINTMENT, slot_end=NOW - 1)
    assert choose([late_appointment, early_plain]).ticket.id == 1
    assert rules.priority_class(late_appointment, NOW) is None


def test_rule_4_after_the_interleave_count_of_priority_calls_one_normal_ticket_goes():
    plain = ticket(1, issued_ago=600)
    greens = [ticket(i, issued_ago=60, priority=rules.GREEN) for i in (2, 3, 4)]
    assert choose([plain, *greens], streak=1).reason == rules.BY_GREEN
    choice = choose([plain, *greens], streak=2)
    assert (choice.ticket.id, choice.reason) == (1, rules.BY_INTERLEAVE)
    # Without a normal ticket waiting, priority continues; interleave 0 never interleaves.
    assert choose(greens, streak=5).reason == rules.BY_GREEN
    assert choose([plain, *greens], streak=9, fairness=rules.Fairness(0, 1800)).reason == rules.BY_GREEN


def test_rule_4_the_streak_counts_priority_calls_in_a_row():
    green = rules.Choice(ticket(1, priority=rules.GREEN), rules.BY_GREEN)
    plain = rules.Choice(ticket(2), rules.BY_ORDER)
    assert rules.next_priority_streak(green, 1) == 2
    assert rules.next_priority_streak(plain, 2) == 0
    assert rules.next_priority_streak(rules.Choice(ticket(3), rules.BY_INTERLEAVE), 2) == 0


def test_rule_5_a_normal_ticket_waiting_longer_than_the_maximum_goes_before_any_priority():
    starving = ticket(1, issued_ago=1801)
    green = ticket(2, issued_ago=3000, priority=rules.GREEN)
    requeued = ticket(3, issued_ago=60, requeued_at=NOW)
    choice = choose([green, requeued, starving], streak=0)
    assert (choice.ticket.id, choice.reason) == (1, rules.BY_MAX_WAIT)
    assert choose([green, requeued, ticket(4, issued_ago=1799)]).reason == rules.BY_REQUEUE


def test_rule_6_a_ticket_transferred_to_a_window_is_called_by_that_window_only():
    pinned = ticket(1, "B", issued_ago=900, target_window=2)
    other = ticket(2, issued_ago=60)
    assert choose([pinned, other], services=("A",), window=2).ticket.id == 1  # even if 2 does not serve B
    assert choose([pinned, other], services=("A", "B"), window=1).ticket.id == 2
    assert rules.callable_by(pinned, 2, ["C"]) and not rules.callable_by(pinned, 1, ["B"])


def test_rule_7_a_transferred_ticket_keeps_its_issue_time_in_the_new_service():
    moved = TicketView(1, "A001", "B", rules.WAITING, NOW - 900)  # an A ticket now waiting for service B
    fresh = ticket(2, "B", issued_ago=60)
    assert choose([fresh, moved], services=("B",)).ticket.number == "A001"


def test_call_order_lists_the_waiting_as_next_would_call_them():
    plain1, plain2 = ticket(1, issued_ago=600), ticket(2, issued_ago=500)
    greens = [ticket(i, issued_ago=60, priority=rules.GREEN) for i in (3, 4, 5)]
    order = rules.call_order([plain1, plain2, *greens], ["A"], 1, NOW, FAIR)
    assert [t.id for t in order] == [3, 4, 1, 5, 2]


def test_waiting_estimate_shares_people_ahead_among_open_windows():
    assert rules.average_service_s([], 300) == 300
    assert rules.average_service_s([100, 200, 0], 300) == 150
    assert rules.estimate_wait_s(0, 300, 2) == 0
    assert rules.estimate_wait_s(3, 300, 2) == 600  # two rounds of two windows
    assert rules.estimate_wait_s(4, 300, 1) == 1200
    assert rules.estimate_wait_s(4, 300, 0) is None
    assert rules.wait_minutes_text(None) == "暂无窗口办理该业务"
    assert rules.wait_minutes_text(30) == "预计很快就到您"
    assert rules.wait_minutes_text(601) == "预计等候约 11 分钟"


def test_call_order_can_stop_after_the_first_few():
    waiting = [ticket(i, issued_ago=600 - i) for i in range(1, 50)]
    assert [t.id for t in rules.call_order(waiting, ["A"], 1, NOW, FAIR, limit=3)] == [1, 2, 3]
