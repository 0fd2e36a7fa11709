"""Province scale: the overview's figures from GROUP BY queries, paged lists, devices awaiting first contact."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD, add_user
from sqlmodel import Session, select

from fleet.alerts.evaluate import run_alert_sweep
from fleet.alerts.models import Alert
from fleet.app import create_app
from fleet.auth.principal import CLI_USER, CurrentUser
from fleet.db import write_session
from fleet.ingest import handle_message
from fleet.models import Center, Device
from fleet.overview import (
    center_summaries,
    county_overview,
    edge_reasons_by_center,
    list_devices,
    percent,
    serving_problems,
)
from fleet.web.labels import status_label
from protocol import topics
from protocol.identity import device_id_from_mac

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing, a working day
REGISTERED = device_id_from_mac("a4:cf:12:00:00:03")


def send(engine, name: str, payload: dict, now: datetime = MONDAY_10, **params) -> str:
    return handle_message(engine, topics.build(name, **params), json.dumps({"v": 1, **payload}).encode(), now)


def edge(engine, center: str, online: bool = True) -> None:
    send(engine, topics.EDGE_PRESENCE, {"state": "online" if online else "offline", "session": 1,
                                        "role": "edge_agent", "board": "pi", "fw": "1", "contract": 1},
         center=center)


def birth(engine, center: str, device: str, role: str, window: int | None, online: bool = True) -> None:
    payload = {"state": "online", "session": 1, "role": role, "board": "esp32", "fw": "1", "contract": 1}
    if window is not None:
        payload["window"] = window
    send(engine, topics.DEVICE_PRESENCE, payload, center=center, device=device)
    if not online:
        send(engine, topics.DEVICE_PRESENCE, {"state": "offline", "session": 1, "role": role}, center=center,
             device=device)


def register(engine, center: str, device: str, role: str, window: int) -> None:
    """A device as provisioning registers it: known to the fleet, never connected (last_seen NULL)."""
    with write_session(engine) as session:
        if session.get(Center, center) is None:
            session.add(Center.new(center, MONDAY_10))
        session.add(Device(device_id=device, center_code=center, role=role, window=window, updated=MONDAY_10))


def test_a_device_never_seen_online_is_awaiting_first_contact(engine, fleet_settings) -> None:
    edge(engine, CENTER)
    birth(engine, CENTER, DISPLAY, "queue_display", 3, online=False)  # seen, then gone: offline
    birth(engine, CENTER, PAD, "rating_pad", 3)
    register(engine, CENTER, REGISTERED, "rating_pad", 4)

    at_once = fleet_settings.model_copy(update={"device_offline_alert_min": 0})  # offline alerts without delay
    with write_session(engine) as session:
        changes = run_alert_sweep(session, MONDAY_10 + timedelta(minutes=30), at_once)
    assert [c.key for c in changes] == [f"device:{DISPLAY}"]  # none for the device awaiting its first contact

    with Session(engine) as session:
        statuses = {d["device_id"]: d["status"] for d in list_devices(session, CENTER)}
        assert statuses == {DISPLAY: "offline", PAD: "online", REGISTERED: "awaiting"}
        [summary] = center_summaries(session, MONDAY_10, SHANGHAI, CLI_USER)
        assert (summary["devices_online"], summary["devices_total"], summary["devices_awaiting"]) == (1, 2, 1)
        overview = county_overview(session, MONDAY_10, SHANGHAI, CLI_USER)
    [town] = overview["towns"]
    assert (town["devices_online"], town["devices_total"], town["devices_awaiting"]) == (1, 2, 1)
    assert town["online_pct"] == 50.0  # not 33.3: the awaiting device is neither online nor offline
    [center] = overview["not_serving"]
    assert [p["text"] for p in center["problems"]] == ["{window}号窗口排队显示屏离线"]  # nothing about window 4
    assert status_label("awaiting") == "待上线"


def old_overview(session: Session, user: CurrentUser) -> dict:
    """The overview's rules applied device by device, in Python (what the page computed before GROUP BY)."""
    centers = {c["code"]: c for c in center_summaries(session, MONDAY_10, SHANGHAI, user)}
    devices = defaultdict(list)
    for device in list_devices(session, user=user):
        devices[device["center_code"]].append(device)
    reasons = edge_reasons_by_center(session)
    alerts = defaultdict(int)
    for alert in session.query(Alert).filter(Alert.state.in_(("open", "acknowledged"))):
        alerts[alert.center_code] += 1
    towns: dict = {}
    not_serving = []
    for code, center in sorted(centers.items()):
        problems = serving_problems(center, devices[code], reasons.get(code, []))
        town = towns.setdefault(center["town_code"], defaultdict(int))
        town["center_count"] += 1
        town["devices_online"] += sum(d["status"] == "online" for d in devices[code])
        town["devices_total"] += sum(d["status"] != "awaiting" for d in devices[code])
        town["devices_awaiting"] += sum(d["status"] == "awaiting" for d in devices[code])
        town["not_serving"] += bool(problems)
        town["open_alerts"] += alerts[code]
        town["tickets_today"] += center["tickets_today"]
        town["bad_ratings_today"] += center["bad_ratings_today"]
        if problems:
            not_serving.append((code, problems))
    for town in towns.values():
        town["online_pct"] = percent(town["devices_online"], town["devices_total"])
    return {"towns": {code: dict(t) for code, t in towns.items()}, "not_serving": not_serving}


def seed_county(engine) -> None:
    """Three towns; edges online and offline; devices online, offline, unknown, awaiting; reasons, alerts, events."""
    centers = ["445202101001", "445202101002", "445202102001", "445202102002", "445202103001"]
    for n, center in enumerate(centers):
        edge(engine, center)
        for window in (1, 2):
            birth(engine, center, device_id_from_mac(bytes([0, 0, 0, n, window, 1])), "queue_display", window,
                  online=(n + window) % 3 != 0)
            birth(engine, center, device_id_from_mac(bytes([0, 0, 0, n, window, 2])), "rating_pad", window)
        register(engine, center, device_id_from_mac(bytes([0, 0, 0, n, 9, 9])), "rating_pad", 9)
        for i in range(n + 1):
            send(engine, topics.TICKET_EVENT, {"event_id": f"t{i}", "kind": "issued", "ticket": f"A{i:03d}",
                                               "service": "A", "ts": MONDAY_10.timestamp() - 60}, center=center)
        send(engine, topics.RATING_EVENT, {"event_id": "r1", "rating_id": "r1", "ticket": "A000", "service": "A",
                                           "window": 1, "score": 1 + n % 2, "ts": MONDAY_10.timestamp() - 30},
             center=center)
    edge(engine, centers[3], online=False)  # its devices are unknown; the center has one problem
    send(engine, topics.EDGE_HEALTH, {"ready": False, "reasons": ["打印机缺纸"], "components": {},
                                      "ts": MONDAY_10.timestamp()}, center=centers[4])
    send(engine, topics.EDGE_HEALTH, {"ready": True, "reasons": [], "components": {},
                                      "ts": MONDAY_10.timestamp()}, center=centers[1])
    with write_session(engine) as session:
        for n, (center, state) in enumerate([(centers[0], "open"), (centers[0], "acknowledged"),
                                              (centers[2], "resolved"), (centers[4], "open")]):
            session.add(Alert(key=f"k{n}", rule="device_offline", center_code=center, state=state, message="x",
                              opened_at=MONDAY_10, last_active_at=MONDAY_10))


@pytest.mark.parametrize("scope", [None, "445202102"])
def test_the_overview_figures_are_those_of_the_device_by_device_rules(engine, scope) -> None:
    seed_county(engine)
    user = CurrentUser(id=1, username="u", role="county_admin" if scope is None else "town_operator",
                       division_prefix=scope)
    with Session(engine) as session:
        expected = old_overview(session, user)
        overview = county_overview(session, MONDAY_10, SHANGHAI, user)
    towns = {t["town_code"]: {k: t[k] for k in expected["towns"][t["town_code"]]} for t in overview["towns"]}
    assert towns == expected["towns"]
    assert [(c["code"], c["problems"]) for c in overview["not_serving"]] == expected["not_serving"]
    assert len(expected["not_serving"]) >= 2 and any(t["devices_awaiting"] for t in expected["towns"].values())
    assert overview["center_count"] == sum(t["center_count"] for t in expected["towns"].values())
    assert overview["open_alerts"] == sum(t["open_alerts"] for t in expected["towns"].values())


@pytest.fixture
def client(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: MONDAY_10)
    token = add_user(app.state.engine)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_centers_and_devices_come_a_page_at_a_time(client) -> None:
    engine = client.app.state.engine
    for center in (CENTER, "445202101002", OTHER_CENTER):
        edge(engine, center)
        birth(engine, center, device_id_from_mac(bytes.fromhex(center)), "queue_display", 1)
    birth(engine, CENTER, PAD, "rating_pad", 1)

    first = client.get("/api/centers", params={"limit": 2})
    assert [c["code"] for c in first.json()] == [CENTER, "445202101002"]
    assert first.headers["X-Total-Count"] == "3"
    assert [c["code"] for c in client.get("/api/centers", params={"limit": 2, "offset": 2}).json()] == \
        [OTHER_CENTER]
    town = client.get("/api/centers", params={"prefix": CENTER[:9]})
    assert [c["code"] for c in town.json()] == [CENTER, "445202101002"] and town.headers["X-Total-Count"] == "2"
    assert client.get("/api/centers", params={"prefix": CENTER}).json()[0]["devices_total"] == 2

    devices = client.get("/api/devices", params={"prefix": CENTER[:9], "limit": 2, "offset": 1})
    assert devices.headers["X-Total-Count"] == "3"
    assert [d["center_code"] for d in devices.json()] == [CENTER, "445202101002"]
    assert len(client.get("/api/devices").json()) == 4

    for path, params in (("/api/centers", {"limit": 0}), ("/api/centers", {"limit": 100_000}),
                         ("/api/centers", {"offset": -1}), ("/api/centers", {"prefix": "4452-"}),
                         ("/api/devices", {"limit": 100_000}), ("/api/devices", {"prefix": "x"})):
        assert client.get(path, params=params).status_code == 422, (path, params)

    operations = client.get("/openapi.json").json()["paths"]
    for path in ("/api/centers", "/api/devices"):
        documented = {p["name"]: p["schema"] for p in operations[path]["get"]["parameters"]}
        assert {"limit", "offset", "prefix"} <= set(documented)
        assert documented["limit"]["maximum"] >= documented["limit"]["default"] > 0
        assert "X-Total-Count" in operations[path]["get"]["responses"]["200"]["headers"]


def test_a_town_operator_pages_only_through_their_town(client) -> None:
    engine = client.app.state.engine
    for center in (CENTER, OTHER_CENTER):
        edge(engine, center)
    token = add_user(engine, "town-b", "town_operator", OTHER_CENTER[:9])
    as_town = {"Authorization": f"Bearer {token}"}
    answer = client.get("/api/centers", headers=as_town)
    assert [c["code"] for c in answer.json()] == [OTHER_CENTER] and answer.headers["X-Total-Count"] == "1"
    assert client.get("/api/centers", params={"prefix": CENTER[:9]}, headers=as_town).json() == []


def test_the_overview_page_lists_centers_a_page_at_a_time(client, monkeypatch) -> None:
    engine = client.app.state.engine
    with write_session(engine) as session:  # 120 centers in two towns, their edges not connected yet
        for n in range(120):
            session.add(Center.new(f"445202{101 + n // 100:03d}{n % 100 + 1:03d}", MONDAY_10))
    monkeypatch.setattr("fleet.web.pages.NOT_SERVING_SHOWN", 50)

    def rows(page: str) -> list[str]:
        return [line.split('data-center="')[1].split('"')[0] for line in page.splitlines()
                if '<tr data-center="' in line]

    first = client.get("/").text
    assert rows(first) == [f"445202101{n:03d}" for n in range(1, 101)]
    assert 'id="card-centers"><div class="value">120<' in first
    assert 'href="?page=2#centers"' in first and "第 1/2 页，共 120 个中心" in first
    assert first.count('<li data-center="') == 50 and "另有 70 个中心无法服务" in first  # all 120 are counted
    assert 'id="card-not-serving"><div class="value">120<' in first
    second = client.get("/", params={"page": 2}).text
    assert rows(second) == [f"445202102{n:03d}" for n in range(1, 21)]
    town = client.get("/", params={"prefix": "445202102"}).text
    assert rows(town) == [f"445202102{n:03d}" for n in range(1, 21)] and "第 1/" not in town
    assert 'id="card-centers"><div class="value">120<' in town  # the cards and towns keep the whole scope
    assert client.get("/", params={"prefix": "town"}).status_code == 422


def test_a_batch_of_heartbeats_leaves_what_storing_them_one_by_one_leaves(engine, tmp_path) -> None:
    from fleet.alerts.models import DeviceDrop, MisplacedDevice
    from fleet.db import create_db_engine, init_db
    from fleet.health_history import HealthSample, Retention
    from fleet.ingest import handle_batch

    one_by_one = create_db_engine(f"sqlite:///{tmp_path / 'one-by-one.db'}")
    init_db(one_by_one)
    retention = Retention(max_age_s=3600, max_samples=3)
    devices = [device_id_from_mac(bytes([0, 0, 0, 0, 0, n])) for n in range(4)]

    def heartbeat(device: str, session: int, uptime: float, center: str = CENTER, **figures) -> tuple[str, bytes]:
        return (topics.build(topics.DEVICE_HEALTH, center=center, device=device),
                json.dumps({"v": 1, "session": session, "uptime_s": uptime, "rssi": -50, **figures}).encode())

    def birth(device: str, session: int) -> tuple[str, bytes]:
        return (topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=device),
                json.dumps({"v": 1, "state": "online", "session": session, "role": "rating_pad",
                            "window": 2, "board": "esp32", "fw": "1.0.0", "contract": 1}).encode())

    old = MONDAY_10 - timedelta(hours=2)  # aged out by the retention
    rounds = [(old, [heartbeat(d, 1, 1) for d in devices[:2]]),
              (MONDAY_10, [heartbeat(d, 1, 10 + i) for i in range(5) for d in devices[:3]]
               + [heartbeat(devices[3], 2, 1), heartbeat(devices[0], 0, 99), heartbeat(devices[1], 3, 5)]),
              # Known devices: figures, a suspect session, a reconnection (a drop), a heartbeat before a birth
              # in the same batch, and one under another center (misplaced).
              (MONDAY_10 + timedelta(minutes=1),
               [heartbeat(devices[0], 1, 20, free_heap=1234, last_error="OSError: 113"),
                heartbeat(devices[2], 200_000, 1), heartbeat(devices[1], 5, 1), heartbeat(devices[3], 3, 2),
                birth(devices[3], 4), heartbeat(devices[0], 1, 21, center=OTHER_CENTER)]),
              (MONDAY_10 + timedelta(minutes=2), [heartbeat(devices[2], 1, 15)])]  # known devices only
    for now, batch in rounds:
        handle_batch(engine, batch, now, retention)
        for topic_text, raw in batch:
            handle_message(one_by_one, topic_text, raw, now, retention)

    def stored(on) -> tuple[list, list, list, list]:
        with Session(on) as session:
            samples = [(s.device_id, s.at, s.session, s.uptime_s, s.rssi, s.free_heap, s.last_error)
                       for s in session.exec(select(HealthSample).order_by(HealthSample.device_id, HealthSample.id))]
            rows = [d.model_dump() for d in session.exec(select(Device).order_by(Device.device_id))]
            drops = [(d.device_id, d.center_code, d.at, d.reason)
                     for d in session.exec(select(DeviceDrop).order_by(DeviceDrop.device_id, DeviceDrop.id))]
            centers = [(c.code, c.edge_last_seen) for c in session.exec(select(Center).order_by(Center.code))]
            misplaced = [(m.device_id, m.center_code, m.count) for m in session.exec(select(MisplacedDevice))]
        return samples, rows, drops, centers + misplaced

    batched = stored(engine)
    assert batched == stored(one_by_one)
    assert (devices[0], OTHER_CENTER, 1) in batched[3] and (CENTER, MONDAY_10 + timedelta(minutes=2)) in batched[3]
    assert [drop[0] for drop in batched[2]] == [devices[1]] * 4 + [devices[3]] * 2  # sessions skipped
    assert {row["device_id"]: row["session"] for row in batched[1]} == {
        devices[0]: 1, devices[1]: 5, devices[2]: 1, devices[3]: 4}
    uptimes = {d: [s[3] for s in batched[0] if s[0] == d] for d in devices}
    # Aged out, cut to the newest 3, the stale session's and the suspect one's heartbeats not kept, a new
    # session's kept, the misplaced one not kept.
    assert uptimes == {devices[0]: [13, 14, 20], devices[1]: [14, 5, 1], devices[2]: [13, 14, 15],
                       devices[3]: [1, 2]}
    one_by_one.dispose()
