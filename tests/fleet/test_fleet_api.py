"""JSON API and settings, without a broker: data goes in through ingest's plain functions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD, add_user

from fleet.app import create_app
from fleet.ingest import handle_message
from fleet.settings import Settings, parse_broker_url
from protocol import messages, topics

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 00:10 on 2 May in Beijing, when the UTC date is still 1 May.
NOW = datetime(2024, 5, 2, 0, 10, tzinfo=SHANGHAI)


def local(day: int, hour: int, minute: int) -> float:
    return datetime(2024, 5, day, hour, minute, tzinfo=SHANGHAI).timestamp()


def put(app, name: str, payload: dict, at: datetime = NOW, **params) -> str:
    """Feed one message as the ingest would receive it."""
    raw = json.dumps({"v": 1, **payload}).encode()
    return handle_message(app.state.engine, topics.build(name, **params), raw, at)


@pytest.fixture
def client(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: NOW)
    token = add_user(app.state.engine)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def seed(app) -> None:
    birth = {"state": "online", "board": "esp32-s3", "fw": "1.2.0", "contract": 1}
    put(app, topics.EDGE_PRESENCE, {**birth, "role": "edge_agent", "session": 1}, center=CENTER)
    put(app, topics.DEVICE_PRESENCE, {**birth, "role": "queue_display", "session": 1, "window": 3},
        center=CENTER, device=DISPLAY)
    put(app, topics.DEVICE_PRESENCE, {**birth, "role": "rating_pad", "session": 1, "window": 3},
        center=CENTER, device=PAD)
    put(app, topics.DEVICE_PRESENCE, {"state": "offline", "role": "rating_pad", "session": 1},
        center=CENTER, device=PAD)

    def ticket(event_id: str, ts: float, kind: str = "issued", center: str = CENTER) -> None:
        put(app, topics.TICKET_EVENT, {"event_id": event_id, "kind": kind, "ticket": "A001", "service": "A",
                                       "window": 3, "ts": ts}, center=center)

    def rating(event_id: str, ts: float, score: int) -> None:
        put(app, topics.RATING_EVENT, {"event_id": event_id, "rating_id": event_id, "ticket": "A001",
                                       "service": "A", "window": 3, "score": score, "ts": ts}, center=CENTER)

    ticket("yesterday-late", local(1, 23, 50))  # same UTC date as NOW, but yesterday in Beijing
    ticket("today-early", local(2, 0, 5))
    ticket("today-called", local(2, 0, 6), kind="called")  # not a 取号
    ticket("today-last-minute", local(2, 23, 59))
    ticket("tomorrow", local(3, 0, 0))
    ticket("other-center", local(2, 9, 0), center=OTHER_CENTER)
    rating("r-yesterday", local(1, 23, 59), 5)
    rating("r-good", local(2, 0, 7), 5)
    rating("r-bad", local(2, 0, 8), 1)
    rating("r-unrated", local(2, 0, 9), messages.UNRATED)


def test_centers_with_today_counts_in_asia_shanghai(client) -> None:
    seed(client.app)
    centers = client.get("/api/centers").json()
    assert [c["code"] for c in centers] == [CENTER, OTHER_CENTER]
    center = centers[0]
    assert center["county_code"] == "445202" and center["town_code"] == "445202101"
    assert center["edge_online"] is True
    assert (center["devices_online"], center["devices_total"]) == (1, 2)
    assert center["day"] == "2024-05-02"
    assert center["tickets_today"] == 2
    assert (center["ratings_today"], center["unrated_today"], center["bad_ratings_today"]) == (2, 1, 1)

    other = centers[1]  # known from an event only: no edge birth, no devices yet
    assert other["edge_online"] is False and other["devices_total"] == 0 and other["tickets_today"] == 1


def test_center_detail_lists_its_devices(client) -> None:
    seed(client.app)
    body = client.get(f"/api/centers/{CENTER}").json()
    assert body["tickets_today"] == 2
    devices = {d["device_id"]: d for d in body["devices"]}
    assert set(devices) == {DISPLAY, PAD}
    assert devices[DISPLAY]["status"] == "online" and devices[DISPLAY]["window"] == 3
    assert devices[PAD]["status"] == "offline" and devices[PAD]["offline_reason"] == "last will"
    assert devices[DISPLAY]["last_seen"].startswith("2024-05-01T16:10:00")  # stored and served in UTC

    assert client.get(f"/api/centers/{OTHER_CENTER[:-1]}9").status_code == 404
    assert client.get("/api/centers/not-a-code").status_code == 422


def test_devices_behind_an_offline_edge_are_unknown(client) -> None:
    seed(client.app)
    put(client.app, topics.EDGE_PRESENCE, {"state": "offline", "role": "edge_agent", "session": 1}, center=CENTER)
    center = client.get(f"/api/centers/{CENTER}").json()
    assert center["edge_online"] is False
    assert (center["devices_online"], center["devices_unknown"], center["devices_total"]) == (0, 1, 2)
    statuses = {d["device_id"]: (d["online"], d["status"]) for d in center["devices"]}
    assert statuses == {DISPLAY: (True, "unknown"), PAD: (False, "offline")}


def test_devices(client) -> None:
    seed(client.app)
    assert {d["device_id"] for d in client.get("/api/devices").json()} == {DISPLAY, PAD}
    assert client.get("/api/devices", params={"center": OTHER_CENTER}).json() == []


def test_a_duplicate_event_counts_once(client) -> None:
    seed(client.app)
    again = {"event_id": "today-early", "kind": "issued", "ticket": "A001", "service": "A", "ts": local(2, 0, 5)}
    assert put(client.app, topics.TICKET_EVENT, again, center=CENTER) == "duplicate"
    assert client.get(f"/api/centers/{CENTER}").json()["tickets_today"] == 2


def test_healthz_needs_no_login(client) -> None:
    assert client.get("/healthz", headers={"Authorization": ""}).json() == {
        "status": "ok", "database": "ok", "ingest": "disabled"}


def test_healthz_says_error_without_the_databases_words(client, tmp_path, caplog) -> None:
    """/healthz needs no login: the driver's message (file paths, host names, user names) goes to the log only."""
    from sqlmodel import Session, create_engine

    from fleet.deps import get_session

    unreachable = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'fleet.db'}")

    def broken_session():
        with Session(unreachable) as session:
            yield session

    client.app.dependency_overrides[get_session] = broken_session
    try:
        response = client.get("/healthz", headers={"Authorization": ""})
    finally:
        client.app.dependency_overrides.clear()
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "error", "ingest": "disabled"}
    assert "unable to open database file" in caplog.text  # for whoever runs the fleet


def test_the_api_needs_a_token(client) -> None:
    for path in ("/api/centers", f"/api/centers/{CENTER}", "/api/devices", "/api/audit", "/metrics"):
        response = client.get(path, headers={"Authorization": ""})
        assert response.status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer fleet_not-a-token"}).status_code == 401


def test_today_follows_the_clock(fleet_settings) -> None:
    later = NOW + timedelta(days=1)
    app = create_app(fleet_settings, clock=lambda: later)
    token = add_user(app.state.engine)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        seed(app)
        center = client.get(f"/api/centers/{CENTER}").json()
        assert center["day"] == "2024-05-03" and center["tickets_today"] == 1


def test_settings() -> None:
    assert parse_broker_url("mqtt://10.1.2.3:1884") == ("10.1.2.3", 1884)
    assert parse_broker_url("broker.local") == ("broker.local", 1883)
    with pytest.raises(ValueError):
        parse_broker_url("http://x")
    settings = Settings.from_env({"FLEET_BROKER_URL": "mqtt://h:1999", "FLEET_HEARTBEAT_TIMEOUT_S": "30",
                                  "FLEET_DATA_DIR": "/srv/fleet"})
    assert (settings.broker_host, settings.broker_port, settings.heartbeat_timeout_s) == ("h", 1999, 30)
    assert settings.database_url == "sqlite:////srv/fleet/fleet.db"
    assert Settings().heartbeat_timeout_s == 90 and Settings().timezone == "Asia/Shanghai"
    assert "hunter2-pw" not in repr(Settings(broker_username="u", broker_password="hunter2-pw"))
