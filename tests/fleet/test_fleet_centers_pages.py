"""The registry's pages in headless Chromium: import the division list, edit a profile, read the rollout, search;
a town operator sees and edits only their own town's centers."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fleet_testkit import add_user, log_in
from live_fleet import serve
from test_fleet_centers import DIVISIONS_CSV, NEWHENG_STATION, SILENT_STATION, TOWN_CENTER

from fleet.alerts.models import Alert
from fleet.app import create_app
from fleet.db import write_session
from fleet.ingest import handle_message
from fleet.models import Center
from protocol import topics

pytestmark = pytest.mark.browser

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def fleet(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: NOW)
    birth = json.dumps({"v": 1, "state": "online", "session": 1, "role": "edge_agent", "board": "rpi4",
                        "fw": "edge-0.1", "contract": 1}).encode()
    for center in (TOWN_CENTER, NEWHENG_STATION):
        handle_message(app.state.engine, topics.build(topics.EDGE_PRESENCE, center=center), birth, NOW)
    with write_session(app.state.engine) as session:
        silent = Center.new(SILENT_STATION, NOW - timedelta(days=30))  # 南街's station, last heard from yesterday
        silent.edge_last_seen = NOW - timedelta(days=1)
        session.add(silent)
    with write_session(app.state.engine) as session:  # an alert of the town's center, named on the alerts page
        session.add(Alert(key=f"edge:{TOWN_CENTER}", rule="edge_offline", center_code=TOWN_CENTER,
                          message="边缘网关离线", opened_at=NOW, last_active_at=NOW))
    add_user(app.state.engine)
    add_user(app.state.engine, "town-b", "town_operator", NEWHENG_STATION[:9])
    with serve(app) as base:
        yield base


def test_county_it_imports_the_list_edits_a_center_and_sees_the_rollout(fleet, page) -> None:
    log_in(page, fleet)
    page.click("#nav a[data-nav='registry']")
    page.click("#to-coverage")
    assert page.locator("#no-divisions").is_visible()
    page.set_input_files("#division-list", files=[{"name": "区划.csv", "mimeType": "text/csv",
                                                   "buffer": DIVISIONS_CSV.encode("gbk")}])
    page.click("#import-submit")
    assert page.locator("#import-done").inner_text() == "已导入 8 个区划。"
    assert page.locator("#county-name").inner_text() == "示例区"
    # With no profile 445202101001 counts as 东村's station (a code's default level): 东村, 南街 and 新亨村 of
    # 2 towns and 5 villages.
    assert page.locator("#card-covered .value").inner_text() == "42.9%"

    page.goto(fleet + "/registry")
    page.fill("#registry-code", TOWN_CENTER)
    page.click("#registry-open button")
    page.select_option("#p-level", "town")
    page.fill("#p-name", "示例镇政府")
    page.fill("#p-complaint_phone", "投诉")
    page.click("#profile-submit")
    assert page.locator("#profile-error").is_visible()
    assert page.locator("[data-field='name'] .field-error").inner_text().startswith("请使用统一标识")
    assert page.locator("[data-field='complaint_phone'] .field-error").is_visible()
    page.fill("#p-name", "示例镇便民服务中心")
    page.fill("#p-complaint_phone", "12345")
    page.fill("#p-consult_phone", "0663-8888888")
    page.fill("#p-address", "示例镇示例路1号")
    page.fill("#p-contact_name", "李明")
    page.fill("#p-opening_hours", "08:00-12:00,14:30-17:30")
    page.click("#profile-submit")
    assert page.locator("#profile-saved").is_visible()
    assert page.locator("#p-opening_hours").input_value() == "08:00-12:00,14:30-17:30"

    page.goto(fleet + "/registry")
    row = page.locator(f"#registry tr[data-center='{TOWN_CENTER}']")
    assert row.locator(".name").inner_text() == "示例镇便民服务中心"
    assert row.locator(".town").inner_text() == "示例镇 445202101"
    page.fill("#registry-q", "新亨")
    page.click("#registry-search button")
    page.wait_for_url(re.compile(r".*q=%E6%96%B0.*"))
    assert page.locator("#registry tr[data-center]").evaluate_all("rows => rows.map(r => r.dataset.center)") == \
        [NEWHENG_STATION]

    page.click("#to-coverage")
    town = page.locator("#coverage-towns tr[data-town='445202101']")
    assert town.locator(".town-center").inner_text() == "示例镇便民服务中心"
    assert town.locator(".missing").inner_text() == "东村村委会、西村村委会"
    assert town.locator(".not-online").inner_text() == "南街社区居委会"  # its station was last online yesterday
    assert page.locator("#coverage-towns tr[data-town='445202102'] .not-online").inner_text() == "无"
    assert page.locator("#card-covered .value").inner_text() == "42.9%"  # the town's center now, no 东村 station
    assert page.locator("#card-online-today .value").inner_text() == "28.6%"  # 示例镇's center, 新亨村's station
    page.fill("#target-pct", "25")
    page.click("#target-submit")
    assert page.locator("#card-target .value").inner_text() == "25.0%"
    assert page.locator("#county-target-state").inner_text() == "达标"
    assert page.locator("#coverage-towns tr[data-town='445202102'] .target-state").inner_text() == "达标"

    page.goto(fleet + "/")  # names beside codes on the overview, and search there
    assert page.locator("#towns tr[data-town='445202101'] .town-name").inner_text() == "示例镇"
    assert page.locator(f"#centers tr[data-center='{TOWN_CENTER}'] .center-name").inner_text() == "示例镇便民服务中心"
    page.fill("#center-q", "便民服务中心")
    page.click("#center-search button")
    page.wait_for_url(re.compile(r".*q=.*"))
    assert page.locator("#centers tr[data-center]").evaluate_all("rows => rows.map(r => r.dataset.center)") == \
        [TOWN_CENTER]
    page.goto(f"{fleet}/centers/{TOWN_CENTER}")
    assert page.locator("#center-name").inner_text() == "示例镇便民服务中心"
    page.goto(fleet + "/alerts?state=all")  # the sweep may have resolved it by now: its edge is online
    assert page.locator(f"#alerts tr[data-key='edge:{TOWN_CENTER}'] .center").inner_text() == \
        f"示例镇便民服务中心 {TOWN_CENTER}"

    page.goto(fleet + "/audit")
    assert "修改中心资料" in page.locator("#audit").inner_text()
    assert "导入区划代码表" in page.locator("#audit").inner_text()
    assert page.locator("#audit tr[data-action='center.profile'] .target").first.inner_text() == \
        f"{TOWN_CENTER} 示例镇便民服务中心"

    page.goto(fleet + "/registry-coverage?lang=en")  # English, names of places aside
    for path in ("/registry-coverage", "/registry", f"/registry/{TOWN_CENTER}"):
        page.goto(fleet + path)
        text = page.evaluate("""() => { const body = document.body.cloneNode(true);
            body.querySelectorAll('#lang-switch, .dname, .town-name, .center-name').forEach(e => e.remove());
            return body.textContent; }""")
        assert not CJK.findall(text), f"{path}: {CJK.findall(text)}"


def test_a_town_operator_sees_and_edits_only_their_towns_centers(fleet, page) -> None:
    log_in(page, fleet, "town-b")
    page.goto(fleet + "/registry")
    assert page.locator("#registry tr[data-center]").evaluate_all("rows => rows.map(r => r.dataset.center)") == \
        [NEWHENG_STATION]
    assert page.goto(f"{fleet}/registry/{TOWN_CENTER}").status == 404
    status = page.evaluate("""async ([url, token]) => (await fetch(url, {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: new URLSearchParams({csrf_token: token, level: 'town', name: '别人的便民服务中心'})})).status""",
                           [f"{fleet}/registry/{TOWN_CENTER}", page.locator("input[name=csrf_token]").first
                            .input_value()])
    assert status == 404
    page.goto(f"{fleet}/registry/{NEWHENG_STATION}")
    page.select_option("#p-level", "village")
    page.fill("#p-name", "新亨村便民服务站")
    page.click("#profile-submit")
    assert page.locator("#profile-saved").is_visible()
    page.goto(fleet + "/registry-coverage")
    assert page.locator("#import-form").count() == 0  # county IT imports the list
    assert page.locator("#no-divisions").is_visible()
