"""A double click, a retried request or two callers open on one window: every action happens once.

Each test sends the same request twice at the same moment to the real agent (real uvicorn, SQLite and
Mosquitto) and checks the queue afterwards: no resident lost, nothing done twice, and both requests
answered with where the window is now.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from edge_agent.queue.service import MARKED, REQUEUED, WINDOW
from tests.edge.test_pages import make_agent  # noqa: F401  (the running agent fixture)
from tests.support.escpos_decoder import decode
from tests.support.staff import PINS, Caller, set_pins, signed_in, window_seen

pytestmark = pytest.mark.broker


def twice(caller: Caller, path: str, body: dict) -> list[httpx.Response]:
    """The same POST sent twice concurrently from one signed-in caller, as a double click or a retry does.

    On a thread of its own: the browser tests leave Playwright's event loop running on this one.
    """

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=caller.base, cookies=caller.client.cookies) as client:
            return list(await asyncio.gather(client.post(path, json=body), client.post(path, json=body)))

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, both()).result()


def ticket_row(center, number: str) -> tuple:
    return center.agent.store.query(
        "SELECT status, window, recall_count FROM tickets WHERE number = ?", (number,))[0]


def window_of(center, number: int) -> dict:
    return next(w for w in center.agent.snapshot()["windows"] if w["number"] == number)


def take(center, service: str, count: int) -> None:
    for _ in range(count):
        center.post("/api/tickets", service=service)


def test_a_double_click_on_next_calls_one_resident_and_loses_none(make_agent):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 3)
    assert w3.post("/api/windows/3/next", ticket="", call_seq=0).json()["ticket"] == "A001"

    answers = twice(w3, "/api/windows/3/next", {"ticket": "A001", "call_seq": 1})

    assert ticket_row(center, "A002")[:2] == ("serving", 3)  # called, not closed 13 ms later
    assert window_of(center, 3)["waiting"] == ["A003"]  # nobody skipped over
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["changed"] for a in answers) == [False, True]
    assert all(a.json()["window"] == {"ticket": "A002", "call_seq": 2, "window_state": "open"} for a in answers)


def test_next_on_an_idle_window_twice_calls_one(make_agent):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 2)
    answers = twice(w3, "/api/windows/3/next", {"ticket": "", "call_seq": 0})
    assert ticket_row(center, "A001")[0] == "serving" and ticket_row(center, "A002")[0] == "waiting"
    assert sorted(a.json()["changed"] for a in answers) == [False, True]


def test_a_double_click_on_recall_calls_again_once(make_agent):  # noqa: F811
    center = make_agent(recall_limit=3)
    w3 = signed_in(center.base, 3)
    take(center, "A", 1)
    w3.post("/api/windows/3/next", ticket="", call_seq=0).json()
    answers = twice(w3, "/api/windows/3/recall", {"ticket": "A001", "call_seq": 1})
    assert [a.status_code for a in answers] == [200, 200]
    assert ticket_row(center, "A001")[2] == 1
    assert window_seen(center.base, 3) == {"ticket": "A001", "call_seq": 2}


def test_a_double_click_on_finish_asks_for_one_rating_and_refuses_nothing(make_agent):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 1)
    w3.post("/api/windows/3/next", ticket="", call_seq=0).json()
    answers = twice(w3, "/api/windows/3/finish", {"ticket": "A001"})
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["changed"] for a in answers) == [False, True]
    requests = center.agent.store.query("SELECT COUNT(*) FROM rating_requests r JOIN tickets t "
                                        "ON t.id = r.ticket_id WHERE t.number = 'A001'")
    assert requests == [(1,)]


def test_a_double_click_on_skip_misses_the_resident_once(make_agent):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 2)
    w3.post("/api/windows/3/next", ticket="", call_seq=0).json()
    answers = twice(w3, "/api/windows/3/skip", {"ticket": "A001"})
    assert [a.status_code for a in answers] == [200, 200]
    assert ticket_row(center, "A001")[0] == "missed"
    assert ticket_row(center, "A002")[0] == "waiting"  # the skip did not become a call


def test_a_double_click_on_transfer_moves_the_ticket_once(make_agent):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 1)
    w3.post("/api/windows/3/next", ticket="", call_seq=0).json()
    answers = twice(w3, "/api/windows/3/transfer", {"ticket": "A001", "service": "B"})
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["changed"] for a in answers) == [False, True]
    assert ticket_row(center, "A001")[0] == "waiting"


def test_a_request_naming_an_old_ticket_changes_nothing(make_agent):  # noqa: F811
    """A caller page that missed an update (or a request delayed in the network) names a ticket gone by."""
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 2)
    w3.post("/api/windows/3/next", ticket="", call_seq=0).json()
    w3.post("/api/windows/3/next", ticket="A001", call_seq=1).json()
    for action in ("finish", "skip"):
        answer = w3.post(f"/api/windows/3/{action}", ticket="A001").json()
        assert answer["changed"] is False and answer["window"]["ticket"] == "A002"
    assert ticket_row(center, "A002")[0] == "serving"


def test_staff_actions_must_name_what_they_act_on(make_agent):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 1)
    for action in ("next", "recall", "skip", "finish", "transfer"):
        assert w3.post(f"/api/windows/3/{action}").status_code == 422, action
    assert ticket_row(center, "A001")[0] == "waiting"


def test_requeue_green_pause_and_login_twice_do_it_once(make_agent):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    take(center, "A", 3)
    w3.post("/api/windows/3/next", ticket="", call_seq=0).json()
    w3.post("/api/windows/3/skip", ticket="A001").json()
    changes: list[tuple[str, int | None]] = []  # what the queue told its listeners (displays, voice, county)
    center.loop.call(center.agent.queue.listeners.append, lambda c: changes.append((c.kind, c.window)))

    assert [a.status_code for a in twice(w3, "/api/tickets/A001/requeue", {})] == [200, 200]
    assert ticket_row(center, "A001")[0] == "waiting"
    assert [a.status_code for a in twice(w3, "/api/tickets/A003/green", {})] == [200, 200]
    assert changes == [(REQUEUED, None), (MARKED, None)]

    sign_ins = twice(Caller(center.base, 1), "/api/windows/1/login", {"staff_no": "1001", "pin": PINS["1001"]})
    assert [a.status_code for a in sign_ins] == [200, 200]
    w1 = signed_in(center.base, 1, pins_set=True)
    assert [a.status_code for a in twice(w1, "/api/windows/1/pause", {})] == [200, 200]
    assert window_of(center, 1)["window_state"] == "paused"
    assert [a.status_code for a in twice(w1, "/api/windows/1/resume", {})] == [200, 200]
    assert window_of(center, 1)["window_state"] == "open"
    attendance = w1.client.get("/api/attendance").json()
    assert [(r["window"], r["staff_no"]) for r in attendance] == [(3, "1003"), (1, "1001")]  # one sign-in each
    assert all(kind == WINDOW for kind, _ in changes[2:])


def test_a_double_tap_at_the_kiosk_gives_one_ticket_printed_once(make_agent, tmp_path):  # noqa: F811
    center = make_agent()
    w3 = signed_in(center.base, 3)
    answers = twice(w3, "/api/tickets", {"service": "A", "request_id": "tap-1"})
    assert [a.status_code for a in answers] == [200, 200]
    assert {a.json()["number"] for a in answers} == {"A001"}
    assert sorted(a.json()["repeated"] for a in answers) == [False, True]
    assert center.agent.store.query("SELECT COUNT(*) FROM tickets") == [(1,)]
    assert len(decode((tmp_path / "data" / "printer.bin").read_bytes()).cuts) == 1  # printed once
    # A new tap is a new ticket.
    assert center.post("/api/tickets", service="A", request_id="tap-2")["number"] == "A002"


def test_a_double_click_on_the_caller_page_calls_one_resident(make_agent, page):  # noqa: F811
    """In Chromium: the page itself drops the second click of a double click on 下一位."""
    center = make_agent()
    set_pins(center.base)
    take(center, "A", 3)
    page.goto(f"{center.base}/staff/3")
    page.locator("#staff-no").fill("1003")
    page.locator("#staff-pin").fill(PINS["1003"])
    page.get_by_role("button", name="登录").click()
    page.locator("#staff-name").filter(has_text="王芳").wait_for()
    page.locator("#waiting-count").filter(has_text="3").wait_for()

    page.get_by_role("button", name="下一位").dblclick()
    page.locator("#current").filter(has_text="A001").wait_for()
    page.locator("#next:not(.busy)").wait_for()  # the guard is over: a second click would have been sent
    assert window_of(center, 3)["waiting"] == ["A002", "A003"]
    assert ticket_row(center, "A001")[0] == "serving"
