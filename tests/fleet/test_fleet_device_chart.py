"""The device page's health chart reads as county IT reads time: 24-hour, Beijing, one line "12-03 14:05"."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fleet_testkit import CENTER, DISPLAY, add_user, log_in
from live_fleet import serve

from fleet.app import create_app
from fleet.ingest import handle_message
from protocol import topics

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 3, 15, 0, tzinfo=SHANGHAI)
BOARD = {"board": "esp32", "fw": "1.0.0", "contract": 1}
AFTERNOON = datetime(2026, 12, 3, 14, 5, tzinfo=SHANGHAI)  # 2 pm: US style would say 12/3 2:05pm


def send(engine, name: str, payload: dict, at: datetime, **params) -> None:
    handle_message(engine, topics.build(name, **params), json.dumps({"v": 1, **payload}).encode(), at)


@pytest.fixture
def fleet(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: NOW)
    engine = app.state.engine
    send(engine, topics.EDGE_PRESENCE, {"state": "online", "session": 1, "role": "edge_agent", **BOARD},
         NOW - timedelta(hours=3), center=CENTER)
    send(engine, topics.DEVICE_PRESENCE, {"state": "online", "session": 1, "role": "queue_display", "window": 3,
                                           **BOARD},
         NOW - timedelta(hours=3), center=CENTER, device=DISPLAY)
    for minutes in range(0, 120, 5):
        at = NOW - timedelta(hours=2) + timedelta(minutes=minutes)
        send(engine, topics.DEVICE_HEALTH, {"session": 1, "uptime_s": 60 * minutes, "free_heap": 4168704,
                                            "rssi": -55, "reconnects": 0}, at, center=CENTER, device=DISPLAY)
    add_user(engine)
    with serve(app) as base:
        yield base


@pytest.mark.browser
@pytest.mark.parametrize("width", [1366, 768])
def test_the_health_chart_speaks_24_hour_beijing_time_and_shows_free_memory(fleet, chromium, width, tmp_path) -> None:
    context = chromium.new_context(locale="zh-CN", viewport={"width": width, "height": 768})
    page = context.new_page()
    try:
        log_in(page, fleet)
        page.goto(f"{fleet}/devices/{DISPLAY}")
        page.wait_for_selector("#health-chart canvas")
        assert page.evaluate(f"window.healthTimeLabel({AFTERNOON.timestamp()})") == "12-03 14:05"
        # The labels the time axis drew: one line each, "MM-DD HH:MM" in Beijing time.
        ticks = page.evaluate("window.healthChart.axes[0]._values")
        assert ticks and all(re.fullmatch(r"12-03 1[3-5]:\d\d", tick) for tick in ticks), ticks
        legend = page.evaluate(f"window.healthChart.series[0].value(window.healthChart, {AFTERNOON.timestamp()})")
        assert legend == "12-03 14:05"
        # Free memory: the value heartbeats carry, in the chart and the table.
        assert page.evaluate("window.healthChart.data[1][0]") == round(4168704 / 1024, 1)
        assert page.locator("#health-samples td.free-heap").first.inner_text() == "4071.0 KB"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        box = page.locator("#health-chart canvas").first.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width
        page.screenshot(path=str(tmp_path / f"device-{width}.png"), full_page=True)
    finally:
        context.close()
