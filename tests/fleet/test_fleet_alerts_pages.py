"""The alerts, cases and configuration pages and the device page's block, in real headless Chromium."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fleet_testkit import CENTER, DISPLAY, add_user, log_in
from live_fleet import serve
from test_fleet_alerts import MONDAY_10, birth, edge_online, sweep, will
from test_fleet_cases import called, named_user, rating

from fleet.app import create_app


@pytest.fixture
def fleet(fleet_settings):
    now = MONDAY_10 + timedelta(minutes=30)
    app = create_app(fleet_settings, clock=lambda: now)
    engine = app.state.engine
    edge_online(engine, MONDAY_10)
    birth(engine, DISPLAY, 1, MONDAY_10)
    will(engine, DISPLAY, 1, MONDAY_10)
    sweep(engine, fleet_settings, now)
    called(engine, "t1", MONDAY_10)
    rating(engine, "r1", 1, MONDAY_10 + timedelta(minutes=5))
    add_user(engine)
    named_user(engine, "wang", "town_operator", CENTER[:9], "王主任")  # a case's responsible person
    with serve(app) as base:
        yield base


@pytest.mark.browser
def test_alerts_page_acknowledges(fleet, page) -> None:
    log_in(page, fleet)
    page.click("#nav a[data-nav='alerts']")
    row = page.locator(f"#alerts tr[data-key='device:{DISPLAY}']")
    assert row.locator(".message").inner_text() == "3号窗口排队显示屏离线"
    assert row.locator(".state").inner_text() == "待处理"
    row.locator("button.ack").click()
    page.wait_for_url(re.compile(r".*/alerts\?state=active$"))
    assert row.locator(".state").inner_text() == "已确认"
    assert row.locator(".acked").inner_text().startswith("admin")
    page.goto(fleet + "/audit")
    assert page.locator("#audit tr[data-action] .action").first.inner_text() == "确认告警"  # alert.acknowledge


@pytest.mark.browser
def test_a_case_is_worked_through_its_page(fleet, page) -> None:
    log_in(page, fleet)
    page.goto(fleet + "/cases")
    row = page.locator("#cases tr[data-case]").first
    assert row.locator(".score").inner_text() == "非常不满意" and row.locator(".ticket").inner_text() == "A001"
    row.locator(".id a").click()
    page.locator("#form-close button").click()  # too early: the page says why
    assert page.locator("#case-error").inner_text() == "请先记录回访和整改（或解释）情况"
    page.select_option("#assignee", "wang")  # a user account, shown by their display name
    page.locator("#form-assign button").click()
    assert page.locator("#case-assignee").inner_text() == "王主任"
    page.select_option("#callback-result", "reached")
    page.fill("#callback-note", "群众反映等候时间长")
    page.locator("#form-callback button").click()
    page.select_option("#resolution-kind", "explained")
    page.fill("#resolution-note", "当日系统故障，已向群众解释")
    page.locator("#form-rectification button").click()
    page.locator("#form-close button").click()
    assert page.locator("#case-state").inner_text() == "已办结"
    log = page.locator("#case-actions-log tr[data-action]")
    assert log.evaluate_all("rows => rows.map(r => r.dataset.action)") == \
        ["opened", "assign", "callback", "rectify", "close"]
    assert page.locator("#case-actions-log tr[data-action] .action").all_inner_texts() == \
        ["工单生成", "分派责任人", "回访记录", "整改记录", "办结工单"]
    page.goto(fleet + "/cases?which=closed")
    assert page.locator("#cases tr[data-case]").count() == 1


@pytest.mark.browser
def test_config_page_sets_rolls_back_and_the_device_page_shows_it(fleet, page) -> None:
    log_in(page, fleet)
    page.goto(fleet + "/config")
    page.select_option("#cf-scope", "town")
    page.fill("#cf-scope-id", CENTER[:9])
    page.select_option("#cf-role", "queue_display")
    page.fill("#cf-queue_display-brightness", "60")
    page.click("#cf-submit")
    page.locator("#config-form").evaluate("form => form.noValidate = true")  # the server's own check
    page.fill("#cf-queue_display-brightness", "101")
    page.click("#cf-submit")
    assert "亮度须在 0 到 100 之间" in page.locator("#config-error").inner_text()  # out of range: nothing saved
    page.fill("#cf-queue_display-brightness", "30")
    page.click("#cf-submit")
    assert page.locator("#history tr[data-revision]").count() == 2
    page.locator("#history tr[data-revision='1'] form.rollback button").click()
    assert page.locator("#history tr[data-revision='3'] .config").inner_text().replace("\n", "") == "亮度：60 %"
    device = page.locator(f"#config-devices tr[data-device='{DISPLAY}']")
    assert device.locator(".status").inner_text() == "待生效"
    assert device.locator(".key").inner_text() == "缺少"

    device.locator("a").first.click()
    block = page.locator("#device-config")
    assert block.locator(".config-status").inner_text() == "待生效"
    assert block.locator(".desired-version").inner_text() == "3"
    page.locator("#cmd-identify button").click()
    command = page.locator("#device-commands tr[data-command]").first
    assert command.locator(".command-status").inner_text() == "未发送"  # no key registered yet
