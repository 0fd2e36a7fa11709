"""考勤 at the county: the edges' sign-ins and sign-outs give present hours, late arrivals and early leaves per
staff member and day; a window with nobody signed in during opening hours raises 空岗."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, OTHER_CENTER, add_user

from fleet.app import create_app
from protocol import topics
from tests.fleet.test_fleet_alerts import MONDAY_10, alerts, edge_online, send, sweep

MONDAY = MONDAY_10.date()


def at(hh: int, mm: int) -> datetime:
    """A Beijing time on MONDAY_10's day (08:30-12:00, 14:00-17:30 are the default opening hours)."""
    return MONDAY_10 + timedelta(hours=hh - 10, minutes=mm)


def signed(engine, center: str, kind: str, staff_no: str, name: str, window: int, when: datetime,
           reason: str | None = None) -> str:
    event = {"event_id": f"{center}-{staff_no}-{kind}-{when.timestamp()}", "kind": kind, "window": window,
             "staff_no": staff_no, "staff_name": name, "ts": when.timestamp(), **({"reason": reason} if reason else {})}
    return send(engine, topics.ATTENDANCE_EVENT, event, when, center=center)


def test_present_hours_late_and_early_per_staff_and_day(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: at(18, 0))
    engine = app.state.engine
    # 王芳: on time (08:32 within the grace), lunch break, back, leaves at 17:30: full day.
    signed(engine, CENTER, "sign_in", "1003", "王芳", 3, at(8, 32))
    signed(engine, CENTER, "sign_out", "1003", "王芳", 3, at(12, 0), "signed_out")
    signed(engine, CENTER, "sign_in", "1003", "王芳", 3, at(14, 0))
    signed(engine, CENTER, "sign_out", "1003", "王芳", 3, at(17, 30), "signed_out")
    # 张敏: late (09:10), leaves early (16:00).
    signed(engine, CENTER, "sign_in", "1001", "张敏", 1, at(9, 10))
    assert signed(engine, CENTER, "sign_out", "1001", "张敏", 1, at(16, 0), "signed_out") == "stored"
    assert signed(engine, CENTER, "sign_out", "1001", "张敏", 1, at(16, 0), "signed_out") == "duplicate"
    # Another town's staff.
    signed(engine, OTHER_CENTER, "sign_in", "2001", "刘洋", 2, at(8, 30))
    town = add_user(engine, "town-a", "town_operator", CENTER[:9])
    with TestClient(app) as client:
        rows = client.get("/api/attendance", params={"since": MONDAY.isoformat(), "until": MONDAY.isoformat()},
                          headers={"Authorization": f"Bearer {town}"}).json()
    by_staff = {r["staff_no"]: r for r in rows}
    assert set(by_staff) == {"1001", "1003"}  # the town operator sees their town only
    wang, zhang = by_staff["1003"], by_staff["1001"]
    assert (wang["present_min"], wang["late"], wang["left_early"], wang["staff_name"]) == (
        (12 * 60 - (8 * 60 + 32)) + (3 * 60 + 30), False, False, "王芳")
    assert (zhang["present_min"], zhang["late"], zhang["late_min"], zhang["left_early"], zhang["early_min"]) == (
        6 * 60 + 50, True, 40, True, 90)


def test_a_window_nobody_signed_in_to_raises_kong_gang_after_half_an_hour(engine, fleet_settings) -> None:
    now = MONDAY_10
    edge_online(engine, now)
    summary = {"ready": True, "reasons": [], "components": {}, "outbox": 0, "uptime_s": 100, "ts": now.timestamp(),
               "windows": {"1": {"state": "open", "staff_no": "1001"},
                           "3": {"state": "open", "staff_no": "",
                                 "unstaffed_since": (now - timedelta(minutes=10)).timestamp()}}}
    send(engine, topics.EDGE_HEALTH, summary, now, center=CENTER)
    assert sweep(engine, fleet_settings, now) == []  # signed out 10 minutes ago: not yet
    [change] = sweep(engine, fleet_settings, now + timedelta(minutes=21))
    assert (change.message, change.reason) == ("3号窗口空岗", "开放时间内无工作人员登录")
    summary["windows"]["3"]["staff_no"] = "1003"
    send(engine, topics.EDGE_HEALTH, {**summary, "ts": (now + timedelta(minutes=32)).timestamp()},
         now + timedelta(minutes=32), center=CENTER)
    sweep(engine, fleet_settings, now + timedelta(minutes=33))
    assert [a.state for a in alerts(engine)] == ["resolved"]


def test_a_window_never_staffed_today_counts_from_the_opening(engine, fleet_settings) -> None:
    edge_online(engine, MONDAY_10)
    summary = {"ready": True, "reasons": [], "components": {}, "outbox": 0, "uptime_s": 100,
               "ts": MONDAY_10.timestamp(), "windows": {"2": {"state": "open", "staff_no": "", "unstaffed_since": 0}}}
    send(engine, topics.EDGE_HEALTH, summary, MONDAY_10, center=CENTER)
    [change] = sweep(engine, fleet_settings, MONDAY_10)  # open since 08:30, nobody since
    assert change.message == "2号窗口空岗"
