"""The county's center configuration at the edge: verified, applied live without losing a ticket, kept for the
next start, reported (edge_agent.center_config).

Plain functions first, then the agent itself (real SQLite, no brokers: what it reports waits in its outbox).
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest

from edge_agent.agent import EdgeAgent
from edge_agent.center_config import CenterConfigRefused, county_config, keep_in_flight
from edge_agent.config import parse_config
from edge_agent.queue.service import QueueError
from edge_agent.sign_in import hash_secret
from protocol import messages, signing, topics
from tests.edge.test_pages import make_agent  # noqa: F401  (the fixture: an agent behind uvicorn)
from tests.edge.test_staff_sign_in import raw_config
from tests.support.waiting import wait_until

CENTER = "445202101001"
EDGE_KEY = bytes(range(32))


def sections(**changes) -> dict:
    """A center_config's sections: items A and B, windows 1-3 as the test TOML has them, a roster of four."""
    base = {
        "profile": {"name": "示例镇便民服务中心", "level": "town"},
        "services": [{"prefix": "A", "name": "社保业务"}, {"prefix": "B", "name": "医保业务"}],
        "items": [{"code": "SB-001", "prefix": "A", "name": "城乡居民养老保险参保登记",
                   "materials": [{"name": "居民身份证", "originals": 1, "copies": 1}]},
                  {"code": "YB-001", "prefix": "B", "name": "城乡居民医保参保缴费"}],
        "windows": [{"number": 1, "kind": "general", "services": ["A", "B"], "staff_no": "1001"},
                    {"number": 2, "kind": "dedicated", "services": ["B"], "staff_no": "1002"},
                    {"number": 3, "kind": "dedicated", "services": ["A"], "staff_no": "1003"}],
        "roster": [{"staff_no": "1001", "name": "张敏", "title": "窗口负责人", "windows": [1]},
                   {"staff_no": "1002", "name": "李强", "title": "综合受理员", "windows": [2]},
                   {"staff_no": "1003", "name": "王芳", "title": "社保专员", "windows": [3]},
                   {"staff_no": "1009", "name": "赵丽", "title": "机动岗", "stand_in_for": ["1003"]}],
    }
    base.update(changes)
    return base


def without_window_3() -> dict:
    """Window 3 removed (its staff may sign in at 1 and 2), item B no longer handled here; window 2 takes A."""
    roster = [{**member, "windows": [1, 2]} if member["staff_no"] == "1003" else member
              for member in sections()["roster"]]
    return {"services": [{"prefix": "A", "name": "社保业务"}], "items": [sections()["items"][0]], "roster": roster,
            "windows": [{"number": 1, "kind": "general", "services": ["A"], "staff_no": "1001"},
                        {"number": 2, "kind": "dedicated", "services": ["A"], "staff_no": "1002"}]}


def signed(version: int, key: bytes = EDGE_KEY, **changes) -> bytes:
    payload = signing.make_signed("center_config", key, CENTER, version=version, issued_at=1767576000,
                                  **sections(**changes))
    return messages.encode("center_config", payload)


def local(tmp_path):
    return parse_config({**raw_config(tmp_path), "brokers": {"county": {"edge_key": EDGE_KEY.hex()}}})


def test_county_sections_replace_the_tomls_and_keep_what_is_local(tmp_path):
    toml = local(tmp_path)
    config = county_config(toml, messages.decode("center_config", signed(1)))
    assert [(w.number, w.services, w.kind, w.staff_name) for w in config.windows] == [
        (1, ("A", "B"), "general", "张敏"), (2, ("B",), "dedicated", "李强"), (3, ("A",), "dedicated", "王芳")]
    assert [(s.prefix, s.name) for s in config.services] == [("A", "社保业务"), ("B", "医保业务")]
    assert config.item("SB-001").materials[0].name == "居民身份证"
    assert config.staff_member("1009").title == "机动岗"
    assert config.staff_member("1009").stand_in_for == ("1003",)
    assert config.staff_member("1009").windows == (3,)  # AB角: where 1003, whom she stands in for, works
    assert config.staff_member("1001").windows == (1,)
    assert (config.data_dir, config.edge_key, config.county_broker) == (toml.data_dir, toml.edge_key,
                                                                        toml.county_broker)


def test_a_configuration_that_makes_no_center_is_refused_naming_every_problem(tmp_path):
    payload = messages.decode("center_config", signed(
        1, windows=[{"number": 1, "kind": "general", "services": ["A", "D"], "staff_no": "1077"}],
        roster=[{"staff_no": "1001", "name": "张敏", "windows": [4], "stand_in_for": ["1099"]}]))
    with pytest.raises(CenterConfigRefused) as refused:
        county_config(local(tmp_path), payload)
    text = str(refused.value)
    for problem in ("window 1 serves unknown service D", "staff 1001: window 4 does not exist",
                    "stands in for 1099", "window 1: its staff 1077 is not on the roster"):
        assert problem in text


def test_protocol_refuses_a_window_listed_twice_or_of_no_known_kind():
    with pytest.raises(Exception, match="listed twice"):
        messages.decode("center_config", signed(1, windows=[{"number": 1, "kind": "general", "services": []}] * 2))
    with pytest.raises(Exception, match="kind must be one of"):
        messages.decode("center_config", signed(1, windows=[{"number": 1, "kind": "综合受理", "services": []}]))


def test_keep_in_flight_keeps_a_serving_window_and_a_service_with_waiting_tickets(tmp_path):
    old = county_config(local(tmp_path), messages.decode("center_config", signed(1)))
    new = county_config(local(tmp_path), messages.decode("center_config", signed(2, **without_window_3())))
    kept = keep_in_flight(new, old, serving={3}, waiting={"B"})
    assert [(w.number, w.services, w.retiring) for w in kept.windows] == [
        (1, ("A", "B"), False), (2, ("A", "B"), False), (3, (), True)]
    assert kept.service("B").offered is False and kept.service("A").offered is True
    # Nothing in flight: nothing kept.
    assert keep_in_flight(new, old, serving=set(), waiting=set()) == new


def reports(agent: EdgeAgent) -> list[dict]:
    topic = topics.build(topics.CENTER_CONFIG_REPORTED, center=CENTER)
    return [json.loads(payload) for (payload,) in
            agent.store.query("SELECT payload FROM outbox WHERE topic = ? ORDER BY id", (topic,))]


@pytest.fixture
def agent(tmp_path):
    agent = EdgeAgent(local(tmp_path))
    yield agent
    agent.store.close()
    agent.retained.close()
    agent.awaiting.close()


def test_applied_live_without_losing_a_ticket(agent):
    queue = agent.queue
    queue.login(3, "1003")
    queue.login(2, "1002")
    serving = queue.issue_ticket("A").ticket.number
    assert queue.call_next(3).number == serving
    waiting_b = queue.issue_ticket("B").ticket.number
    generation = agent.config_generation

    # The county removes window 3 (serving) and stops item B here (a B ticket waits); window 2 takes A.
    assert agent.center_configuration.receive(signed(4, **without_window_3()))
    assert agent.config_generation > generation  # open pages redraw
    assert reports(agent)[-1] == {"v": 1, "version": 4, "status": "applied", "in_force": 4}

    with pytest.raises(QueueError, match="已停止取号"):  # no new B ticket at the kiosk
        queue.issue_ticket("B")
    assert queue.call_next(2).number == waiting_b  # the waiting B ticket is still called
    assert agent.config.window(3).services == ()  # the removed window calls no one new ...
    queue.finish(3)  # ... and finishes its ticket
    assert 3 not in [w["number"] for w in agent.snapshot()["windows"]]  # the pages no longer show it
    assert queue.rating_request_payload(3)["state"] == "open"  # its resident still rates the service
    # The next configuration leaves it out; the staff still signed in there are signed out (考勤 ends).
    assert agent.center_configuration.receive(signed(5, **without_window_3()))
    assert [w.number for w in agent.config.windows] == [1, 2]
    assert not queue.window_states()[3].staff_no


def test_kept_for_the_next_start_and_older_or_forged_versions_are_refused(agent, tmp_path):
    roster = sections()["roster"]
    roster[2] = {**roster[2], "title": "首席代办员", "pin_hash": hash_secret("246810")}
    assert agent.center_configuration.receive(signed(2, roster=roster))
    assert not agent.center_configuration.receive(signed(2, roster=roster))  # the retained copy again: nothing
    assert not agent.center_configuration.receive(signed(1))
    assert not agent.center_configuration.receive(signed(3, key=bytes(32)))
    answers = reports(agent)
    assert [(r["version"], r["status"], r["in_force"]) for r in answers] == [
        (2, "applied", 2), (1, "rejected", 2), (3, "rejected", 2)]
    assert "older than v2" in answers[1]["error"] and "signature" in answers[2]["error"]
    # The county's PIN hash signs 1003 in.
    agent.sign_in.sign_in(3, "1003", "246810", "127.0.0.1")
    on_duty = next(w for w in agent.snapshot()["windows"] if w["number"] == 3)
    assert (on_duty["staff_name"], on_duty["staff_title"], on_duty["staff_no"]) == ("王芳", "首席代办员", "1003")
    # The window's board shows her name and 工号 with its idle text (亮牌上岗; its font may lack the 职务).
    assert agent.queue.display_payload(3)["staff"] == "王芳 工号1003"

    # With no county link: the next start runs the kept version.
    again = EdgeAgent(local(tmp_path))
    try:
        assert again.center_configuration.version == 2
        assert again.config.staff_member("1003").title == "首席代办员"
    finally:
        again.store.close()
        again.retained.close()
        again.awaiting.close()


def tiny_png() -> str:
    """A 1x1 PNG as a data: URL, as the fleet's roster carries a photo."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\xc0\x30\x30")) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.mark.browser
def test_the_hall_shows_the_staff_on_duty_with_title_number_and_photo_after_a_live_change(make_agent, page):  # noqa: F811
    center = make_agent()
    agent = center.agent

    async def sign_in() -> None:
        agent.queue.login(3, "1003")

    center.loop.run(sign_in())
    page.goto(f"{center.base}/hall")
    row = page.locator('tr[data-window="3"]')
    row.locator(".staff").filter(has_text="王芳 · 工号1003").wait_for()

    roster = sections()["roster"]
    roster[2] = {**roster[2], "title": "首席代办员", "photo": tiny_png()}
    payload = messages.decode("center_config", signed(2, roster=roster))

    async def apply() -> None:  # what CenterConfiguration.receive does once the message verified
        agent.apply_center_config(county_config(agent.center_configuration.local, payload))

    center.loop.run(apply())
    row.locator(".staff").filter(has_text="王芳 · 首席代办员 · 工号1003").wait_for()  # the page redrew by itself
    photo = row.locator("img.staff-photo")
    wait_until(lambda: photo.evaluate("img => img.complete && img.naturalWidth") == 1, what="the photo shown")


def test_a_restart_keeps_what_the_queue_still_needs_of_the_configuration_before(agent, tmp_path):
    queue = agent.queue
    queue.login(3, "1003")
    serving = queue.issue_ticket("A").ticket.number
    queue.call_next(3)
    waiting_b = queue.issue_ticket("B").ticket.number
    assert agent.center_configuration.receive(signed(4, **without_window_3()))  # window 3 and item B removed

    # The agent restarts (a power cut) before window 3 finished A001 and before anyone called B001.
    again = EdgeAgent(local(tmp_path))
    try:
        assert again.center_configuration.version == 4
        assert again.config.window(3).retiring and again.config.service("B").offered is False
        again.queue.finish(3)
        assert again.store.query("SELECT status FROM tickets WHERE number = ?", (serving,)) == [("finished",)]
        # The configuration before is gone: a general window (综合受理) calls what no window serves any more.
        again.queue.login(1, "1001")
        assert again.queue.call_next(1).number == waiting_b
    finally:
        again.store.close()
        again.retained.close()
        again.awaiting.close()
