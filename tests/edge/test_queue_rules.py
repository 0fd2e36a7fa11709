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
