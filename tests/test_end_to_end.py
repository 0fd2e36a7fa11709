"""One service center end to end, against real Mosquitto brokers.

The fleet and the edge agent run as the programs a user starts; the three
windows' displays and pads run the real firmware under CPython with
simulated hardware. A resident takes a ticket at the kiosk, window 3 calls
and finishes it, the resident rates it once, and the county sees it all.
"""

from __future__ import annotations

import json
import signal
import sqlite3

import httpx
import paho.mqtt.client as mqtt
import pytest

from firmware.sim.center import SimulatedCenter
from fleet.auth.bootstrap import ensure_user, issue_token
from protocol import messages, topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.loop import LoopThread
from tests.support.mqtt import Recorder
from tests.support.processes import Program
from tests.support.staff import signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker


@pytest.fixture
def county(tmp_path, broker_factory, fleet_database_url):
    """Brokers, fleet, edge agent and simulated devices of one center, torn down afterwards."""
    county_broker = broker_factory("county")
    center_broker = broker_factory("center")
    fleet_port, edge_port = free_port(), free_port()
    # The fleet's API needs a token: a read-only user of the whole county, made before the fleet starts.
    ensure_user(fleet_database_url, "end-to-end", "read_only", "end-to-end-password")
    fleet_api = httpx.Client(base_url=f"http://127.0.0.1:{fleet_port}", headers={
        "Authorization": "Bearer " + issue_token(fleet_database_url, "end-to-end", "tests")})
    fleet = Program(
        ["-m", "fleet", "--database-url", fleet_database_url, "--broker",
         f"mqtt://127.0.0.1:{county_broker.port}", "--port", str(fleet_port), "--heartbeat-timeout", "60"],
        tmp_path / "fleet.log", f"http://127.0.0.1:{fleet_port}/healthz").start()
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, edge_port)
    edge = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log",
                   f"http://127.0.0.1:{edge_port}/api/health").start()
    with LoopThread() as loop:
        devices = SimulatedCenter(CENTER_CODE, "127.0.0.1", center_broker.port, [1, 2, 3], tmp_path / "devices",
                                  health_interval_s=5, log=lambda *a: None)
        loop.run(devices.start())
        loop.run(devices.wait_online(15))
        try:
            yield {"fleet": f"http://127.0.0.1:{fleet_port}", "edge": f"http://127.0.0.1:{edge_port}",
                   "devices": devices, "loop": loop, "dir": tmp_path, "edge_program": edge,
                   "center_broker": center_broker, "fleet_api": fleet_api}
        finally:
            loop.run(devices.stop())
            edge.stop()
            fleet.stop()
            fleet_api.close()


def fleet_center(fleet_api: httpx.Client) -> dict:
    centers = fleet_api.get("/api/centers").json()
    return next((c for c in centers if c["code"] == CENTER_CODE), {})


def test_ticket_call_finish_and_rating_reach_display_pad_edge_and_county(county):
    edge, fleet, devices, loop = county["edge"], county["fleet_api"], county["devices"], county["loop"]
    display, pad = devices.display(3), devices.pad(3)

    # 1. A resident takes a ticket for 社保业务 at the kiosk; it is printed as GB18030.
    ticket = httpx.post(f"{edge}/api/tickets", json={"service": "A"}).json()
    assert ticket["number"] == "A001" and ticket["printed"] is True
    printed = (county["dir"] / "edge" / "data" / "printer.bin").read_bytes()
    assert "社保业务".encode("gb18030") in printed and b"A001" in printed

    # 2. Window 3 presses 下一位: its display shows the number and the call.
    window3 = signed_in(edge, 3)
    called = window3.press("next").json()
    assert (called["changed"], called["ticket"]) == (True, "A001")
    wait_until(lambda: display.lines == ["A001", "请A001号到3号窗口"], what="window 3's display to show A001")
    assert devices.display(1).lines != display.lines  # only window 3 was called

    # 3. 办结 opens the rating on window 3's pad; one press counts, a second is refused.
    finished = window3.press("finish").json()
    assert finished["ticket"] == "A001"
    wait_until(lambda: loop.call(lambda: pad.app.is_open), what="the rating pad to open")
    assert any("请对本次服务进行评价" in line for line in pad.lines)
    # A device that is not window 3's pad (here its display) cannot rate, even under its own topic.
    request = loop.call(lambda: dict(pad.app.request))
    forged = messages.make("rating_submitted", rating_id="forged-1", request_id=request["request_id"],
                           ticket="A001", window=3, score=1)
    forger = Recorder(county["center_broker"].port)
    forger.publish(topics.build(topics.RATING_SUBMITTED, center=CENTER_CODE, device=display.device_id),
                   messages.encode("rating_submitted", forged))
    forger.close()
    wait_until(lambda: "rating forged-1 from " + display.device_id + " refused: it is not the rating pad"
               in (county["dir"] / "edge.log").read_text(), what="the forged rating refused")
    assert loop.call(pad.press, 5) is True
    assert loop.call(pad.press, 1) is False

    # 4. The edge stored the rating once, bound to the ticket and window.
    db = county["dir"] / "edge" / "data" / "edge.sqlite3"

    def stored_ratings() -> list[tuple]:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT t.number, r.window, r.score FROM ratings r "
                                "JOIN tickets t ON t.id = r.ticket_id").fetchall()

    wait_until(stored_ratings, what="the rating stored at the edge")
    assert stored_ratings() == [("A001", 3, 5)]

    # 5. The county's fleet registered the center and its 6 devices, with today's counts.
    wait_until(lambda: fleet_center(fleet).get("ratings_today") == 1, what="the rating at the county")
    center = fleet_center(fleet)
    assert center["edge_online"] is True
    assert center["tickets_today"] == 1
    assert (center["devices_online"], center["devices_total"]) == (6, 6)
    devices_at_fleet = fleet.get(f"/api/centers/{CENTER_CODE}").json()["devices"]
    roles = sorted((d["role"], d["window"]) for d in devices_at_fleet)
    assert roles == sorted([("queue_display", w) for w in (1, 2, 3)] + [("rating_pad", w) for w in (1, 2, 3)])


def test_a_device_that_dies_is_marked_offline_and_comes_back_with_a_new_session(county):
    fleet, devices, loop = county["fleet_api"], county["devices"], county["loop"]
    display = devices.display(2)

    def fleet_device() -> dict:
        center = fleet.get(f"/api/centers/{CENTER_CODE}").json()
        return next(d for d in center["devices"] if d["device_id"] == display.device_id)

    wait_until(lambda: fleet_device()["online"], what="window 2's display online at the county")
    first_session = fleet_device()["session"]
    loop.call(devices.abort, display.device_id)  # the connection drops without a goodbye: the will fires
    wait_until(lambda: not fleet_device()["online"] or fleet_device()["session"] > first_session,
               what="the will or the reconnection to reach the county")
    # The firmware reconnects by itself; the new session's birth wins over the old will.
    wait_until(lambda: fleet_device()["online"] and fleet_device()["session"] > first_session,
               what="window 2's display back online with a higher session")


def retained_display(port: int, window: int) -> dict:
    """What a display that boots now would get from the center broker."""
    got: list[dict] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topics.build(topics.WINDOW_DISPLAY, center=CENTER_CODE, window=window), qos=1)
    client.loop_start()
    try:
        return wait_until(lambda: got[-1] if got else None, what=f"window {window}'s retained display")
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_restarted_edge_agent_puts_every_display_back(county):
    edge, devices, broker = county["edge"], county["devices"], county["center_broker"]
    httpx.post(f"{edge}/api/tickets", json={"service": "B"})
    signed_in(edge, 2).press("next").raise_for_status()
    wait_until(lambda: devices.display(2).lines == ["B001", "请B001号到2号窗口"], what="window 2 shows B001")
    program = county["edge_program"]
    program.stop(signal.SIGKILL)
    broker.restart()  # a broker without persistence: every retained display is gone
    program.start()
    # The agent republished what every window showed from its own store.
    assert retained_display(broker.port, 2)["ticket"] == "B001"
    assert retained_display(broker.port, 3)["state"] == "idle"
    assert httpx.get(f"{edge}/api/state").json()["windows"][1]["ticket"] == "B001"
    wait_until(lambda: devices.display(2).lines == ["B001", "请B001号到2号窗口"], what="window 2 still shows B001")


@pytest.mark.browser
def test_a_bad_rating_and_its_reason_picked_on_the_pad_show_on_the_county_case_page(county, page):
    edge, fleet, devices, loop = county["edge"], county["fleet_api"], county["devices"], county["loop"]
    pad = devices.pad(3)
    httpx.post(f"{edge}/api/tickets", json={"service": "A"}).raise_for_status()
    window3 = signed_in(edge, 3)
    window3.press("next").raise_for_status()
    window3.press("finish").raise_for_status()
    wait_until(lambda: loop.call(lambda: pad.app.is_open), what="the rating pad to open")

    # 非常不满意 (the rightmost button) goes at once; the pad then asks why, each reason in turn on its screen.
    assert loop.call(pad.press, 1) is True
    wait_until(lambda: "请选择不满意原因" in pad.lines, what="the pad to ask the reason")
    assert loop.call(lambda: pad.app.button_labels())[1] == "服务效率"
    assert loop.call(pad.press, 4) is True  # the second button from the left: 服务效率
    wait_until(lambda: pad.lines == ["谢谢您的评价", "服务效率"], what="the pad to thank for the reason")

    def case() -> dict | None:
        cases = fleet.get("/api/cases").json()
        return cases[0] if cases and cases[0]["reason"] else None

    found = wait_until(case, what="the 差评's case at the county with its reason")
    assert (found["ticket"], found["window"], found["score"], found["reason"]) == ("A001", 3, 1, "efficiency")
    assert fleet_center(fleet)["ratings_today"] == 1  # the reason is no second rating

    page.goto(county["fleet"] + "/login")
    page.fill("#username", "end-to-end")
    page.fill("#password", "end-to-end-password")
    page.click("#login-submit")
    page.wait_for_selector("#nav")
    page.goto(f"{county['fleet']}/cases/{found['id']}")
    assert page.locator("#case-reason").inner_text() == "服务效率"
    assert page.locator("#case-score").inner_text() == "非常不满意"
