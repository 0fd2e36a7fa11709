"""The registry's API: profiles within scope and audited, the division list import, rollout coverage, search."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import DISPLAY, add_user
from test_fleet_centers import DIVISIONS_CSV, NEWHENG_STATION, TOWN_CENTER, profile

from fleet.alerts.models import Alert
from fleet.app import create_app
from fleet.db import write_session
from fleet.ingest import handle_message
from protocol import topics

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TOWN = TOWN_CENTER[:9]


@pytest.fixture
def app(fleet_settings):
    return create_app(fleet_settings, clock=lambda: NOW)


def client_of(app, token: str) -> TestClient:
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def admin(app):
    with client_of(app, add_user(app.state.engine)) as client:
        yield client


@pytest.fixture
def town_b(app):
    """The operator of 新亨镇 (445202102)."""
    with client_of(app, add_user(app.state.engine, "town-b", "town_operator", NEWHENG_STATION[:9])) as client:
        yield client


def edge_online(app, center: str) -> None:
    raw = json.dumps({"v": 1, "state": "online", "session": 1, "role": "edge_agent", "board": "rpi4",
                      "fw": "edge-0.1", "contract": 1}).encode()
    handle_message(app.state.engine, topics.build(topics.EDGE_PRESENCE, center=center), raw, NOW)


def open_alert(app, center: str) -> None:
    with write_session(app.state.engine) as session:
        session.add(Alert(key=f"edge:{center}", rule="edge_offline", center_code=center, message="边缘网关离线",
                          opened_at=NOW, last_active_at=NOW))


def test_names_stand_beside_codes_in_the_device_and_alert_lists(app, admin) -> None:
    edge_online(app, TOWN_CENTER)
    raw = json.dumps({"v": 1, "state": "online", "session": 1, "role": "queue_display", "window": 1,
                      "board": "esp32-s3", "fw": "1.0", "contract": 1}).encode()
    handle_message(app.state.engine, topics.build(topics.DEVICE_PRESENCE, center=TOWN_CENTER, device=DISPLAY), raw,
                   NOW)
    open_alert(app, TOWN_CENTER)
    assert [d["center_name"] for d in admin.get("/api/devices").json()] == [None]
    admin.put(f"/api/centers/{TOWN_CENTER}/profile", json=profile("示例镇便民服务中心", "town"))
    assert [d["center_name"] for d in admin.get("/api/devices").json()] == ["示例镇便民服务中心"]
    assert [a["center_name"] for a in admin.get("/api/alerts?state=all").json()] == ["示例镇便民服务中心"]


def test_a_profile_is_written_read_and_audited(admin) -> None:
    assert admin.get(f"/api/centers/{TOWN_CENTER}/profile").json()["registered"] is False
    answer = admin.put(f"/api/centers/{TOWN_CENTER}/profile", json=profile("示例镇便民服务中心", "town",
                                                                           opening_hours="08:00-12:00"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "示例镇便民服务中心" and answer.json()["opening_hours"] == "08:00-12:00"
    assert admin.get(f"/api/centers/{TOWN_CENTER}/hours").json() == {  # the alerts' hours: the same row
        "hours": "08:00-12:00", "open_on_rest_days": False, "center_code": TOWN_CENTER, "own": True}
    refused = admin.put(f"/api/centers/{TOWN_CENTER}/profile", json=profile("示例镇", "town", complaint_phone="x"))
    assert refused.status_code == 422
    assert set(refused.json()["errors"]) == {"name", "complaint_phone"}
    actions = [(e["action"], e["center_code"]) for e in admin.get("/api/audit").json()]
    assert actions.count(("center.profile", TOWN_CENTER)) == 1


def test_a_town_operator_cannot_see_or_edit_another_towns_centers(app, admin, town_b) -> None:
    admin.put(f"/api/centers/{TOWN_CENTER}/profile", json=profile("示例镇便民服务中心", "town"))
    assert town_b.get(f"/api/centers/{TOWN_CENTER}/profile").status_code == 404
    assert town_b.put(f"/api/centers/{TOWN_CENTER}/profile",
                      json=profile("示例镇便民服务中心", "town", address="改")).status_code == 404
    assert admin.get(f"/api/centers/{TOWN_CENTER}/profile").json()["address"] == "示例镇示例路1号"
    assert town_b.get("/api/registry").json() == []
    answer = town_b.put(f"/api/centers/{NEWHENG_STATION}/profile", json=profile("新亨村便民服务站", "village"))
    assert answer.status_code == 200
    assert [row["code"] for row in town_b.get("/api/registry").json()] == [NEWHENG_STATION]
    assert town_b.post("/api/divisions/import", content=DIVISIONS_CSV.encode(),
                       headers={"Content-Type": "text/csv"}).status_code == 403  # county IT imports
    assert town_b.put("/api/registry/coverage/target", json={"target_pct": 10}).status_code == 403


def test_import_then_rollout_and_names_beside_codes(app, admin, town_b) -> None:
    refused = admin.post("/api/divisions/import", content=b"445202101000,\n", headers={"Content-Type": "text/csv"})
    assert refused.status_code == 422 and refused.json()["errors"] == ["第 1 行（445202101000）：缺少名称"]
    answer = admin.post("/api/divisions/import", content=DIVISIONS_CSV.encode("gbk"),
                        headers={"Content-Type": "text/csv"})
    assert answer.json() == {"counties": ["445202"], "counts": {"county": 1, "town": 2, "village": 5}}
    admin.put(f"/api/centers/{TOWN_CENTER}/profile", json=profile("示例镇便民服务中心", "town"))
    edge_online(app, TOWN_CENTER)
    edge_online(app, NEWHENG_STATION)
    assert admin.put("/api/registry/coverage/target", json={"target_pct": 25}).json() == {"target_pct": 25.0}
    rollout = admin.get("/api/registry/coverage").json()
    assert (rollout["county"]["name"], rollout["county"]["covered_pct"], rollout["county"]["meets_target"]) == \
        ("示例区", 28.6, True)  # 示例镇's center + 新亨村's station (seen, no profile) of 2 towns + 5 villages
    town_rollout = town_b.get("/api/registry/coverage").json()
    assert [(t["name"], t["covered_pct"]) for t in town_rollout["towns"]] == [("新亨镇", 33.3)]

    centers = {c["code"]: c for c in admin.get("/api/centers").json()}
    assert (centers[TOWN_CENTER]["name"], centers[TOWN_CENTER]["town_name"]) == ("示例镇便民服务中心", "示例镇")
    assert (centers[NEWHENG_STATION]["name"], centers[NEWHENG_STATION]["town_name"]) == (None, "新亨镇")
    assert [c["code"] for c in admin.get("/api/centers", params={"q": "示例镇便民"}).json()] == [TOWN_CENTER]
    assert [c["code"] for c in admin.get("/api/centers", params={"q": "新亨"}).json()] == [NEWHENG_STATION]
    assert [r["code"] for r in admin.get("/api/registry", params={"q": "102001"}).json()] == [NEWHENG_STATION]
    first = admin.get("/api/registry", params={"limit": 1})
    assert [r["code"] for r in first.json()] == [TOWN_CENTER] and first.headers["X-Total-Count"] == "2"
    assert [d["name"] for d in admin.get("/api/divisions", params={"level": "town"}).json()] == ["示例镇", "新亨镇"]
    assert admin.get(f"/api/centers/{TOWN_CENTER}").json()["name"] == "示例镇便民服务中心"
