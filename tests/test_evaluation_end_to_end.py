"""好差评 follow-through end to end (issue 14): the edge and the fleet as programs, real Mosquitto brokers, the
window's pad running the real firmware under CPython, the kiosk in headless Chromium, the province a stand-in
HTTP server.

The window's business system finishes a case with its 办件编号 and asks for the rating; the resident gives a 差评
with a reason and leaves a phone number at the kiosk's callback form. The number reaches the case at the county,
sealed, shown to its assignee alone, and is gone from the edge once the fleet acknowledged it; it is nowhere in
either database file or log but the case's sealed field. The ratings, with their case numbers, reach the province
once each, though it is down at first.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from edge_agent.business import token_sha256
from firmware.sim.center import SimulatedCenter
from fleet.auth.bootstrap import ensure_user, issue_token
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db
from fleet.devconfig.keys import KeyBox
from fleet.registration import service
from fleet.settings import Settings
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.loop import LoopThread
from tests.support.processes import Program
from tests.support.province_server import ProvinceServer
from tests.support.staff import signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

SECRET = "end-to-end-server-secret-0123456789"
BUSINESS_TOKEN = "business-system-token-of-the-center-0001"
PHONE = "13912345678"
PASSWORD = "town-operator-password"


def edge_database_rows(data_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{data_dir / 'edge.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def files_holding(paths: list[Path], text: str) -> list[str]:
    return [str(p) for p in paths if p.is_file() and text.encode() in p.read_bytes()]


@pytest.mark.sqlite_only(reason="greps the fleet's SQLite file for the phone number")
def test_a_business_case_rated_badly_its_callback_phone_and_the_province(tmp_path, broker_factory, page):
    county_broker, center_broker = broker_factory("county"), broker_factory("center")
    fleet_db = tmp_path / "fleet" / "fleet.db"
    fleet_url = f"sqlite:///{fleet_db}"
    engine = create_db_engine(fleet_url)
    init_db(engine)
    box = KeyBox.from_settings(Settings(data_dir=tmp_path / "fleet", device_key_secret=SECRET))
    with Session(engine) as session:
        issued = service.issue_edge_credentials(session, box, CLI_USER, CENTER_CODE, datetime.now(UTC))
        session.commit()
    engine.dispose()
    ensure_user(fleet_url, "town-a", "town_operator", PASSWORD, CENTER_CODE[:9])
    ensure_user(fleet_url, "county", "county_admin", PASSWORD)
    town = {"Authorization": "Bearer " + issue_token(fleet_url, "town-a", "tests")}
    admin = {"Authorization": "Bearer " + issue_token(fleet_url, "county", "tests")}

    province = ProvinceServer(free_port())  # down until the test starts it
    fleet_port, edge_port = free_port(), free_port()
    fleet_base, edge = f"http://127.0.0.1:{fleet_port}", f"http://127.0.0.1:{edge_port}"
    fleet = Program(
        ["-m", "fleet", "--database-url", fleet_url, "--broker", f"mqtt://127.0.0.1:{county_broker.port}",
         "--port", str(fleet_port), "--log-level", "debug"], tmp_path / "fleet.log", f"{fleet_base}/healthz",
        env={"FLEET_DEVICE_KEY_SECRET": SECRET, "FLEET_PROVINCE_ENDPOINT": province.url,
             "FLEET_PROVINCE_RETRY_MIN_S": "0.5", "FLEET_PROVINCE_RETRY_MAX_S": "1", "FLEET_PROVINCE_INTERVAL_S": "0.2",
             "FLEET_SESSION_COOKIE_SECURE": "0"}).start()
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, edge_port, printer="none",
                               extra=f'[business_system]\ntoken_sha256 = "{token_sha256(BUSINESS_TOKEN)}"\n')
    county_section = f"[brokers.county]\nport = {county_broker.port}\n"
    config.write_text(config.read_text(encoding="utf-8").replace(
        county_section, f'{county_section}edge_key = "{issued.edge_key_hex}"\n'), encoding="utf-8")
    edge_program = Program(["-m", "edge_agent", "--config", str(config), "--log-level", "DEBUG"],
                           tmp_path / "edge.log", f"{edge}/api/health").start()
    data_dir = tmp_path / "edge" / "data"
    fleet_api = httpx.Client(base_url=fleet_base)
    try:
        with LoopThread() as loop:
            devices = SimulatedCenter(CENTER_CODE, "127.0.0.1", center_broker.port, [3], tmp_path / "devices",
                                      health_interval_s=5, log=lambda *a: None)
            loop.run(devices.start())
            loop.run(devices.wait_online(15))
            pad = devices.pad(3)
            try:
                window3 = signed_in(edge, 3)

                def business_case(case_no: str) -> dict:
                    answer = httpx.post(f"{edge}/api/business/rating", json={
                        "window": 3, "case_no": case_no, "matter": "城乡居民养老保险参保登记"},
                        headers={"Authorization": f"Bearer {BUSINESS_TOKEN}"})
                    assert answer.status_code == 200, answer.text
                    return answer.json()

                # 1. The business system finishes A001's case; the pad asks; a 差评 with its reason.
                httpx.post(f"{edge}/api/tickets", json={"service": "A"}).raise_for_status()
                window3.press("next").raise_for_status()
                assert business_case("4452021010012026030200001")["ticket"] == "A001"
                wait_until(lambda: loop.call(lambda: pad.app.is_open), what="the rating pad to open")
                assert loop.call(pad.press, 1) is True
                wait_until(lambda: "请选择不满意原因" in pad.lines, what="the pad to ask the reason")
                assert loop.call(pad.press, 4) is True  # 服务效率

                def the_case() -> dict | None:
                    cases = fleet_api.get("/api/cases", headers=town).json()
                    return cases[0] if cases and cases[0]["reason"] else None

                case = wait_until(the_case, 30, "the 差评's case at the county")
                assert (case["ticket"], case["score"], case["reason"]) == ("A001", 1, "efficiency")

                # 2. The resident leaves a phone number at the kiosk's callback form, on its keypad.
                page.goto(f"{edge}/kiosk")
                page.click("#callback-open")
                page.wait_for_selector("#keypad")
                for key in ["A", "0", "0", "1"]:
                    page.click(f'.key[data-key="{key}"]')
                assert page.locator("#ticket-value").inner_text() == "A001"
                assert "selected" in (page.get_attribute("#field-phone", "class") or "")  # on to the phone
                for digit in "1391234567":  # one digit short first: refused, in Chinese
                    page.click(f'.key[data-key="{digit}"]')
                page.click("#callback-submit")
                page.wait_for_selector("#callback-error:has-text('请输入11位手机号码')")
                page.click('.key[data-key="8"]')
                page.click("#callback-submit")
                page.wait_for_selector("#callback-done:not([hidden])")
                assert "已登记" in page.locator("#callback-done").inner_text()
                assert page.locator("#phone-value").inner_text() == ""  # the next resident sees nothing of it

                # 3. The fleet acknowledged it: the edge keeps no copy.
                def phone_rows() -> list[tuple]:
                    return edge_database_rows(data_dir, "SELECT topic FROM outbox WHERE topic LIKE '%callback%' "
                                                        "UNION ALL SELECT topic FROM awaiting_ack "
                                                        "WHERE topic LIKE '%callback%'")

                wait_until(lambda: fleet_api.get(f"/cases/{case['id']}", headers=town).text.count(
                    'data-state="hidden"') == 1, 30, "the number at the county")
                wait_until(lambda: phone_rows() == [], 30, "the edge to forget the number once acknowledged")

                # 4. Only the case's assignee sees it.
                assert fleet_api.post(f"/api/cases/{case['id']}/assign", json={"assignee": "town-a"},
                                      headers=town).status_code == 200
                assert f'data-state="shown">{PHONE}<' in fleet_api.get(f"/cases/{case['id']}", headers=town).text
                assert PHONE not in fleet_api.get(f"/cases/{case['id']}", headers=admin).text
                assert PHONE not in fleet_api.get("/api/cases", headers=town).text

                # 5. A second case, rated 非常满意; the province is down, then up: each rating arrives once.
                httpx.post(f"{edge}/api/tickets", json={"service": "A"}).raise_for_status()
                window3.press("next").raise_for_status()
                assert business_case("4452021010012026030200002")["ticket"] == "A002"
                assert business_case("4452021010012026030200002")["repeated"] is True
                wait_until(lambda: loop.call(lambda: pad.app.is_open), what="the pad to open for A002")
                assert loop.call(pad.press, 5) is True
                wait_until(lambda: fleet_log_has(tmp_path, "not taken, attempt 2"), 30,
                           "the fleet to try the province twice while it is down")
                province.start()
                wait_until(lambda: len(province.taken()) == 2, 30, "both ratings at the province")
                assert sorted((b["case_no"], b["score"], b["reason"]) for b in province.taken()) == [
                    ("4452021010012026030200001", 1, "efficiency"), ("4452021010012026030200002", 5, None)]
                window3.close()
            finally:
                loop.run(devices.stop())
    finally:
        fleet_api.close()
        edge_program.stop()
        fleet.stop()
        province.stop()
    assert len(province.taken()) == 2  # nothing was delivered twice
    # 6. Nowhere but the case's sealed field: not in either database's files, nor in a log.
    places = [*data_dir.glob("edge.sqlite3*"), *fleet_db.parent.glob("fleet.db*"), tmp_path / "edge.log",
              tmp_path / "fleet.log"]
    assert files_holding(places, PHONE) == []
    assert files_holding(places, "139 1234 5678") == []


def fleet_log_has(tmp_path: Path, text: str) -> bool:
    return text in (tmp_path / "fleet.log").read_text(errors="replace")
