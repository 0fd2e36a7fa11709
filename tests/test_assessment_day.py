"""A day of a center as the county assesses it (issue 14's done-when), end to end: the fleet and the edge agent
as programs on a clock the test drives, real Mosquitto brokers (county, center), the windows' displays and pads
running the real firmware under CPython, the kiosk and the fleet's report pages in headless Chromium.

Tuesday 2026-12-01 in Beijing: 张敏 signs in at window 1 as the center opens; 王芳 signs in at window 3 forty
minutes late and leaves it empty from 10:00 to 11:00; four residents are served, rated 非常满意, 非常不满意 (reason
服务效率, a callback phone left at the kiosk), 基本满意, and the last not at all: window 1's pad was unplugged, so its
request ends pad_offline. A second town's center reports through the fleet's ingest. Then the report pages show
the day's figures, the XLSX downloaded from the page has them, a town operator's report holds only their town, and
the phone number is in no database file or log (the fleet keeps it sealed in the case's encrypted field).

A day does not take a day: the fleet and the edge run under libfaketime with an offset read from a file the test
rewrites (tests/support/faketime's settings, as `make test-clock` uses them), so each step sets the programs' wall
clock to its moment of the day. Their timers (monotonic) keep real time. The browser and the devices keep the
real clock: the pages are asked for the day explicitly, and the edge dates every event itself.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
from sqlmodel import Session

from firmware.sim.center import SimulatedCenter
from fleet.auth.bootstrap import ensure_user, issue_token
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db
from fleet.devconfig.keys import KeyBox
from fleet.registration import service
from fleet.settings import Settings
from protocol import messages, topics
from tests.fleet.fleet_testkit import log_in
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.loop import LoopThread
from tests.support.mqtt import Recorder
from tests.support.processes import ROOT, Program
from tests.support.staff import Caller, set_pins, signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = [pytest.mark.broker, pytest.mark.browser]

SECRET = "assessment-day-server-secret-0123456789"
PASSWORD = "assessment-day-password"
PHONE = "13987654321"
BEIJING = ZoneInfo("Asia/Shanghai")
DAY = "2026-12-01"  # a Tuesday, a working day; the fleet's default hours 08:30-12:00,14:00-17:30
OTHER_CENTER = "445202102001"  # a center of another town of the county
# Debian's libfaketime (a test dependency, tools/install-system-deps.sh), under the machine's multiarch directory.
LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)


def moment(clock: str) -> datetime:
    """HH:MM or HH:MM:SS of the day in Beijing."""
    return datetime.fromisoformat(f"{DAY}T{clock}").replace(tzinfo=BEIJING)


class DrivenClock:
    """The wall clock of the programs started with `env()`: libfaketime's offset from the real clock, re-read
    from a file at every call (FAKETIME_NO_CACHE), which `set` replaces whole so no reader sees it half
    written. The monotonic clock stays real (tests/support/faketime/sitecustomize.py says why)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, clock: str) -> None:
        # Rounded up: libfaketime takes whole seconds, and a step must not happen before its moment.
        offset = math.ceil(moment(clock).timestamp() - time.time())
        draft = self.path.with_suffix(".draft")
        draft.write_text(f"{offset:+d}\n")
        os.replace(draft, self.path)

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(self.path), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "support" / "faketime"),
                                               *filter(None, [os.environ.get("PYTHONPATH")])])}


def files_holding(paths: list[Path], text: str) -> list[str]:
    return [str(p) for p in paths if p.is_file() and text.encode() in p.read_bytes()]


def edge_rows(data_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{data_dir / 'edge.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def publish_other_town(port: int) -> None:
    """A second town's center reports its day through the fleet's ingest (the county broker), as its edge
    would: a ticket served and rated 满意 by 刘洋, signed in through the opening hours at window 1."""
    def ts(clock: str) -> float:
        return moment(clock).timestamp()

    events = [
        (topics.ATTENDANCE_EVENT, "attendance_event", {"kind": messages.SIGNED_IN, "window": 1, "staff_no": "2001",
                                                       "staff_name": "刘洋", "ts": ts("08:29:00")}),
        (topics.TICKET_EVENT, "ticket_event", {"kind": messages.TICKET_ISSUED, "ticket": "A001", "service": "A",
                                               "ts": ts("09:00:00")}),
        (topics.TICKET_EVENT, "ticket_event", {"kind": messages.TICKET_CALLED, "ticket": "A001", "service": "A",
                                               "window": 1, "staff_no": "2001", "ts": ts("09:01:00")}),
        (topics.TICKET_EVENT, "ticket_event", {"kind": messages.TICKET_FINISHED, "ticket": "A001", "service": "A",
                                               "window": 1, "staff_no": "2001", "ts": ts("09:11:00")}),
        (topics.RATING_EVENT, "rating_event", {"rating_id": "other-1", "ticket": "A001", "service": "A",
                                               "window": 1, "staff_no": "2001", "score": 4,
                                               "ts": ts("09:11:30")}),
        (topics.ATTENDANCE_EVENT, "attendance_event", {"kind": messages.SIGNED_OUT, "window": 1, "staff_no": "2001",
                                                       "staff_name": "刘洋", "reason": messages.OUT_BY_STAFF,
                                                       "ts": ts("17:31:00")}),
    ]
    edge = Recorder(port, client_id=f"edge-{OTHER_CENTER}")
    try:
        for topic, kind, fields in events:
            payload = messages.make(kind, event_id=uuid.uuid4().hex, **fields)
            edge.publish(topics.build(topic, center=OTHER_CENTER), messages.encode(kind, payload))
    finally:
        edge.close()


def cells(page, selector: str, names: tuple[str, ...]) -> dict[str, str]:
    row = page.locator(selector)
    return {name: row.locator(f"td.{name}").inner_text() for name in names}


REPORT_CELLS = ("issued", "served", "satisfaction_rate", "coverage", "bad", "bad_cases", "attendance_hours",
                "empty_min")


def download_xlsx(page, target: Path) -> list[tuple]:
    with page.expect_download() as download:
        page.click("#download-xlsx")
    download.value.save_as(target)
    return list(openpyxl.load_workbook(target).active.iter_rows(values_only=True))


def empty_window_alert(fleet_api: httpx.Client, window: int, opened_after: str) -> dict | None:
    """The 空岗 alert of this center's window opened after that moment of the day, in any state."""
    for alert in fleet_api.get("/api/alerts?state=all").json():
        if (alert["rule"], alert["center_code"], alert["window"]) == ("empty_window", CENTER_CODE, window) \
                and datetime.fromisoformat(alert["opened_at"]).replace(tzinfo=UTC) >= moment(opened_after):
            return alert
    return None


@pytest.mark.sqlite_only(reason="greps the fleet's SQLite file for the phone number")
@pytest.mark.skipif("FAKETIME" in os.environ, reason="drives the programs' clock itself; make test-clock's "
                                                     "FAKETIME would override its offset file")
def test_a_day_of_a_center_in_the_county_s_reports(tmp_path, broker_factory, page):
    assert LIBFAKETIME is not None, "libfaketime is missing: run tools/install-system-deps.sh"
    county_broker, center_broker = broker_factory("county"), broker_factory("center")
    clock = DrivenClock(tmp_path / "faketime.rc")
    clock.set("08:27:00")
    fleet_db = tmp_path / "fleet" / "fleet.db"
    fleet_url = f"sqlite:///{fleet_db}"
    engine = create_db_engine(fleet_url)
    init_db(engine)
    box = KeyBox.from_settings(Settings(data_dir=tmp_path / "fleet", device_key_secret=SECRET))
    with Session(engine) as session:
        issued = service.issue_edge_credentials(session, box, CLI_USER, CENTER_CODE, datetime.now(UTC))
        service.issue_edge_credentials(session, box, CLI_USER, OTHER_CENTER, datetime.now(UTC))  # its events acked
        session.commit()
    engine.dispose()
    ensure_user(fleet_url, "county", "county_admin", PASSWORD)
    ensure_user(fleet_url, "town-a", "town_operator", PASSWORD, CENTER_CODE[:9])
    admin = {"Authorization": "Bearer " + issue_token(fleet_url, "county", "tests")}
    town = {"Authorization": "Bearer " + issue_token(fleet_url, "town-a", "tests")}

    fleet_port, edge_port = free_port(), free_port()
    fleet_base, edge = f"http://127.0.0.1:{fleet_port}", f"http://127.0.0.1:{edge_port}"
    fleet = Program(
        ["-m", "fleet", "--database-url", fleet_url, "--broker", f"mqtt://127.0.0.1:{county_broker.port}",
         "--port", str(fleet_port), "--log-level", "debug"], tmp_path / "fleet.log", f"{fleet_base}/healthz",
        env={**clock.env(), "FLEET_DEVICE_KEY_SECRET": SECRET, "FLEET_SESSION_COOKIE_SECURE": "0",
             "FLEET_ALERT_SWEEP_INTERVAL_S": "0.5"}).start()
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, edge_port, printer="none")
    county_section = f"[brokers.county]\nport = {county_broker.port}\n"
    config.write_text(config.read_text(encoding="utf-8").replace(
        county_section, f'{county_section}edge_key = "{issued.edge_key_hex}"\n'), encoding="utf-8")
    edge_program = Program(["-m", "edge_agent", "--config", str(config), "--log-level", "DEBUG"],
                           tmp_path / "edge.log", f"{edge}/api/health", env=clock.env()).start()
    data_dir = tmp_path / "edge" / "data"
    fleet_api = httpx.Client(base_url=fleet_base, headers=admin)
    try:
        with LoopThread() as loop:
            devices = SimulatedCenter(CENTER_CODE, "127.0.0.1", center_broker.port, [1, 3], tmp_path / "devices",
                                      health_interval_s=5, log=lambda *a: None)
            loop.run(devices.start())
            loop.run(devices.wait_online(15))
            pad1, pad3 = devices.pad(1), devices.pad(3)
            try:
                set_pins(edge)

                def issue(service_prefix: str) -> str:
                    answer = httpx.post(f"{edge}/api/tickets", json={"service": service_prefix})
                    answer.raise_for_status()
                    return answer.json()["number"]

                def rate(pad, score: int, reason_button: int | None = None) -> None:
                    wait_until(lambda: loop.call(lambda: pad.app.is_open), what=f"window {pad.window}'s pad to ask")
                    assert loop.call(pad.press, score) is True
                    if reason_button is not None:
                        wait_until(lambda: "请选择不满意原因" in pad.lines, what="the pad to ask the reason")
                        assert loop.call(pad.press, reason_button) is True
                    # The edge dates a rating when it arrives (less the age the pad gives): the clock moves on only
                    # once the edge has it.
                    wait_until(lambda: edge_rows(data_dir, "SELECT state, outcome FROM rating_requests WHERE window = "
                                                           f"{pad.window} ORDER BY opened_at DESC LIMIT 1")
                               == [("closed", "rated")], 30, f"the edge to record window {pad.window}'s rating")

                def serve(caller: Caller, called_at: str, finished_at: str) -> str:
                    clock.set(called_at)
                    answer = caller.press("next")
                    answer.raise_for_status()
                    ticket = answer.json()["ticket"]
                    clock.set(finished_at)
                    caller.press("finish").raise_for_status()
                    return ticket

                # The morning: 张敏 on time, three residents, 王芳 late.
                clock.set("08:30:10")
                zhang = signed_in(edge, 1, pins_set=True)
                clock.set("08:40:00")
                assert [issue("A"), issue("A"), issue("B")] == ["A001", "A002", "B001"]
                assert serve(zhang, "08:45:00", "08:55:00") == "A001"
                rate(pad1, 5)
                clock.set("09:10:00")
                wang = signed_in(edge, 3, pins_set=True)  # 40 minutes late
                assert serve(wang, "09:15:00", "09:25:00") == "A002"
                rate(pad3, 1, reason_button=4)  # 非常不满意, 服务效率

                # The resident leaves a phone number for the callback at the kiosk's keypad.
                page.goto(f"{edge}/kiosk")
                page.click("#callback-open")
                page.wait_for_selector("#keypad")
                for key in "A002" + PHONE:
                    page.click(f'.key[data-key="{key}"]')
                page.click("#callback-submit")
                page.wait_for_selector("#callback-done:not([hidden])")

                clock.set("10:00:00")
                wang.post("/api/windows/3/logout").raise_for_status()  # window 3 empty for an hour
                assert serve(zhang, "10:30:00", "10:40:00") == "B001"
                rate(pad1, 3)
                alert = wait_until(lambda: empty_window_alert(fleet_api, 3, "10:30:00"), 30,
                                   "the 空岗 alert of window 3, empty since 10:00 (30 minutes allowed)")
                assert alert["message"] == "3号窗口空岗"
                clock.set("11:00:00")
                wang.sign_in().raise_for_status()
                wait_until(lambda: empty_window_alert(fleet_api, 3, "10:30:00")["state"] == "resolved", 30,
                           "the 空岗 alert to end once 王芳 is back")

                # The afternoon: window 1's pad is unplugged; its next request ends pad_offline.
                clock.set("14:00:00")
                loop.call(devices.abort, pad1.device_id, True)
                clock.set("14:05:00")
                assert issue("A") == "A003"
                assert serve(zhang, "14:10:00", "14:20:00") == "A003"
                clock.set("14:22:00")  # past the pad's time-out and the grace for its 未评价
                wait_until(lambda: edge_rows(data_dir, "SELECT outcome FROM rating_requests ORDER BY opened_at")[-1:]
                           == [("pad_offline",)], 30, "A003's request to end pad_offline")

                clock.set("17:30:00")
                zhang.post("/api/windows/1/logout").raise_for_status()
                wang.post("/api/windows/3/logout").raise_for_status()
                zhang.close()
                wang.close()
            finally:
                loop.run(devices.stop())

        clock.set("18:00:00")
        publish_other_town(county_broker.port)
        period = f"since={DAY}&until={DAY}"

        def center_rows() -> dict[str, dict] | None:
            rows = {r["key"][0]: r for r in fleet_api.get(f"/api/reports?by=center&{period}").json()["rows"]}
            ours, other = rows.get(CENTER_CODE), rows.get(OTHER_CENTER)
            if ours and other and (ours["served"], ours["rated"], ours["bad_cases"], other["rated"]) == (4, 3, 1, 1) \
                    and ours["coverage"] == 75.0 and ours["empty_min"] is not None:
                return rows
            return None

        wait_until(center_rows, 60, "the day's events at the county")
        case = fleet_api.get("/api/cases").json()[0]
        assert (case["ticket"], case["score"], case["reason"]) == ("A002", 1, "efficiency")
        wait_until(lambda: fleet_api.get(f"/cases/{case['id']}").text.count('data-state="hidden"') == 1, 30,
                   "the callback phone sealed in the case")
        assert fleet_api.post(f"/api/cases/{case['id']}/assign", json={"assignee": "town-a"},
                              headers=town).status_code == 200
        # Kept for the callback: shown to the case's assignee.
        assert f'data-state="shown">{PHONE}<' in fleet_api.get(f"/cases/{case['id']}", headers=town).text

        # The rating records (the national 好差评 fields): the 差评 with its reason, the pad_offline request none.
        records = fleet_api.get(f"/api/ratings/records?{period}").json()
        assert [(r["center_code"], r["window"], r["staff"], r["score_label"], r["reason"], r["rated_at"][11:16])
                for r in records] == [
            (CENTER_CODE, "1号窗口", "张敏", "非常满意", "", "08:55"),
            (OTHER_CENTER, "1号窗口", "刘洋", "满意", "", "09:11"),
            (CENTER_CODE, "3号窗口", "王芳", "非常不满意", "服务效率", "09:25"),
            (CENTER_CODE, "1号窗口", "张敏", "基本满意", "", "10:40")]
        assert {r["channel"] for r in records} == {"现场评价器"}

        # The report page, by center, as the county administrator.
        log_in(page, fleet_base, "county", PASSWORD)
        page.goto(f"{fleet_base}/reports?by=center&{period}")
        assert cells(page, f"#report tr[data-key='{CENTER_CODE}']", REPORT_CELLS) == {
            "issued": "4", "served": "4", "satisfaction_rate": "66.7", "coverage": "75.0", "bad": "1",
            "bad_cases": "1", "attendance_hours": "16.3", "empty_min": "100"}
        # Waits 5, 35, 110 and 5 minutes (nearest rank); every service took 10 minutes.
        assert cells(page, f"#report tr[data-key='{CENTER_CODE}']", ("wait_p50_min", "wait_p90_min",
                                                                     "handling_avg_min")) == {
            "wait_p50_min": "5.0", "wait_p90_min": "110.0", "handling_avg_min": "10.0"}
        assert "满意率 =（非常满意＋满意＋基本满意）÷ 评价数" in page.locator("#s-definition").inner_text()
        assert page.locator("#report tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)") == [
            CENTER_CODE, OTHER_CENTER]
        table = download_xlsx(page, tmp_path / "center.xlsx")
        headings = table[1]
        ours = dict(zip(headings, next(row for row in table[2:] if str(row[0]).startswith(CENTER_CODE)),
                        strict=True))
        assert {name: ours[name] for name in ("取号数", "办结数", "满意率（%）", "评价数", "评价覆盖率（%）", "差评数",
                                              "差评工单", "出勤时长（小时）", "空岗（分钟）")} == {
            "取号数": 4, "办结数": 4, "满意率（%）": 66.7, "评价数": 3, "评价覆盖率（%）": 75.0, "差评数": 1,
            "差评工单": 1, "出勤时长（小时）": 16.3, "空岗（分钟）": 100}

        # By window: the unplugged pad's window lost coverage, the empty window its minutes.
        page.goto(f"{fleet_base}/reports?by=window&{period}")
        assert cells(page, f"#report tr[data-key='{CENTER_CODE}/1']", REPORT_CELLS) == {
            "issued": "—", "served": "3", "satisfaction_rate": "100.0", "coverage": "66.7", "bad": "0",
            "bad_cases": "0", "attendance_hours": "9.0", "empty_min": "0"}
        assert cells(page, f"#report tr[data-key='{CENTER_CODE}/3']", REPORT_CELLS) == {
            "issued": "—", "served": "1", "satisfaction_rate": "0.0", "coverage": "100.0", "bad": "1",
            "bad_cases": "1", "attendance_hours": "7.3", "empty_min": "100"}

        page.goto(f"{fleet_base}/reports?by=staff&{period}")
        assert cells(page, f"#report tr[data-key='{CENTER_CODE}/1003']", REPORT_CELLS) == {
            "issued": "—", "served": "1", "satisfaction_rate": "0.0", "coverage": "100.0", "bad": "1",
            "bad_cases": "1", "attendance_hours": "7.3", "empty_min": "—"}

        # 考勤: 王芳 late, 张敏 on time; nobody left early.
        page.goto(f"{fleet_base}/attendance?{period}")
        center = page.locator(f"#attendance-centers tr[data-center='{CENTER_CODE}']")
        assert [center.locator(f"td.{name}").inner_text() for name in ("staff-count", "present", "late", "early",
                                                                       "empty")] == ["2", "16.3", "1", "0", "100"]
        days = {staff: cells(page, f"#attendance-days tr[data-center='{CENTER_CODE}'][data-staff='{staff}']",
                             ("staff-name", "first-in", "last-out", "present", "late", "early"))
                for staff in ("1001", "1003")}
        assert days == {
            "1001": {"staff-name": "张敏", "first-in": "08:30", "last-out": "17:30", "present": "540", "late": "—",
                     "early": "—"},
            "1003": {"staff-name": "王芳", "first-in": "09:10", "last-out": "17:30", "present": "440", "late": "40",
                     "early": "—"}}

        # A town operator's report and download hold their town alone.
        log_in(page, fleet_base, "town-a", PASSWORD)
        page.goto(f"{fleet_base}/reports?by=center&{period}")
        assert page.locator("#report tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)") == [CENTER_CODE]
        assert [str(row[0])[:12] for row in download_xlsx(page, tmp_path / "town.xlsx")[2:]] == [CENTER_CODE]
        page.goto(f"{fleet_base}/attendance?{period}")
        assert set(page.locator("#attendance-days tr[data-staff]").evaluate_all(
            "rows => rows.map(r => r.dataset.center)")) == {CENTER_CODE}
    finally:
        fleet_api.close()
        edge_program.stop()
        fleet.stop()

    # The phone number is nowhere but the case's sealed field: in no database file of either, nor in a log.
    places = [*data_dir.glob("edge.sqlite3*"), *fleet_db.parent.glob("fleet.db*"), tmp_path / "edge.log",
              tmp_path / "fleet.log"]
    assert [p for p in places if p.is_file()]
    assert files_holding(places, PHONE) == []
    assert files_holding(places, re.sub(r"(\d{3})(\d{4})(\d{4})", r"\1 \2 \3", PHONE)) == []
