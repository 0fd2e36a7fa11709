"""Cases name the staff member and the service, and their history reads in the page's language."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fleet_testkit import CENTER, add_user, log_in
from live_fleet import serve
from test_fleet_alerts import MONDAY_10, edge_online, send
from test_fleet_config_form import header_lines

from fleet.app import create_app
from fleet.ingest import handle_message
from protocol import topics

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def fleet(fleet_settings):
    now = MONDAY_10 + timedelta(minutes=30)
    app = create_app(fleet_settings, clock=lambda: now)
    engine = app.state.engine
    edge_online(engine, MONDAY_10)
    # The edge's staff directory (edge_health staff) and the service's name (on every ticket event).
    send(engine, topics.EDGE_HEALTH, {"ready": True, "reasons": [], "components": {}, "ts": MONDAY_10.timestamp(),
                                      "staff": {"1003": "王芳", "1001": "张敏"}}, MONDAY_10, center=CENTER)
    for n, kind in enumerate(("issued", "called")):
        send(engine, topics.TICKET_EVENT, {"event_id": f"t{n}", "kind": kind, "ticket": "A001", "service": "A",
                                           "service_name": "社保业务", "window": 3 if kind == "called" else None,
                                           "staff_no": "1003" if kind == "called" else None,
                                           "ts": MONDAY_10.timestamp() + n}, MONDAY_10, center=CENTER)
    rated = MONDAY_10 + timedelta(minutes=5)
    handle_message(engine, topics.build(topics.RATING_EVENT, center=CENTER), json.dumps(
        {"v": 1, "event_id": "r1", "rating_id": "rr1", "ticket": "A001", "service": "A", "window": 3,
         "staff_no": "1003", "score": 1, "ts": rated.timestamp()}).encode(), rated)
    add_user(engine)
    with serve(app) as base:
        yield base


@pytest.mark.browser
@pytest.mark.parametrize("width", [1366, 768])
def test_a_case_names_who_and_what_and_its_history_reads_in_chinese(fleet, chromium, width, tmp_path) -> None:
    context = chromium.new_context(locale="zh-CN", viewport={"width": width, "height": 768})
    page = context.new_page()
    try:
        log_in(page, fleet)
        page.goto(fleet + "/cases")
        row = page.locator("#cases tr[data-case]").first
        assert row.locator(".staff").inner_text() == "王芳 工号 1003"
        assert row.locator(".service").inner_text() == "社保业务"
        lines = header_lines(page, "#cases")
        assert all(n == 1 for n in lines.values()), lines
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(tmp_path / f"cases-{width}.png"), full_page=True)

        row.locator(".id a").click()
        assert page.locator("#case-staff").inner_text() == "王芳 工号 1003"
        assert page.locator("#case-service").inner_text() == "社保业务"
        opened = page.locator("#case-actions-log tr[data-action='opened']")
        assert opened.locator(".action").inner_text() == "工单生成"
        assert opened.locator(".note").inner_text() == "非常不满意"
        assert opened.locator(".who").inner_text() == "系统"
        page.screenshot(path=str(tmp_path / f"case-{width}.png"), full_page=True)

        # English: every word of the page in English; the names stay as the center wrote them.
        page.goto(page.url + "?lang=en")
        assert opened.locator(".action").inner_text() == "Case opened"
        text = page.locator("main").inner_text().replace("王芳", "").replace("社保业务", "")
        assert not CJK.search(text), CJK.findall(text)
        page.goto(fleet + "/cases?lang=en")
        text = page.locator("main").inner_text().replace("王芳", "").replace("社保业务", "")
        assert not CJK.search(text), CJK.findall(text)
    finally:
        context.close()
