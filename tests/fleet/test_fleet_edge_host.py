"""The Pi under each edge (edge_health `host`): alerts for a disk nearly full and a clock out of sync, and the
figures on the center page (issue 15)."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from fleet_testkit import CENTER, add_user
from test_fleet_alerts import MONDAY_10, SUNDAY_10, alerts, edge_online, send, sweep

from fleet.alerts.engine import OPENED, RESOLVED_CHANGE
from fleet.alerts.rules import CLOCK, CLOCK_UNSYNCED_ALERT_S, STORAGE, health_conditions, host_conditions
from fleet.app import create_app
from fleet.center_view import host_figures
from protocol import topics

GB = 1024 ** 3


def host(**figures) -> dict:
    return {"version": "0.1.0+r812", "disk_total_bytes": 32 * GB, "disk_free_bytes": 20 * GB, "cpu_temp_c": 48.3,
            "clock": "synced", "clock_source": "timedatectl", "clock_unsynced_s": 0, "db_bytes": 2 * 1024 ** 2,
            **figures}


def summary(now, storage: dict | None = None, **figures) -> dict:
    return {"ready": True, "reasons": [], "ts": now.timestamp(),
            "components": {"storage": storage or {"ok": True, "state": "ok", "free_bytes": 20 * GB}},
            "host": host(**figures)}


def test_a_disk_nearly_full_is_the_storage_alert_raised_before_the_edge_runs_out(engine, fleet_settings) -> None:
    now = SUNDAY_10  # at any hour, as the full disk: it can be freed before the center opens
    edge_online(engine, now)
    send(engine, topics.EDGE_HEALTH, summary(now, disk_free_bytes=int(2.5 * GB)), now, center=CENTER)
    assert [(c.kind, c.key) for c in sweep(engine, fleet_settings, now)] == [(OPENED, f"component:{CENTER}:storage")]
    [alert] = alerts(engine)
    assert (alert.rule, alert.message, alert.severity) == (STORAGE, "边缘网关存储空间将满", "warning")
    assert alert.reason == "已用 92%，剩余 2.5 GB；用尽后将无法取号、叫号和保存评价"
    # Cleaned up: resolved.
    send(engine, topics.EDGE_HEALTH, summary(now + timedelta(minutes=1)), now + timedelta(minutes=1), center=CENTER)
    assert [c.kind for c in sweep(engine, fleet_settings, now + timedelta(minutes=2))] == [RESOLVED_CHANGE]


def test_the_edges_own_storage_state_speaks_for_the_disk_when_it_is_not_ok() -> None:
    """One alert per disk: low_space (the edge's absolute minimum) takes the key, nearly_full adds nothing."""
    low = {"ok": False, "state": "low_space", "free_bytes": 50 * 1024 ** 2}
    report = summary(MONDAY_10, storage=low, disk_free_bytes=50 * 1024 ** 2)
    from_components = health_conditions(CENTER, report)
    assert [c.message for c in from_components] == ["边缘网关存储空间不足"]
    assert host_conditions(CENTER, report, MONDAY_10) == []
    assert host_conditions(CENTER, {"ready": True, "components": {}, "ts": 1.0}, MONDAY_10) == []  # an older edge


def test_a_clock_unsynced_for_a_while_alerts_at_any_hour(engine, fleet_settings) -> None:
    now = SUNDAY_10
    edge_online(engine, now)
    # A Pi just booted is unsynced for a minute or two: no alert yet.
    send(engine, topics.EDGE_HEALTH, summary(now, clock="unsynced", clock_unsynced_s=120), now, center=CENTER)
    assert sweep(engine, fleet_settings, now) == []
    later = now + timedelta(seconds=CLOCK_UNSYNCED_ALERT_S)
    send(engine, topics.EDGE_HEALTH, summary(later, clock="unsynced", clock_source="chrony",
                                             clock_unsynced_s=CLOCK_UNSYNCED_ALERT_S + 120), later, center=CENTER)
    assert [(c.kind, c.key) for c in sweep(engine, fleet_settings, later)] == [(OPENED, f"clock:{CENTER}")]
    [alert] = alerts(engine)
    assert (alert.rule, alert.message, alert.severity) == (CLOCK, "边缘网关时钟未同步", "warning")
    assert alert.reason.startswith("已 17 分钟未与网络时间同步（chrony）")
    synced = later + timedelta(minutes=1)
    send(engine, topics.EDGE_HEALTH, summary(synced), synced, center=CENTER)
    assert [c.kind for c in sweep(engine, fleet_settings, synced)] == [RESOLVED_CHANGE]


def test_a_clock_far_from_the_countys_alerts_at_once_whatever_the_edge_thinks(engine, fleet_settings) -> None:
    """Its NTP daemon may say nothing (or there is none): the county compares the summary's time with its own."""
    now = MONDAY_10
    edge_online(engine, now)
    send(engine, topics.EDGE_HEALTH, summary(now + timedelta(minutes=10), clock="unknown"), now, center=CENTER)
    assert [(c.kind, c.key) for c in sweep(engine, fleet_settings, now)] == [(OPENED, f"clock:{CENTER}")]
    [alert] = alerts(engine)
    assert alert.message == "边缘网关时钟不准"
    assert alert.reason.startswith("比县平台快 10 分钟")
    # A minute of network delay and clock drift is no alert.
    assert host_conditions(CENTER, summary(now - timedelta(seconds=60)), now) == []


def test_the_center_page_shows_the_edge_host(engine, fleet_settings) -> None:
    now = MONDAY_10 + timedelta(minutes=5)
    app = create_app(fleet_settings, clock=lambda: now)
    edge_online(app.state.engine, MONDAY_10)
    send(app.state.engine, topics.EDGE_HEALTH, summary(now, clock="unsynced", clock_unsynced_s=60, cpu_temp_c=None,
                                                       disk_free_bytes=int(1.6 * GB)), now, center=CENTER)
    token = add_user(app.state.engine)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        page = client.get(f"/centers/{CENTER}")
        assert page.status_code == 200
        html = page.text
        english = client.get(f"/centers/{CENTER}?lang=en").text
    assert 'id="host-version">0.1.0+r812<' in html
    assert "1.6 / 32.0 GB（已用 95%）" in html and 'id="host-disk" class="warn"' in html
    assert 'id="host-temp">—<' in html  # a machine without thermal zones
    assert 'data-clock="unsynced" class="warn">未同步<' in html
    assert 'id="host-db">2.0 MB<' in html
    assert "Edge version" in english and "not synchronised" in english


def test_host_figures_for_an_older_edge_are_none() -> None:
    assert host_figures(None) is None
    assert host_figures({"ready": True}) is None
    figures = host_figures({"host": host(clock="something new")})
    assert figures["clock"] == "unknown" and not figures["clock_warning"] and not figures["disk_warning"]
