"""The dashboard pages in headless Chromium: overview, center, device (health chart), audit, users, English."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fleet_testkit import ADMIN, PASSWORD, add_user, log_in
from live_fleet import serve

from fleet.app import create_app
from fleet.ingest import handle_message
from fleet.overview import serving_problems
from fleet.presence import REASON_HEARTBEAT, REASON_WILL, STATUS_OFFLINE, STATUS_ONLINE, STATUS_UNKNOWN
from fleet.web import labels
from fleet.web.i18n import CATALOGUES, EN
from protocol import topics
from protocol.identity import device_id_from_mac

pytestmark = pytest.mark.browser

TOWN = "445202101"
CENTER = TOWN + "001"
OTHER_TOWN_CENTER = "445202102003"
DISPLAY_1 = device_id_from_mac("a4:cf:12:00:01:01")
DISPLAY_3 = device_id_from_mac("a4:cf:12:00:01:03")
PAD_3 = device_id_from_mac("a4:cf:12:00:02:03")
OTHER_DISPLAY = device_id_from_mac("a4:cf:12:00:09:01")
HEARTBEATS = 12
CJK = re.compile(r"[\u4e00-\u9fff]")
TEMPLATES = Path(__file__).resolve().parents[2] / "fleet" / "web" / "templates"
# The layout and the pages of fleet/web; the alert, case and configuration pages bring their own English.
OWN_TEMPLATES = ("base.html", "error.html", "login.html", "overview.html", "center.html", "device.html",
                 "audit.html", "users.html")
# The app's clock and the time of every seeded message. The pages count today's tickets in Asia/Shanghai:
# seeded an hour before the wall clock, they fell on yesterday from 16:00 to 17:00 UTC (just after
# Beijing's midnight) and the test failed every day in that hour.
NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def put(engine, name: str, payload: dict, at: float | None = None, **params) -> str:
    when = datetime.fromtimestamp(at, UTC) if at is not None else NOW
    return handle_message(engine, topics.build(name, **params), json.dumps({"v": 1, **payload}).encode(), when)


def seed(engine) -> None:
    now = NOW.timestamp()
    birth = {"state": "online", "board": "esp32-s3", "fw": "1.4.2", "contract": 1, "session": 1}
    for center in (CENTER, OTHER_TOWN_CENTER):
        put(engine, topics.EDGE_PRESENCE, {**birth, "role": "edge_agent"}, center=center)
    for device, role, window in ((DISPLAY_1, "queue_display", 1), (DISPLAY_3, "queue_display", 3),
                                 (PAD_3, "rating_pad", 3)):
        put(engine, topics.DEVICE_PRESENCE, {**birth, "role": role, "window": window}, center=CENTER, device=device)
    put(engine, topics.DEVICE_PRESENCE, {**birth, "role": "queue_display", "window": 1}, center=OTHER_TOWN_CENTER,
        device=OTHER_DISPLAY)
    put(engine, topics.DEVICE_PRESENCE, {"state": "offline", "role": "rating_pad", "session": 1},
        center=CENTER, device=PAD_3)
    for i in range(HEARTBEATS):  # one a minute, over the last HEARTBEATS minutes
        put(engine, topics.DEVICE_HEALTH, {"session": 1, "uptime_s": 60 * i, "free_heap": 60000 - 500 * i,
                                           "rssi": -60 - i % 5, "reconnects": i // 4},
            at=now - 60 * (HEARTBEATS - i), center=CENTER, device=DISPLAY_3)

    def ticket(n: int, kind: str, ticket: str, ts: float, window: int | None = None) -> None:
        payload = {"event_id": f"t-{n}", "kind": kind, "ticket": ticket, "service": "A", "ts": ts}
        if window is not None:
            payload["window"] = window
        put(engine, topics.TICKET_EVENT, payload, center=CENTER)

    start = now - 3600
    ticket(1, "issued", "A001", start)
    ticket(2, "issued", "A002", start + 60)
    ticket(3, "issued", "A003", start + 120)
    ticket(4, "called", "A001", start + 300, window=3)  # waited 300 s
    ticket(5, "finished", "A001", start + 400, window=3)
    ticket(6, "called", "A002", start + 600, window=3)  # waited 540 s: average 420 s = 7 min 0 s
    for n, score in enumerate((5, 4, 1, 0)):
        put(engine, topics.RATING_EVENT, {"event_id": f"r-{n}", "rating_id": f"r-{n}", "ticket": "A001",
                                          "service": "A", "window": 3, "score": score, "ts": start + 500 + n},
            center=CENTER)


@pytest.fixture
def fleet(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: NOW)
    seed(app.state.engine)
    add_user(app.state.engine)
    add_user(app.state.engine, "town-b", "town_operator", OTHER_TOWN_CENTER[:9])
    with serve(app) as base:
        yield base


def test_overview_center_and_device_pages(fleet, page) -> None:
    page.goto(fleet + "/")
    assert "/login" in page.url
    log_in(page, fleet)
    assert page.locator("#card-online .value").inner_text() == "75.0%"  # 3 of 4 devices online
    assert page.locator("#card-not-serving .value").inner_text() == "1"
    assert page.locator("#not-serving").inner_text().endswith("3号窗口评价器离线")
    town = page.locator(f"#towns tr[data-town='{TOWN}']")
    assert town.locator(".not-serving").inner_text() == "1"
    assert town.locator(".online-pct").inner_text() == "66.7%"
    assert town.locator(".tickets").inner_text() == "3"
    assert page.locator("#nav a").all_inner_texts() == ["总览", "中心名录",
                                                       "告警", "回访工单", "可疑评价", "报表", "考勤",
                                                       "事项清单",
                                                       "配置", "固件升级", "审计日志",
                                                       "用户"]

    page.locator(f"#centers tr[data-center='{CENTER}'] .code a").click()
    page.wait_for_url(f"{fleet}/centers/{CENTER}")
    window_3 = page.locator("#windows tr[data-window='3']")
    assert window_3.locator(".display-mirror").inner_text() == "请A002号到3号窗口"
    assert window_3.locator(".window-state").inner_text() == "叫号中"
    assert page.locator("#windows tr[data-window='1'] .window-state").inner_text() == "空闲"
    figures = {name: page.locator(f"#q-{name}").inner_text() for name in ("issued", "called", "finished", "waiting")}
    assert figures == {"issued": "3", "called": "2", "finished": "1", "waiting": "1"}
    assert page.locator("#q-wait").inner_text() == "7分0秒"
    assert page.locator("#s-pct").inner_text() == "66.7%"  # 5 and 4 among 5, 4, 1
    assert (page.locator("#s-bad").inner_text(), page.locator("#s-unrated").inner_text()) == ("1", "1")

    page.locator(f"#devices tr[data-device='{DISPLAY_3}'] a").click()
    page.wait_for_url(f"{fleet}/devices/{DISPLAY_3}")
    page.wait_for_selector("#health-chart canvas")
    points = page.evaluate("() => window.healthChart.data.map(series => series.length)")
    assert points == [HEARTBEATS] * 4
    assert page.evaluate("() => window.healthChart.data[1][0]") == round(60000 / 1024, 1)
    box = page.locator("#health-chart canvas").bounding_box()
    assert box["width"] > 300 and box["height"] > 100


def test_english_switch_on_every_page(fleet, page) -> None:
    log_in(page, fleet)
    page.click("#lang-switch")
    assert page.locator("#nav a").all_inner_texts() == ["Overview", "Center registry",
                                                       "Alerts", "Follow-up cases", "Suspicious ratings",
                                                       "Reports", "Attendance",
                                                       "Service catalogue", "Configuration", "Firmware updates",
                                                       "Audit log", "Users"]
    assert page.locator("html").get_attribute("lang") == "en"
    for path in ("/", f"/centers/{CENTER}", f"/devices/{DISPLAY_3}", "/audit", "/users", "/ratings/suspicious",
                 "/centers/445202999999"):
        page.goto(fleet + path)  # the choice is remembered in a cookie
        # Left in Chinese: the switch back (中文) and the mirror of what a hall display shows residents.
        # The device page's sections of other modules (configuration, commands) are checked by their tests.
        text = page.evaluate("""() => { const body = document.body.cloneNode(true);
            body.querySelectorAll('#lang-switch, .display-mirror, .device-section, script')
                .forEach(e => e.remove());
            return body.textContent; }""")
        assert not CJK.findall(text), f"{path}: {CJK.findall(text)}"
    page.goto(f"{fleet}/devices/{DISPLAY_3}")
    page.wait_for_selector("#health-chart canvas")
    assert "Free heap (KB)" in page.locator("#health-chart").inner_text()
    page.click("#lang-switch")
    assert page.locator("#nav a").first.inner_text() == "总览"


def test_a_town_operator_sees_only_their_town(fleet, page) -> None:
    log_in(page, fleet, "town-b")
    assert page.locator("#centers tr[data-center]").evaluate_all("rows => rows.map(r => r.dataset.center)") == \
        [OTHER_TOWN_CENTER]
    assert page.locator("#nav a[data-nav='users']").count() == 0
    response = page.goto(f"{fleet}/centers/{CENTER}")
    assert response.status == 404 and page.locator("#error-status").inner_text() == "404"
    assert page.goto(f"{fleet}/devices/{DISPLAY_3}").status == 404
    assert page.goto(f"{fleet}/users").status == 403


def test_admin_adds_a_user_with_a_token_shown_once_and_it_is_audited(fleet, page) -> None:
    log_in(page, fleet)
    page.goto(fleet + "/users")
    page.fill("#nu-username", "reader")
    page.select_option("#nu-role", "read_only")
    page.fill("#nu-prefix", TOWN)
    page.fill("#nu-password", "reader-password")
    page.click("#new-user button[type=submit]")
    row = page.locator("#users tr[data-user='reader']")
    assert row.locator(".scope").inner_text() == TOWN
    row.locator("form.new-token input[name=name]").fill("script")
    row.locator("form.new-token button").click()
    token = page.locator("#new-token").inner_text()
    assert token.startswith("fleet_")
    page.goto(fleet + "/users")
    assert token not in page.content()

    page.goto(fleet + "/audit")
    actions = page.locator("#audit tr[data-action]").evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert actions[:3] == ["token.create", "user.create", "login"]
    assert page.locator("#audit tr[data-action] .action").all_inner_texts()[:3] == ["创建 API 令牌", "创建用户", "登录"]
    assert page.locator("#audit tr[data-action='user.create'] .who").first.inner_text() == ADMIN

    page.click("#logout")
    page.wait_for_url(re.compile(r".*/login$"))
    log_in(page, fleet, "reader", "reader-password")
    assert page.locator("#who").inner_text().startswith("reader · 只读用户")
    page.goto(fleet + "/audit")  # passwords never appear in the audit log
    assert PASSWORD not in page.content() and "reader-password" not in page.content()


def test_every_message_of_the_pages_has_english() -> None:
    used: set[str] = set()
    for template in (TEMPLATES / name for name in OWN_TEMPLATES):
        used |= set(re.findall(r'_\(\s*"([^"]+)"', template.read_text()))
        used |= set(re.findall(r"_\(\s*'([^']+)'", template.read_text()))
    used |= {labels.status_label(s) for s in (True, False, STATUS_ONLINE, STATUS_OFFLINE, STATUS_UNKNOWN)}
    used |= {labels.reason_label(r) for r in (REASON_WILL, REASON_HEARTBEAT)}
    used |= {labels.role_label(r) for r in ("queue_display", "rating_pad", "edge_agent", None)}
    center = {"edge_online": True}
    devices = [{"role": role, "window": window, "status": "offline"}
               for role in ("queue_display", "rating_pad") for window in (3, None)]
    used |= {p["text"] for p in serving_problems(center, devices) + serving_problems({"edge_online": False}, [])}
    missing = sorted(text for text in used if CJK.search(text) and text not in CATALOGUES[EN])
    assert not missing
