"""`make demo` as a newcomer uses it: start, click through the slice in Chromium, Ctrl-C, start again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.support.waiting import wait_until
from tools.mosquitto import free_port, port_is_open

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.broker, pytest.mark.browser]


class DemoRun:
    def __init__(self, run_dir: Path, base_port: int, output: Path) -> None:
        self.output = output
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.output, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.demo", "--run-dir", str(run_dir), "--base-port", str(base_port)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def urls(self) -> dict[str, str]:
        def ready() -> str | None:
            assert self.process.poll() is None, f"demo exited:\n{self.text()}"
            return self.text() if "Press Ctrl-C" in self.text() else None

        text = wait_until(ready, 90, "the demo to print its URLs")
        found = dict(re.findall(r"^\s+(fleet dashboard|kiosk|window 3 staff caller|hall display|simulated devices|"
                                r"county broker|center broker)\b.*?((?:http|mqtt)://\S+)", text, re.M))
        return found

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        return self.process.wait(30)


def connect_refused(port: int) -> bool:
    """Whether the broker on `port` refuses a client without user name and password."""
    answers: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda _client, _userdata, _flags, reason, _properties: answers.append(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: answers, what=f"an answer to an anonymous CONNECT on {port}")
        return answers[0].is_failure
    finally:
        client.loop_stop()
        client.disconnect()


def test_make_demo_runs_the_slice_and_stops_cleanly(tmp_path, page):
    base = free_port()
    demo = DemoRun(tmp_path / "run", base, tmp_path / "first-run.txt")
    try:
        urls = demo.urls()
        assert set(urls) == {"fleet dashboard", "kiosk", "window 3 staff caller", "hall display",
                             "simulated devices", "county broker", "center broker"}
        assert urls["county broker"].startswith("mqtt://127.0.0.1:")
        # Both brokers run with accounts, as a county's do: nobody connects without one.
        for name in ("county broker", "center broker"):
            assert connect_refused(int(urls[name].rsplit(":", 1)[1])), f"the {name} took an anonymous client"

        # A resident takes a ticket for 社保业务 at the kiosk.
        page.goto(urls["kiosk"])
        page.get_by_role("button", name=re.compile("社保业务")).click()
        page.get_by_role("button", name="确认").click()
        page.locator("#ticket-number").filter(has_text="A001").wait_for()
        page.screenshot(path=str(tmp_path / "kiosk.png"))

        # Window 3's staff calls the next resident.
        page.goto(urls["window 3 staff caller"])
        staff_no, pin = re.search(r"staff sign in 工号 / 密码\s+(\d+) / (\d+) \(window 3\)", demo.text()).groups()
        page.locator("#staff-no").fill(staff_no)
        page.locator("#staff-pin").fill(pin)
        page.get_by_role("button", name="登录").click()
        page.locator("#staff-name").filter(has_text="王芳").wait_for()
        page.get_by_role("button", name="下一位").click()
        page.locator("#current").filter(has_text="A001").wait_for()

        # The simulated queue display of window 3 shows the call.
        devices = page.context.new_page()
        devices.goto(urls["simulated devices"])
        devices.locator("#display-3").filter(has_text="请A001号到3号窗口").wait_for()

        # The hall display shows it too, live.
        hall = page.context.new_page()
        hall.goto(urls["hall display"])
        hall.locator('tr[data-window="3"] .number').filter(has_text="A001").wait_for()
        hall.screenshot(path=str(tmp_path / "hall.png"))

        # 办结, then the resident presses 非常满意 on window 3's pad.
        page.get_by_role("button", name="办结").click()
        devices.locator("#pad-3").filter(has_text="请对本次服务进行评价").wait_for()
        devices.locator('form[data-window="3"] button[value="5"]').click()
        devices.locator("#pad-3").filter(has_text="谢谢您的评价").wait_for()
        devices.screenshot(path=str(tmp_path / "devices.png"))

        # County IT logs in with the printed user and sees the center, its devices online and today's counts.
        fleet = page.context.new_page()
        user, password = re.search(r"^\s+log in as\s+(\S+) / (\S+)$", demo.text(), re.M).groups()
        fleet.goto(urls["fleet dashboard"])
        fleet.fill("#username", user)
        fleet.fill("#password", password)
        fleet.click("#login-submit")
        fleet.wait_for_selector("#nav")

        def dashboard_counts() -> bool:
            fleet.goto(urls["fleet dashboard"].rstrip("/") + "/centers/445202101001")
            return (fleet.locator("#q-issued").inner_text() == "1" and fleet.locator("#s-rated").inner_text() == "1"
                    and fleet.locator("#devices td.status.online").count() == 6)

        wait_until(dashboard_counts, 30, "the fleet dashboard to show the center's counts and 6 online devices")
        assert fleet.locator("#center-name").inner_text() == "示例镇便民服务中心"  # named from the county's register
        fleet.screenshot(path=str(tmp_path / "fleet.png"), full_page=True)
    finally:
        code = demo.interrupt()
    assert code == 0, demo.text()
    ports = [int(u.rsplit(":", 1)[1].split("/")[0]) for u in urls.values()]
    assert not any(port_is_open(p) for p in ports), "a demo process still listens after Ctrl-C"

    # A second `make demo` starts cleanly on the same ports and run directory.
    again = DemoRun(tmp_path / "run", base, tmp_path / "second-run.txt")
    try:
        second = again.urls()
        assert second["kiosk"] == urls["kiosk"]
        assert httpx.get(second["fleet dashboard"], follow_redirects=True).status_code == 200  # the login page
    finally:
        assert again.interrupt() == 0


def log_in_to_fleet(page, demo: DemoRun, fleet_url: str) -> None:
    user, password = re.search(r"^\s+log in as\s+(\S+) / (\S+)$", demo.text(), re.M).groups()
    page.goto(fleet_url)
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("#nav")


def test_county_it_changes_a_display_text_from_the_fleet_and_sees_it_on_the_simulated_display(tmp_path, page):
    """The demo's devices are registered with the fleet as provisioning registers a board, so a configuration
    saved on the fleet's page is signed with their key, reaches the display and is reported in force."""
    demo = DemoRun(tmp_path / "run", free_port(), tmp_path / "demo.txt")
    try:
        urls = demo.urls()
        fleet_url = urls["fleet dashboard"].rstrip("/")
        display = httpx.get(urls["simulated devices"].rstrip("/") + "/state.json").json()["windows"][2]["display"]
        assert display["window"] == 3
        device_id = display["device_id"]
        log_in_to_fleet(page, demo, fleet_url)

        page.goto(fleet_url + "/config")
        row = page.locator(f'#config-devices tr[data-device="{device_id}"]')
        assert row.locator(".key").inner_text() == "有"  # the fleet holds the key registration issued
        row.locator("a.set-config").click()  # 设置: the form opens for this display
        page.get_by_label("空闲时显示文字").fill("示例镇欢迎您")
        page.click("#cf-submit")

        def in_force() -> bool:
            page.goto(fleet_url + "/config")
            return row.get_attribute("data-status") == "applied"

        wait_until(in_force, 60, "the display to report the new configuration in force (已生效)")
        assert row.locator(".status").inner_text() == "已生效"

        devices = page.context.new_page()
        devices.goto(urls["simulated devices"])
        devices.locator("#display-3").filter(has_text="示例镇欢迎您").wait_for()

        # A signed command reaches the device too: 识别 is sent and carried out, not "未发送 · no device key".
        page.goto(f"{fleet_url}/devices/{device_id}")
        page.click("#cmd-identify button")

        def identified() -> bool:
            page.goto(f"{fleet_url}/devices/{device_id}")
            return page.locator("#device-commands tr[data-command]").first.get_attribute("data-status") == "done"

        wait_until(identified, 60, "the identify command to be acknowledged as done")
    finally:
        assert demo.interrupt() == 0, demo.text()
