"""One command, the whole chain: `provision device` as a technician runs it in a village hall.

Real parts: the fleet app (uvicorn) with its ingest on a county Mosquitto, the edge agent between the
county broker and the center's Mosquitto (started with the fleet's passwd and acl files and reloaded by
the edge agent when the fleet publishes new ones), mpremote's transport to a virtual ESP32 on a pty
running real MicroPython, and after its reset the real firmware (the board's network twin) with the
config.json that provisioning wrote. Registration -> account files at the center -> the device's birth
-> the self-test with each button pressed -> the fleet sees the device online, activated.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from fleet.app import create_app
from fleet.models import Device
from fleet.registration.broker_files import CENTER_BROKER_SETTINGS
from fleet.registration.models import DeviceRegistration
from fleet.registration.service import EdgeIssued
from fleet.settings import Settings
from provisioning.testing.firmware_twin import FirmwareTwin
from tests.edge.test_broker_accounts import RunningAgent, edge_config
from tests.fleet.fleet_testkit import add_user
from tests.fleet.live_fleet import serve
from tests.support.centers import CENTER_CODE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker
DEVICE = "dev-a4cf12ab34cd"  # the virtual board's MAC


def center_broker_with_edge_account(tmp_path: Path, url: str, token: str, broker_factory):
    """What the technician does once when a center is set up: the edge account, the first files."""
    headers = {"Authorization": f"Bearer {token}"}
    edge = httpx.post(f"{url}/api/centers/{CENTER_CODE}/edge-credentials", headers=headers)
    assert edge.status_code == 200, edge.text
    files = httpx.get(f"{url}/api/centers/{CENTER_CODE}/broker-files", headers=headers)
    assert files.status_code == 200, files.text
    files_dir = tmp_path / "center-broker"
    files_dir.mkdir()
    for name in ("passwd", "acl"):
        (files_dir / name).write_text(files.json()[name])
        (files_dir / name).chmod(0o600)
    broker = broker_factory("center", password_file=files_dir / "passwd", acl_file=files_dir / "acl",
                            pid_file=files_dir / "mosquitto.pid", settings=CENTER_BROKER_SETTINGS)
    answer = edge.json()
    return broker, files_dir, EdgeIssued(CENTER_CODE, answer["username"], answer["password"],
                                         answer["county_username"], answer["county_password"], answer["edge_key"])


def press_each_button_when_asked(twin: FirmwareTwin) -> threading.Thread:
    """The technician's finger: once the pad shows its self-test, each button once."""
    def press() -> None:
        wait_until(lambda: twin.runtime is not None and twin.runtime.button_check is not None, 120,
                   "the pad's self-test screen")
        for score in (5, 4, 3, 2, 1):
            twin.press(score)

    thread = threading.Thread(target=press, daemon=True)
    thread.start()
    return thread


def test_a_technician_provisions_a_pad_and_the_fleet_sees_it_online(
        tmp_path, broker_factory, board_factory, provision, device_args):
    county = broker_factory("county")
    settings = Settings(data_dir=tmp_path / "fleet", database_url=f"sqlite:///{tmp_path / 'fleet.db'}",
                        broker_port=county.port, session_cookie_secure=False)
    app = create_app(settings)
    token = add_user(app.state.engine, "tech", "town_operator", CENTER_CODE[:9])
    twin = FirmwareTwin(tmp_path / "twin")
    with serve(app) as url:
        center, files_dir, edge = center_broker_with_edge_account(tmp_path, url, token, broker_factory)
        agent = RunningAgent(edge_config(tmp_path, center, county, files_dir, edge))
        try:
            wait_until(lambda: agent.agent.uplink.connected.is_set() and agent.agent.center_link.connected.is_set(),
                       what="the edge agent on both brokers")
            board = board_factory(on_power_on=twin.boot)
            fingers = press_each_button_when_asked(twin)
            result = provision(*device_args(board.port, "--technician", "李工", "--fleet", url, "--token", token,
                                            "--insecure", "--self-test-time", "60", broker=f"127.0.0.1:{center.port}",
                                            check=True))
            fingers.join(5)
            assert result.status == 0, result.out + result.err
            lines = result.out.splitlines()
            for step in ("✓ fleet registration", "✓ broker", "✓ restart", "✓ online", "✓ self-test"):
                assert any(line.startswith(step) for line in lines), (step, result.out)
            assert "press each button of the pad once" in result.out
            record = provision.read_records()[-1]
            assert record["outcome"] == "ok" and record["after_reset"] == "online, self-test passed"

            # The device's birth went center -> edge -> county -> fleet: registered and now active.
            def activated() -> bool:
                with Session(app.state.engine) as session:
                    registration = session.get(DeviceRegistration, DEVICE)
                    device = session.get(Device, DEVICE)
                    return bool(registration and registration.activated_at and device and device.online)

            wait_until(activated, 30, "the fleet to see the device online")
        finally:
            agent.stop()
            twin.close()
