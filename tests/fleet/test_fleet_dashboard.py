"""The whole service as deployed: `python -m fleet` on a real broker, its dashboard in real Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fleet_testkit import CENTER, DISPLAY, PAD, add_user_to, log_in, wait_for

from tools.mosquitto import free_port

pytestmark = pytest.mark.sqlite_only(
    reason="`python -m fleet` as a county first deploys it, on a SQLite file; the service as a process on "
           "PostgreSQL is tests/test_end_to_end.py, tests/test_no_loss.py and test_fleet_workers.py")

REPO = Path(__file__).resolve().parents[2]


def get_json(url: str, token: str | None = None):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


@pytest.fixture
def run_fleet(tmp_path: Path):
    processes: list[subprocess.Popen] = []
    logs = []

    def run(*args: str) -> tuple[subprocess.Popen, str, str]:
        """Start `python -m fleet`; returns the process, its URL and an API token of the admin user."""
        port = free_port()
        database_url = f"sqlite:///{tmp_path / 'fleet.db'}"
        token = add_user_to(database_url) if not processes else ""
        log = open(tmp_path / "fleet.log", "ab")
        logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "fleet", "--database-url", database_url,
             "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "FLEET_SESSION_COOKIE_SECURE": "0"},  # plain http
        )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        # A hang guard: on a loaded machine (two suites side by side) the fleet took more than 10 s to serve.
        wait_for(lambda: process.poll() is not None or get_json(base + "/healthz"), "the fleet to serve", 120)
        assert process.poll() is None, (tmp_path / "fleet.log").read_text()
        return process, base, token

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    for log in logs:
        log.close()


def stop(process: subprocess.Popen, sig: signal.Signals) -> int:
    process.send_signal(sig)
    return process.wait(60)


@pytest.mark.broker
@pytest.mark.browser
def test_dashboard_shows_centers_devices_and_today(run_fleet, county_broker, edge_factory, page,
                                                  tmp_path) -> None:
    process, base, token = run_fleet("--broker", county_broker.url)
    wait_for(lambda: get_json(base + "/healthz")["ingest"] == "connected", "the ingest to connect")

    edge = edge_factory(county_broker.port)
    edge.edge_birth()
    edge.birth(DISPLAY, "queue_display", session=1, window=3, fw="1.4.2")
    edge.birth(PAD, "rating_pad", session=1, window=3)
    edge.will(PAD, "rating_pad", session=1)
    now = time.time()
    edge.ticket("t-1", now, ticket="A001")
    edge.ticket("t-2", now, ticket="A002")
    edge.rating("r-1", now, score=5)

    def landed() -> bool:
        centers = get_json(base + "/api/centers", token) or []
        return bool(centers) and (centers[0]["tickets_today"], centers[0]["ratings_today"],
                                  centers[0]["devices_online"], centers[0]["devices_total"]) == (2, 1, 1, 2)

    wait_for(landed, "the messages to reach the API")

    page.goto(base + "/")
    assert page.url.startswith(base + "/login")  # nothing without a login
    log_in(page, base)
    assert page.url == base + "/"
    assert page.title() == "县级设备管理平台"
    row = page.locator(f"#centers tr[data-center='{CENTER}']")
    assert row.locator(".edge").inner_text() == "在线"
    assert row.locator(".tickets").inner_text() == "2"
    assert row.locator(".ratings").inner_text() == "1"
    assert row.locator(".devices").inner_text() == "1/2"
    assert row.locator(".serving").inner_text() == "否"  # window 3's pad is offline
    assert "3号窗口评价器离线" in page.locator("#not-serving").inner_text()

    row.locator(".code a").click()
    page.wait_for_url(f"{base}/centers/{CENTER}")
    assert page.locator("#q-issued").inner_text() == "2"
    display = page.locator(f"#devices tr[data-device='{DISPLAY}']")
    assert display.locator(".role").inner_text() == "排队显示屏"
    assert display.locator(".window").inner_text() == "3号窗口"
    assert display.locator(".status").inner_text() == "在线"
    assert display.locator(".fw").inner_text() == "1.4.2"
    pad = page.locator(f"#devices tr[data-device='{PAD}']")
    assert pad.locator(".role").inner_text() == "评价器"
    assert pad.locator(".status").inner_text() == "离线（连接断开）"

    edge.edge_will()  # the whole center goes dark: its devices' state is unknown, not online
    wait_for(lambda: get_json(base + "/api/centers", token)[0]["devices_unknown"] == 1, "the edge's will")
    page.reload()
    assert display.locator(".status").inner_text() == "未知（边缘网关离线）"
    page.goto(base + "/")
    assert row.locator(".edge").inner_text() == "离线（连接断开）"

    assert stop(process, signal.SIGTERM) == 0
    assert "ingest stopped" in (tmp_path / "fleet.log").read_text()  # the lifespan shutdown ran


def test_cli_exits_cleanly_on_sigint(run_fleet) -> None:
    process, base, token = run_fleet("--no-ingest")
    assert get_json(base + "/healthz")["ingest"] == "disabled"
    assert get_json(base + "/api/centers") is None  # 401 without a token
    assert get_json(base + "/api/centers", token) == []
    assert stop(process, signal.SIGINT) == 0
