"""The center page mirrors what each window's display was told (edge_health), as the display draws it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fleet_testkit import CENTER, DISPLAY, add_user, log_in
from live_fleet import serve
from test_fleet_alerts import MONDAY_10, birth, edge_online, send

from firmware.queue_display.app import QueueDisplayApp
from fleet.app import create_app
from fleet.center_view import display_lines
from fleet.db import write_session
from fleet.devconfig import config as cfg
from protocol import topics
from protocol.identity import device_id_from_mac

WINDOW_1_DISPLAY = device_id_from_mac("a4:cf:12:00:00:11")
CASES = [  # (window_display state, ticket, text, idle_text of the configuration in force)
    ("idle", "", "欢迎光临", None), ("idle", "", "欢迎光临", "示例镇欢迎您"), ("idle", "A001", "欢迎光临", None),
    ("idle", "", "", None), ("paused", "", "暂停服务", None), ("paused", "", "", "示例镇欢迎您"),
    ("serving", "A001", "请A001号到3号窗口", None), ("serving", "A001", "", "示例镇欢迎您"),
    ("serving", "", "请A001号到3号窗口", None),
]


@pytest.mark.parametrize(("state", "ticket", "text", "idle_text"), CASES)
def test_the_mirror_draws_what_the_display_firmware_draws(state, ticket, text, idle_text) -> None:
    app = QueueDisplayApp(3)
    app.apply_config({"idle_text": idle_text} if idle_text else {})
    app.on_display({"v": 1, "window": 3, "state": state, "ticket": ticket, "text": text, "call_seq": 1}, 0,
                   retained=True)
    app.link_up = True
    assert display_lines(3, {"state": state, "ticket": ticket, "text": text}, idle_text) == app.lines()


def health(windows: dict, ts: float) -> dict:
    return {"ready": True, "reasons": [], "components": {}, "windows": windows, "ts": ts,
            "staff": {"1001": "张敏", "1003": "王芳"}}


@pytest.fixture
def fleet(fleet_settings):
    now = MONDAY_10 + timedelta(minutes=30)
    app = create_app(fleet_settings, clock=lambda: now)
    engine = app.state.engine
    edge_online(engine, MONDAY_10)
    birth(engine, DISPLAY, 1, MONDAY_10)  # window 3's display
    birth(engine, WINDOW_1_DISPLAY, 1, MONDAY_10, window=1)
    # A003 was called at window 3, then the window was paused: the events alone say 叫号中 请A003号到3号窗口.
    for n, kind in enumerate(("issued", "called")):
        send(engine, topics.TICKET_EVENT, {"event_id": f"e{n}", "kind": kind, "ticket": "A003", "service": "A",
                                           "window": 3 if kind == "called" else None, "staff_no": "1003",
                                           "ts": MONDAY_10.timestamp() + 60 + n}, MONDAY_10, center=CENTER)
    send(engine, topics.EDGE_HEALTH, health({
        "1": {"state": "open", "staff_no": "1001", "display": {"state": "idle", "ticket": "", "text": "欢迎光临"}},
        "3": {"state": "paused", "staff_no": "1003", "display": {"state": "paused", "ticket": "", "text": "暂停服务"}},
    }, MONDAY_10.timestamp() + 120), MONDAY_10 + timedelta(minutes=2), center=CENTER)
    # Window 1's display runs a configuration with its own greeting.
    with write_session(engine) as session:
        cfg.set_scope_config(session, "device", WINDOW_1_DISPLAY, "queue_display", {"idle_text": "示例镇欢迎您"},
                             "admin", now)
    send(engine, topics.DEVICE_CONFIG_REPORTED, {"version": 1, "status": "applied"}, now, center=CENTER,
         device=WINDOW_1_DISPLAY)
    add_user(engine)
    with serve(app) as base:
        yield base


@pytest.mark.browser
@pytest.mark.parametrize("width", [1366, 768])
def test_the_center_page_shows_what_the_displays_show(fleet, chromium, width, tmp_path) -> None:
    context = chromium.new_context(locale="zh-CN", viewport={"width": width, "height": 768})
    page = context.new_page()
    try:
        log_in(page, fleet)
        page.goto(f"{fleet}/centers/{CENTER}")
        window_3 = page.locator("#windows tr[data-window='3']")
        assert window_3.locator(".display-mirror .line").all_inner_texts() == ["3号窗口", "暂停服务"]
        assert window_3.locator(".window-state").inner_text() == "暂停服务"
        assert window_3.locator(".staff").inner_text() == "王芳 工号 1003"
        window_1 = page.locator("#windows tr[data-window='1']")
        assert window_1.locator(".display-mirror .line").all_inner_texts() == ["1号窗口", "示例镇欢迎您"]
        assert window_1.locator(".window-state").inner_text() == "空闲"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(tmp_path / f"center-{width}.png"), full_page=True)

        page.goto(f"{fleet}/centers/{CENTER}?lang=en")
        assert window_3.locator(".window-state").inner_text() == "paused"
        assert window_3.locator(".staff").inner_text() == "王芳 Staff no. 1003"
    finally:
        context.close()
