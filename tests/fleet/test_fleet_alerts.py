"""Alert rules and their life cycle, evaluated with a fixed clock on a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD, add_user
from sqlmodel import Session, select

from fleet.alerts.engine import OPENED, RESOLVED_CHANGE
from fleet.alerts.evaluate import run_alert_sweep
from fleet.alerts.models import Alert
from fleet.alerts.rules import health_conditions, paused_window_conditions
from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.ingest import handle_message, sweep_silent_devices
from protocol import topics

MONDAY_10 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing, a working day
SUNDAY_10 = datetime(2026, 1, 11, 2, 0, tzinfo=UTC)
HOLIDAY_10 = datetime(2026, 2, 17, 2, 0, tzinfo=UTC)  # Spring Festival


def send(engine, name: str, payload: dict, now: datetime, **params) -> str:
    return handle_message(engine, topics.build(name, **params), json.dumps({"v": 1, **payload}).encode(), now)


def edge_online(engine, now: datetime, center: str = CENTER) -> None:
    send(engine, topics.EDGE_PRESENCE, {"state": "online", "session": 1, "role": "edge_agent", "board": "pi",
                                        "fw": "1", "contract": 1}, now, center=center)


def birth(engine, device: str, session: int, now: datetime, role: str = "queue_display", window: int = 3,
          center: str = CENTER) -> None:
    send(engine, topics.DEVICE_PRESENCE, {"state": "online", "session": session, "role": role, "board": "esp32",
                                          "fw": "1", "contract": 1, "window": window}, now, center=center,
         device=device)


def will(engine, device: str, session: int, now: datetime, role: str = "queue_display",
         center: str = CENTER) -> None:
    send(engine, topics.DEVICE_PRESENCE, {"state": "offline", "session": session, "role": role}, now,
         center=center, device=device)


def alerts(engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert).order_by(Alert.id)))


def sweep(engine, settings, now: datetime):
    from fleet.db import write_session

    with write_session(engine) as session:
        return run_alert_sweep(session, now, settings)


def test_device_offline_opens_after_n_minutes_of_opening_hours_and_resolves_itself(engine, fleet_settings) -> None:
    start = MONDAY_10
    edge_online(engine, start)
    birth(engine, DISPLAY, 1, start)
    will(engine, DISPLAY, 1, start)
    assert sweep(engine, fleet_settings, start + timedelta(minutes=9)) == []  # 10 minutes are the default
    changes = sweep(engine, fleet_settings, start + timedelta(minutes=10))
    assert [(c.kind, c.key) for c in changes] == [(OPENED, f"device:{DISPLAY}")]
    [alert] = alerts(engine)
    assert (alert.rule, alert.message, alert.reason, alert.state) == \
        ("device_offline", "3号窗口排队显示屏离线", "离线（连接断开）", "open")
    assert sweep(engine, fleet_settings, start + timedelta(minutes=11)) == []  # still one alert
    birth(engine, DISPLAY, 2, start + timedelta(minutes=12))
    changes = sweep(engine, fleet_settings, start + timedelta(minutes=12))
    assert [c.kind for c in changes] == [RESOLVED_CHANGE]
    assert alerts(engine)[0].state == "resolved"


def test_a_closed_center_pages_nobody(engine, fleet_settings) -> None:
    for day in (SUNDAY_10, HOLIDAY_10):
        edge_online(engine, day)
        birth(engine, PAD, 1 if day == SUNDAY_10 else 3, day, role="rating_pad")
        will(engine, PAD, 1 if day == SUNDAY_10 else 3, day, role="rating_pad")
        assert sweep(engine, fleet_settings, day + timedelta(hours=2)) == []
    # A display switched off overnight is not "offline for 14 hours" at opening: minutes count from 08:30.
    tuesday_0830 = datetime(2026, 2, 24, 0, 30, tzinfo=UTC)
    assert sweep(engine, fleet_settings, tuesday_0830 + timedelta(minutes=5)) == []
    assert [c.kind for c in sweep(engine, fleet_settings, tuesday_0830 + timedelta(minutes=10))] == [OPENED]


def test_a_device_that_drops_ten_times_in_an_hour_gets_one_alert_with_the_reason(engine, fleet_settings) -> None:
    now = MONDAY_10
    edge_online(engine, now)
    birth(engine, DISPLAY, 1, now)
    changes = []
    for session in range(1, 11):  # ten drops, 5 minutes apart, each back after a minute
        will(engine, DISPLAY, session, now)
        changes += sweep(engine, fleet_settings, now + timedelta(seconds=30))
        birth(engine, DISPLAY, session + 1, now + timedelta(minutes=1))
        changes += sweep(engine, fleet_settings, now + timedelta(minutes=1))
        now += timedelta(minutes=5)
    [alert] = alerts(engine)
    assert [c.kind for c in changes] == [OPENED]  # each drop was short: paged once, as flapping
    assert alert.rule == "device_flapping" and alert.state == "open"
    assert alert.reason == "1小时内掉线 10 次（连接断开 10 次），当前在线"
    # Heartbeat timeouts and reconnects without a will count too, with their reasons.
    birth(engine, DISPLAY, 14, now)  # sessions 11..13 came and went unseen
    sweep_silent_devices(engine, now + timedelta(minutes=5), 90)
    sweep(engine, fleet_settings, now + timedelta(minutes=5))
    [alert] = alerts(engine)
    assert "心跳超时 1 次" in alert.reason and "重新连接 3 次" in alert.reason


def test_edge_offline_alert_and_the_centers_other_alerts_are_frozen(engine, fleet_settings) -> None:
    now = MONDAY_10
    edge_online(engine, now)
    birth(engine, DISPLAY, 1, now)
    will(engine, DISPLAY, 1, now)
    sweep(engine, fleet_settings, now + timedelta(minutes=10))
    send(engine, topics.EDGE_PRESENCE, {"state": "offline", "session": 1, "role": "edge_agent"},
         now + timedelta(minutes=11), center=CENTER)
    assert sweep(engine, fleet_settings, now + timedelta(minutes=12)) == []
    changes = sweep(engine, fleet_settings, now + timedelta(minutes=16))
    assert [(c.kind, c.key) for c in changes] == [(OPENED, f"edge:{CENTER}")]
    assert [a.state for a in alerts(engine)] == ["open", "open"]  # the device alert is not resolved blind


def test_a_firmware_bundle_the_edge_refused_is_told_in_chinese() -> None:
    summary = {"components": {"firmware": {"ok": False, "state": "refused", "bundles": {}, "refused": 1,
                                           "problem": "its signature does not verify with the edge key"}}}
    [found] = health_conditions(CENTER, summary)
    assert (found.rule, found.message, found.severity) == ("component", "边缘网关拒收固件升级包", "warning")
    assert found.facts["problem"] == "its signature does not verify with the edge key"
    kept = {"components": {"firmware": {"ok": True, "state": "ok", "bundles": {"ab" * 32: "0.2.0"}, "refused": 0}}}
    assert health_conditions(CENTER, kept) == []


def test_peripherals_from_the_health_summary() -> None:
    summary = {"ready": False, "reasons": [], "ts": 1, "components": {
        "printer": {"ok": False, "state": "paper_out"}, "camera-3": {"ok": False, "state": "offline"},
        "id_card": {"ok": True, "state": "ready"}, "scanner": {"ok": False, "state": "error"}}}
    found = {c.key: (c.rule, c.message, c.severity) for c in health_conditions(CENTER, summary)}
    assert found == {f"component:{CENTER}:printer": ("printer", "打印机缺纸", "critical"),
                     f"component:{CENTER}:camera-3": ("camera_offline", "3号窗口摄像头离线", "warning"),
                     f"component:{CENTER}:scanner": ("component", "扫描仪故障", "warning")}
    near_end = health_conditions(CENTER, {"components": {"printer": {"ok": False, "state": "paper_near_end"}}})
    assert near_end[0].message == "打印机纸将用尽" and near_end[0].severity == "warning"
    assert health_conditions(CENTER, {"components": {}}) == []
    paused = paused_window_conditions(CENTER, {"windows": {"2": {"state": "paused", "since": 100},
                                                           "3": {"state": "serving"}}}, 900)
    assert [(c.key, c.min_duration_s) for c in paused] == [(f"paused:{CENTER}:2", 900)]


def test_edge_health_is_ingested_and_a_printer_out_of_paper_alerts_until_refilled(engine, fleet_settings) -> None:
    now = MONDAY_10
    edge_online(engine, now)
    health = {"ready": False, "reasons": ["打印机缺纸"], "ts": now.timestamp(),
              "components": {"printer": {"ok": False, "state": "paper_out"}}}
    assert send(engine, topics.EDGE_HEALTH, health, now, center=CENTER) == "applied"
    assert [c.message for c in sweep(engine, fleet_settings, now)] == ["打印机缺纸"]
    health.update(ready=True, reasons=[], ts=now.timestamp() + 60,
                  components={"printer": {"ok": True, "state": "ok"}})
    send(engine, topics.EDGE_HEALTH, health, now, center=CENTER)
    assert [c.kind for c in sweep(engine, fleet_settings, now + timedelta(minutes=1))] == [RESOLVED_CHANGE]


def test_a_full_disk_at_the_edge_alerts_at_any_hour_and_resolves_when_freed(engine, fleet_settings) -> None:
    """Issue 19: the edge's storage component (edge_agent/storage.py) names the disk; a card that fills at night
    stops the center when it opens, so the alert does not wait for opening hours."""
    now = SUNDAY_10
    edge_online(engine, now)
    full = {"ok": False, "state": "disk_full", "free_bytes": 0, "write_failures": 80, "last_write_failure_at": 1.0}
    health = {"ready": False, "reasons": ["中心服务器存储空间已满，暂时无法取号"], "ts": now.timestamp(),
              "components": {"storage": full}}
    assert send(engine, topics.EDGE_HEALTH, health, now, center=CENTER) == "applied"
    assert [(c.kind, c.key) for c in sweep(engine, fleet_settings, now)] == [(OPENED, f"component:{CENTER}:storage")]
    [alert] = alerts(engine)
    assert (alert.rule, alert.message, alert.severity) == ("storage", "边缘网关存储空间已满", "critical")
    assert alert.reason == "无法取号、叫号和保存评价；剩余空间 0.0 MB；写入失败 80 次"
    health.update(ready=True, reasons=[], ts=now.timestamp() + 60, components={"storage": {
        "ok": True, "state": "ok", "free_bytes": 2 << 30, "write_failures": 80, "last_write_failure_at": 1.0}})
    send(engine, topics.EDGE_HEALTH, health, now, center=CENTER)
    assert [c.kind for c in sweep(engine, fleet_settings, now + timedelta(minutes=1))] == [RESOLVED_CHANGE]

    failed = health_conditions(CENTER, {"components": {"storage": {"ok": False, "state": "write_failed"}}})
    low = health_conditions(CENTER, {"components": {"storage": {"ok": False, "state": "low_space",
                                                                "free_bytes": 50 * 1024 * 1024}}})
    assert [(c.message, c.severity) for c in failed + low] == [("边缘网关数据库写入失败", "critical"),
                                                               ("边缘网关存储空间不足", "warning")]
    assert "剩余空间 50.0 MB" in low[0].reason


def test_waiting_over_the_service_level_target(engine, fleet_settings) -> None:
    now = MONDAY_10
    edge_online(engine, now)
    issued = now - timedelta(minutes=40)
    for n, (ticket, kind, at) in enumerate([("A001", "issued", issued), ("A002", "issued", issued),
                                            ("A001", "called", issued + timedelta(minutes=45)),
                                            ("A003", "issued", now - timedelta(minutes=5))]):
        send(engine, topics.TICKET_EVENT, {"event_id": f"e{n}", "kind": kind, "ticket": ticket, "service": "A",
                                           "ts": at.timestamp(), **({"window": 1} if kind == "called" else {})},
             now, center=CENTER)
    [change] = sweep(engine, fleet_settings, now)
    assert change.message == "等候超时" and change.reason == "1 人等候超过 30 分钟，最长 A002 已等 40 分钟"
    send(engine, topics.TICKET_EVENT, {"event_id": "e9", "kind": "called", "ticket": "A002", "service": "A",
                                       "window": 2, "ts": now.timestamp()}, now, center=CENTER)
    assert [c.kind for c in sweep(engine, fleet_settings, now + timedelta(minutes=1))] == [RESOLVED_CHANGE]


def test_alerts_api_acknowledge_is_audited_and_scoped(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: MONDAY_10 + timedelta(minutes=30))
    engine = app.state.engine
    for center, device in ((CENTER, DISPLAY), (OTHER_CENTER, PAD)):
        edge_online(engine, MONDAY_10, center)
        birth(engine, device, 1, MONDAY_10, center=center)
        will(engine, device, 1, MONDAY_10, center=center)
    sweep(engine, fleet_settings, MONDAY_10 + timedelta(minutes=20))
    admin = add_user(engine)
    town = add_user(engine, "town-a", "town_operator", CENTER[:9])
    viewer = add_user(engine, "viewer", "read_only", None)
    with TestClient(app) as client:
        mine = client.get("/api/alerts", headers={"Authorization": f"Bearer {town}"}).json()
        assert [a["center_code"] for a in mine] == [CENTER]
        other = next(a for a in client.get("/api/alerts", headers={"Authorization": f"Bearer {admin}"}).json()
                     if a["center_code"] == OTHER_CENTER)
        assert client.post(f"/api/alerts/{other['id']}/ack", headers={"Authorization": f"Bearer {town}"}
                           ).status_code == 404
        assert client.post(f"/api/alerts/{mine[0]['id']}/ack", headers={"Authorization": f"Bearer {viewer}"}
                           ).status_code == 403
        acked = client.post(f"/api/alerts/{mine[0]['id']}/ack", headers={"Authorization": f"Bearer {town}"})
        assert acked.json()["state"] == "acknowledged" and acked.json()["acknowledged_by"] == "town-a"
        assert client.post(f"/api/alerts/{mine[0]['id']}/ack", headers={"Authorization": f"Bearer {town}"}
                           ).status_code == 409
        hours = client.put(f"/api/centers/{CENTER}/hours", json={"hours": "09:00-17:00", "open_on_rest_days": True},
                           headers={"Authorization": f"Bearer {town}"})
        assert hours.json() == {"center_code": CENTER, "hours": "09:00-17:00", "open_on_rest_days": True,
                                "own": True}
        assert client.put(f"/api/centers/{CENTER}/hours", json={"hours": "nonsense"},
                          headers={"Authorization": f"Bearer {town}"}).status_code == 422
    with Session(engine) as session:
        actions = [(e.action, e.center_code)
                   for e in session.exec(select(AuditEntry).where(AuditEntry.username == "town-a"))]
    assert actions == [("alert.acknowledge", CENTER), ("center.hours", CENTER)]  # filed under the center
    sweep(engine, fleet_settings, SUNDAY_10)  # open on rest days now: the Sunday alert stays active
    assert {a.center_code: a.state for a in alerts(engine)}[CENTER] == "acknowledged"
