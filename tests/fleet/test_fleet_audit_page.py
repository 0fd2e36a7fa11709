"""The audit log page names each action and its details in the page's language, never as code words or JSON."""

from __future__ import annotations

import re

import httpx
import pytest
from fleet_testkit import DISPLAY, add_user, log_in
from live_fleet import serve
from test_fleet_alerts import MONDAY_10, birth, edge_online

from fleet.app import create_app

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def fleet(fleet_settings):
    app = create_app(fleet_settings, clock=lambda: MONDAY_10)
    engine = app.state.engine
    edge_online(engine, MONDAY_10)
    birth(engine, DISPLAY, 1, MONDAY_10)
    token = add_user(engine)
    with serve(app) as base:
        httpx.put(f"{base}/api/config/device/{DISPLAY}/queue_display", headers={"Authorization": f"Bearer {token}"},
                  json={"config": {"idle_text": "欢迎光临示例镇", "brightness": 60}}).raise_for_status()
        yield base


@pytest.mark.browser
def test_the_audit_log_reads_in_chinese_and_in_english(fleet, page) -> None:
    page.goto(fleet + "/login")
    page.fill("#username", "admin")
    page.fill("#password", "not the password")
    page.click("#login-submit")
    log_in(page, fleet)
    page.goto(fleet + "/audit")

    failed = page.locator("#audit tr[data-action='login.failed']")
    assert failed.locator(".action").inner_text() == "登录失败"
    assert failed.locator(".who").inner_text() == "系统"
    assert failed.locator(".detail").inner_text() == "来源地址：127.0.0.1"
    config = page.locator("#audit tr[data-action='config.set']")
    assert config.locator(".action").inner_text() == "修改配置"
    details = config.locator(".detail .detail-item").all_inner_texts()
    assert "版本：1" in details and "设备数：1" in details
    assert "配置：亮度=60，空闲时显示文字=欢迎光临示例镇" in details
    table = page.locator("#audit").inner_text()
    assert "login.failed" not in table and "{" not in table and "(token)" not in table
    assert "（API 令牌调用）" in config.locator(".source").inner_text()

    page.goto(fleet + "/audit?lang=en")
    assert failed.locator(".action").inner_text() == "Failed log-in"
    assert failed.locator(".detail").inner_text() == "Source address: 127.0.0.1"
    assert config.locator(".action").inner_text() == "Change configuration"
    assert "Configuration: Brightness=60, Text while idle=欢迎光临示例镇" in config.locator(".detail").inner_text()
    headers_and_actions = " ".join(page.locator("#audit th, #audit td.action, #audit td.who").all_inner_texts())
    assert not CJK.search(headers_and_actions), headers_and_actions
