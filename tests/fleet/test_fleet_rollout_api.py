"""Rollouts through the API and the 固件升级 pages: scope, roles, CSRF, audit, actions, and county IT's page in
headless Chromium (canary first, a crashing bundle halts after the canary, roll back)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import ADMIN, add_user, log_in
from live_fleet import serve
from sqlmodel import Session, select
from test_fleet_rollouts import CANARY, CRASHING, DEVICES, NEW, OLD, T0, Built, Recorder, birth, status

from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.auth.principal import CLI_USER
from fleet.db import write_session
from fleet.devconfig.keys import set_key
from fleet.registration.service import issue_edge_credentials
from fleet.rollouts import plan, service
from fleet.rollouts.routes import rollout_job
from protocol import messages

FAR_TOWN = DEVICES[3][1][:9]


class AppRecorder(Recorder):
    """Stands in for the ingest's MQTT client as the app's publisher (what would go to the county broker)."""

    connected = True

    def stop(self) -> None:
        pass


def seeded_app(fleet_settings) -> Any:
    app = create_app(fleet_settings, clock=lambda: T0)
    engine = app.state.engine
    for device, center, role, window in DEVICES:
        birth(engine, device, center, role, window)
    with write_session(engine) as session:
        for device, _center, _role, _window in DEVICES:
            set_key(session, app.state.key_box, device, device.encode().ljust(32, b"k"), "tester", T0)
        for center in sorted({c for _d, c, _r, _w in DEVICES}):
            issue_edge_credentials(session, app.state.key_box, CLI_USER, center, T0)
        for version in (OLD, NEW, CRASHING):
            service.store_bundle(session, Built(version), "tester", T0)
    return app


@pytest.fixture
def app(fleet_settings) -> Any:
    return seeded_app(fleet_settings)


def test_api_rollout_canary_first_then_halt_and_roll_back(app) -> None:
    engine = app.state.engine
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    with TestClient(app) as client:
        recorder = AppRecorder()
        app.state.ingest = recorder
        bundles = client.get("/api/firmware/bundles", headers=admin).json()
        assert [b["version"] for b in bundles] == [CRASHING, NEW, OLD]
        made = client.post("/api/rollouts", headers=admin, json={"version": NEW, "scope": "445202",
                                                                 "canary": [CANARY], "max_in_flight": 5})
        assert made.status_code == 200, made.text
        rollout = made.json()
        assert rollout["status"] == "running" and rollout["devices"] == 5
        assert rollout["counts"]["updating"] == 1 and rollout["counts"]["pending"] == 4
        assert recorder.desired() == {CANARY: NEW}  # told at once, not at the job's next turn
        status(engine, CANARY, "confirmed", NEW, T0, target=NEW)
        rollout_job(app, T0)
        assert recorder.desired() == {CANARY: NEW, DEVICES[1][0]: NEW}
        fw = client.get(f"/api/devices/{CANARY}/firmware", headers=admin).json()
        assert (fw["running"], fw["firmware_state"]) == (NEW, "confirmed")

        # Pause: nothing more starts; resume goes on; roll back sends both back to 0.1.0.
        rid = rollout["id"]
        assert client.post(f"/api/rollouts/{rid}/pause", headers=admin).json()["status"] == "paused"
        assert client.post(f"/api/rollouts/{rid}/pause", headers=admin).status_code == 409
        status(engine, DEVICES[1][0], "confirmed", NEW, T0, target=NEW)
        rollout_job(app, T0)
        assert set(recorder.desired()) == {CANARY, DEVICES[1][0]}
        assert client.post(f"/api/rollouts/{rid}/resume", headers=admin).json()["counts"]["updating"] == 1
        back = client.post(f"/api/rollouts/{rid}/rollback", headers=admin).json()
        assert back["status"] == "rolling_back" and back["counts"]["rolling_back"] == 3
        assert recorder.desired()[CANARY] == OLD

        # A second rollout, of a bundle that crashes at boot, halts after the canary.
        for device in (CANARY, DEVICES[1][0], DEVICES[2][0]):
            status(engine, device, "confirmed", OLD, T0, target=OLD)
        rollout_job(app, T0)
        assert client.get(f"/api/rollouts/{rid}", headers=admin).json()["status"] == "rolled_back"
        second = client.post("/api/rollouts", headers=admin, json={"version": CRASHING, "scope": "445202",
                                                                   "canary": [CANARY]}).json()
        status(engine, CANARY, "failed", OLD, T0, target=CRASHING, failed=CRASHING, error="crashed at boot")
        rollout_job(app, T0)
        halted = client.get(f"/api/rollouts/{second['id']}", headers=admin).json()
        assert halted["status"] == "halted" and halted["counts"]["failed"] == 1 and halted["counts"]["pending"] == 4
        canary = next(t for t in halted["targets"] if t["device_id"] == CANARY)
        assert (canary["running"], canary["failed"], canary["reason"]) == (OLD, CRASHING, "crashed at boot")
        listed = client.get("/api/rollouts", headers=admin).json()
        assert [r["id"] for r in listed] == [second["id"], rid] and listed[0]["targets"] is None
    with Session(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))
                   if e.action.startswith("rollout.")]
    assert actions == ["rollout.create", "rollout.pause", "rollout.resume", "rollout.rollback",
                       "rollout.rolled_back", "rollout.create", "rollout.halted"]


def test_api_scope_roles_and_refusals(app) -> None:
    engine = app.state.engine
    admin = {"Authorization": f"Bearer {add_user(engine)}"}
    town = {"Authorization": f"Bearer {add_user(engine, 'town-b', 'town_operator', FAR_TOWN)}"}
    reader = {"Authorization": f"Bearer {add_user(engine, 'reader', 'read_only')}"}
    with TestClient(app) as client:
        county = client.post("/api/rollouts", headers=admin, json={"version": NEW, "scope": "445202101001",
                                                                   "canary": [CANARY]}).json()
        # Another town's rollout is unknown to a town operator; it may not start one outside its town.
        assert client.get(f"/api/rollouts/{county['id']}", headers=town).status_code == 404
        assert client.post(f"/api/rollouts/{county['id']}/abort", headers=town).status_code == 404
        assert client.get("/api/rollouts", headers=town).json() == []
        assert client.post("/api/rollouts", headers=town, json={"version": NEW, "scope": "445202",
                                                                "canary": [CANARY]}).status_code == 403
        own = client.post("/api/rollouts", headers=town, json={"version": NEW, "scope": FAR_TOWN,
                                                               "canary": [DEVICES[3][0]]})
        assert own.status_code == 200 and own.json()["devices"] == 2
        # Read-only: reads, never writes.
        assert len(client.get("/api/rollouts", headers=reader).json()) == 2
        assert client.post(f"/api/rollouts/{county['id']}/pause", headers=reader).status_code == 403
        # Refusals with the reason.
        busy = client.post("/api/rollouts", headers=admin, json={"version": CRASHING, "scope": "445202",
                                                                 "canary": [CANARY]})
        assert busy.status_code == 409 and "another active rollout" in busy.json()["detail"]
        assert client.post("/api/rollouts", headers=admin, json={"version": "9.9", "scope": "445202",
                                                                 "canary": [CANARY]}).status_code == 409
        assert client.post("/api/rollouts", headers=admin, json={"version": NEW, "scope": "4452",
                                                                 "canary": [CANARY]}).status_code == 422
        assert client.post("/api/rollouts", headers=admin, json={"version": NEW, "scope": "445202",
                                                                 "canary": []}).status_code == 422
        assert client.post(f"/api/rollouts/{county['id']}/explode", headers=admin).status_code == 422
        assert client.get("/api/rollouts/99999", headers=admin).status_code == 404
        assert client.get("/api/devices/dev-000000000000/firmware", headers=admin).status_code == 404
        # A bundle is built by county administrators only, of the fleet's own firmware tree, a label used once.
        assert client.post("/api/firmware/bundles", headers=town, json={"version": "1.0.0"}).status_code == 403
        built = client.post("/api/firmware/bundles", headers=admin, json={"version": "1.0.0"})
        assert built.status_code == 200, built.text
        assert built.json()["roles"] == list(messages.DEVICE_ROLES) and built.json()["created_by"] == ADMIN
        # The same tree at the same moment is the same bundle (kept once); a label of another bundle is 409.
        again = client.post("/api/firmware/bundles", headers=admin, json={"version": "1.0.0"})
        assert again.status_code == 200 and again.json()["digest"] == built.json()["digest"]
        assert client.post("/api/firmware/bundles", headers=admin, json={"version": "../x"}).status_code == 422
        assert client.post("/api/firmware/bundles", headers=admin, json={"version": NEW}).status_code == 409


@pytest.fixture
def live(fleet_settings):
    app = seeded_app(fleet_settings)
    add_user(app.state.engine)
    recorder = AppRecorder()
    with serve(app) as base:
        app.state.ingest = recorder
        yield base, app, recorder


@pytest.mark.browser
def test_county_it_runs_rollouts_from_the_page(live, page) -> None:
    base, app, recorder = live
    engine = app.state.engine
    log_in(page, base)
    page.click("#nav a[data-nav='rollouts']")
    assert page.locator("#no-rollouts").inner_text() == "尚无升级任务。"
    row = page.locator(f"#device-firmware tr[data-device='{CANARY}']")
    assert row.locator(".running").inner_text() == OLD

    # A rollout of 0.2.0 with the window-1 display as canary: only it is told.
    page.select_option("#rf-version", NEW)
    page.fill("#rf-scope", "445202")
    page.select_option("#rf-canary", [CANARY])
    page.click("#rf-submit")
    page.wait_for_url(re.compile(r".*/rollouts/\d+$"))
    assert page.locator("#rollout-status strong").inner_text() == "进行中"
    assert page.locator(f"#rollout-devices tr[data-device='{CANARY}'] .state").inner_text() == "更新中"
    assert page.locator("#rollout-counts [data-count='pending'] .value").inner_text() == "4"
    assert recorder.desired() == {CANARY: NEW}
    status(engine, CANARY, "confirmed", NEW, T0, target=NEW)
    rollout_job(app, T0)
    page.reload()
    assert page.locator(f"#rollout-devices tr[data-device='{CANARY}'] .state").inner_text() == "成功"
    assert page.locator(f"#rollout-devices tr[data-device='{CANARY}'] .running").inner_text() == NEW
    assert page.locator("#waves tr[data-wave='1'] [data-count='updating']").inner_text() == "1"
    for device, *_ in DEVICES[1:]:
        status(engine, device, "confirmed", NEW, T0, target=NEW)
        rollout_job(app, T0)
    page.reload()
    assert page.locator("#rollout-status strong").inner_text() == "已完成"
    assert page.locator("#rollout-counts [data-count='succeeded'] .value").inner_text() == "5"
    assert page.locator("#rollout-actions button").all_inner_texts() == ["回滚"]

    # 0.3.0 crashes at boot: halted after the canary, which runs 0.2.0 again and says why.
    page.goto(base + "/rollouts")
    page.select_option("#rf-version", CRASHING)
    page.fill("#rf-scope", "445202")
    page.select_option("#rf-canary", [CANARY])
    page.fill("#rf-threshold", "0")
    page.click("#rf-submit")
    page.wait_for_url(re.compile(r".*/rollouts/\d+$"))
    status(engine, CANARY, "failed", NEW, T0 + timedelta(seconds=30), target=CRASHING, failed=CRASHING,
           error="新固件启动失败，已回退")
    rollout_job(app, T0)
    page.reload()
    assert page.locator("#rollout-status strong").inner_text() == "已自动停止"
    assert page.locator("#rollout-status .reason").inner_text() == "（试点设备失败 1 台，超过允许的 0 台）"
    canary = page.locator(f"#rollout-devices tr[data-device='{CANARY}']")
    assert canary.locator(".state").inner_text() == "失败"
    assert (canary.locator(".running").inner_text(), canary.locator(".failed").inner_text()) == (NEW, CRASHING)
    assert canary.locator(".reason").inner_text() == "新固件启动失败，已回退"
    assert page.locator("#rollout-counts [data-count='pending'] .value").inner_text() == "4"
    assert {d for d, v in recorder.desired().items() if v == CRASHING} == {CANARY}
    assert sorted(page.locator("#rollout-actions button").all_inner_texts()) == sorted(["继续", "中止", "回滚"])

    # Abort from the page; the list shows both with their counts; the English page has no Chinese labels.
    page.locator("#rollout-actions button[data-action='abort']").click()
    page.wait_for_url(re.compile(r".*/rollouts/\d+$"))
    assert page.locator("#rollout-status strong").inner_text() == "已中止"
    assert page.locator("#rollout-status .reason").inner_text() == "（admin：中止）"
    page.goto(base + "/rollouts")
    assert page.locator("#rollouts tr[data-rollout]").count() == 2
    assert page.locator("#rollouts tr[data-status='aborted'] [data-count='failed']").inner_text() == "1"
    page.goto(base + "/rollouts?lang=en")
    headers = " ".join(page.locator("#rollouts th, #device-firmware th, #rollout-form label").all_inner_texts())
    assert not re.search(r"[\u4e00-\u9fff]", headers), headers
    with Session(engine) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "rollout.abort")).all()
    assert [json.loads(e.detail)["from"] for e in entries] == [plan.HALTED]
    page.goto(base + "/audit?lang=zh")
    assert "中止固件升级" in page.locator("main").inner_text()
    assert "固件升级自动停止" in page.locator("main").inner_text()

    # The device page tells the canary's firmware and its rollouts.
    page.goto(base + f"/devices/{CANARY}?lang=zh")
    section = page.locator("#device-firmware-section")
    assert (section.locator(".running").inner_text(), section.locator(".failed").inner_text()) == (NEW, CRASHING)
    assert section.locator(".device-rollouts tr[data-rollout] .state").all_inner_texts() == ["失败", "成功"]


def test_every_message_of_the_rollout_pages_has_english() -> None:
    from fleet.alerts.messages_en import install_english
    from fleet.web.i18n import CATALOGUES

    install_english()  # the dashboard's shared words, as create_app installs them

    templates = Path(__file__).resolve().parents[2] / "fleet" / "web" / "templates"
    used: set[str] = set()
    for name in ("rollouts.html", "rollout.html", "rollout_device_section.html"):
        used |= set(re.findall(r'_\(\s*"([^"]+)"', (templates / name).read_text()))
    for labels in (plan.ROLLOUT_LABELS, plan.TARGET_LABELS, plan.WAVE_LABELS, plan.ACTION_LABELS):
        used |= set(labels.values())
    from fleet.rollouts.routes import TARGET_REASONS
    from fleet.web.audit_view import ACTION_LABELS, DETAIL_LABELS

    used |= {label for action, label in ACTION_LABELS.items() if action.startswith(("rollout.", "firmware."))}
    used |= {DETAIL_LABELS[key] for key in ("scope", "canary", "failure_threshold_pct", "max_in_flight",
                                            "device_timeout_s", "from", "to", "size")}
    used |= {message for _pattern, message in TARGET_REASONS} | {"{wave}失败 {failed} 台，超过允许的 {allowed} 台"}
    missing = sorted(text for text in used if re.search(r"[\u4e00-\u9fff]", text) and text not in CATALOGUES["en"])
    assert not missing


def test_the_fleets_own_reasons_are_said_in_the_pages_language() -> None:
    from fleet.rollouts.routes import target_reason
    from fleet.web.i18n import translator

    zh, en = translator("zh"), translator("en")
    assert target_reason("timeout: no verdict within 900 s (no device key)", zh) == "超时：900 秒内未回报结果"
    assert target_reason("no bundle of its previous version 0.1.0", zh) == "平台没有原版本 0.1.0 的固件包，无法回滚"
    assert target_reason("center 445202101001 has no edge key (edge credentials not issued)", en) == \
        "The center's edge has no key yet; sent later"
    assert target_reason("already running", zh) == "已是此版本"
    assert target_reason("crashed at boot: this build is broken", zh) == "crashed at boot: this build is broken"
    assert target_reason(None, zh) == ""
