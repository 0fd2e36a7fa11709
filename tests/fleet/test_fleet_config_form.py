"""The /config page as county IT uses it: a form built from the role schemas, Chinese labels and refusals,
saved Chinese shown as Chinese, tables readable at 768 px (headless Chromium)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from fleet_testkit import DISPLAY, add_user, log_in
from live_fleet import serve
from test_fleet_alerts import MONDAY_10, birth, edge_online

from fleet.app import create_app
from fleet.devconfig import form
from fleet.web.i18n import EN, translator
from protocol import messages

CJK = re.compile(r"[\u4e00-\u9fff]")
ZH = translator("zh")


def test_every_key_of_every_role_schema_has_a_chinese_label_and_its_english() -> None:
    english = translator(EN)
    for role, fields in form.all_form_fields().items():
        assert [f.key for f in fields] == [spec[0] for spec in messages.CONFIG_SCHEMAS[role]]
        for field in fields:
            assert CJK.search(field.label), f"{role}.{field.key} has no Chinese label"
            for text in (field.label, field.help, field.unit):
                if text:
                    # The display's own greeting is quoted as it appears on the display.
                    assert not CJK.search(english(text).replace("欢迎光临", "")), f"no English for {text!r}"


def test_the_form_refuses_in_chinese_naming_the_field() -> None:
    config, errors = form.config_from_form("queue_display", {"queue_display.brightness": "150",
                                                             "queue_display.blink_s": "abc",
                                                             "queue_display.idle_text": "  欢迎光临示例镇 "}, ZH)
    assert errors == {"queue_display.brightness": "亮度须在 0 到 100 之间（填写的是 150）",
                      "queue_display.blink_s": "新叫号闪烁时长须为整数（填写的是“abc”）"}
    config, errors = form.config_from_form("queue_display", {"queue_display.brightness": "60",
                                                             "queue_display.blink_s": "",
                                                             "queue_display.idle_text": "  欢迎光临示例镇 ",
                                                             "rating_pad.brightness": "7"}, ZH)
    assert (config, errors) == ({"brightness": 60, "idle_text": "欢迎光临示例镇"}, {})  # empty: not set here
    assert messages.validate_config("queue_display", config) == config
    assert form.scope_problem("town", "4452", ZH) == "乡镇级范围须为 9 位区划代码（填写的是“4452”）"
    assert form.scope_problem("device", "display-3", ZH) == \
        "设备编号应为 dev- 加 12 位十六进制数字（填写的是“display-3”）"


@pytest.fixture
def fleet_and_token(fleet_settings):
    now = MONDAY_10 + timedelta(minutes=30)
    app = create_app(fleet_settings, clock=lambda: now)
    engine = app.state.engine
    edge_online(engine, MONDAY_10)
    birth(engine, DISPLAY, 1, MONDAY_10)
    token = add_user(engine)
    with serve(app) as base:
        yield base, token


@pytest.fixture
def fleet(fleet_and_token):
    return fleet_and_token[0]


def fill_display_form(page, scope: str, scope_id: str, **values: str) -> None:
    page.select_option("#cf-scope", scope)
    page.fill("#cf-scope-id", scope_id)
    page.select_option("#cf-role", "queue_display")
    for key, value in values.items():
        page.fill(f"#cf-queue_display-{key}", value)


@pytest.mark.browser
def test_county_it_sets_a_display_text_in_a_form_and_sees_it_in_chinese(fleet, page) -> None:
    log_in(page, fleet)
    page.goto(fleet + "/config")
    # The window's display, from its row in the device table: the form opens for it.
    page.locator(f"#config-devices tr[data-device='{DISPLAY}'] a.set-config").click()
    assert page.locator("#cf-scope").input_value() == "device"
    assert page.locator("#cf-scope-id").input_value() == DISPLAY
    assert page.locator("fieldset[data-role='rating_pad']").is_hidden()  # only the display's own fields
    assert page.get_by_label("空闲时显示文字").is_visible()
    page.get_by_label("空闲时显示文字").fill("欢迎光临示例镇")
    page.click("#cf-submit")

    scope_row = page.locator(f"#scopes tr[data-scope='device:{DISPLAY}:queue_display']")
    assert scope_row.locator(".config").inner_text().replace("\n", "") == "空闲时显示文字：欢迎光临示例镇"
    assert "\\u" not in page.content() and "idle_text" not in page.locator("main").inner_text()
    assert page.locator("#history tr[data-revision='1'] .config").inner_text().replace("\n", "") == \
        "空闲时显示文字：欢迎光临示例镇"
    assert page.get_by_label("空闲时显示文字").input_value() == "欢迎光临示例镇"  # the form shows what is in force

    # A value out of range (the browser's own check switched off, as an old browser would not check): a Chinese
    # sentence naming the field, the typed values kept, nothing saved.
    page.locator("#config-form").evaluate("form => form.noValidate = true")
    page.locator("#cf-queue_display-brightness").fill("150")
    page.click("#cf-submit")
    assert page.locator("#config-error").inner_text() == "配置未保存：亮度须在 0 到 100 之间（填写的是 150）"
    field = page.locator(".config-field[data-key='brightness']")
    assert field.locator(".field-error").inner_text() == "亮度须在 0 到 100 之间（填写的是 150）"
    assert page.locator("#cf-queue_display-brightness").input_value() == "150"
    assert page.locator("#history tr[data-revision]").count() == 1

    # A scope that is not one, and a device of another type: said in Chinese too.
    page.goto(fleet + "/config")
    page.locator("#config-form").evaluate("form => form.noValidate = true")
    fill_display_form(page, "town", "4452", brightness="60")
    page.click("#cf-submit")
    assert page.locator("#config-error").inner_text() == "配置未保存：乡镇级范围须为 9 位区划代码（填写的是“4452”）"
    page.select_option("#cf-scope", "device")
    page.fill("#cf-scope-id", DISPLAY)
    page.select_option("#cf-role", "rating_pad")
    page.click("#cf-submit")
    assert page.locator("#config-error").inner_text() == \
        f"配置未保存：设备 {DISPLAY} 是排队显示屏，不能保存评价器的配置"

    # The English page: English labels and refusals, the saved Chinese text as typed.
    page.goto(fleet + f"/config?lang=en&scope=device&scope_id={DISPLAY}&role=queue_display")
    assert scope_row.locator(".config").inner_text().replace("\n", "") == "Text while idle:欢迎光临示例镇"
    page.locator("#config-form").evaluate("form => form.noValidate = true")
    page.locator("#cf-queue_display-brightness").fill("101")
    page.click("#cf-submit")
    error = page.locator("#config-error").inner_text()
    assert error == "Not saved: Brightness must be between 0 and 100 (got 101)"
    labels = " ".join(page.locator("#config-form label, #config-form .help, #config-form legend").all_inner_texts())
    assert not CJK.search(labels.replace("欢迎光临", "")), labels


def header_lines(page, table: str) -> dict[str, int]:
    """How many lines each header cell of `table` takes on screen."""
    return page.locator(f"{table} th").evaluate_all("""cells => Object.fromEntries(cells
        .filter(c => c.textContent.trim()).map(c => { const r = document.createRange(); r.selectNodeContents(c);
                    const tops = new Set([...r.getClientRects()].map(x => Math.round(x.top)));
                    return [c.textContent.trim(), tops.size]; }))""")


@pytest.mark.browser
@pytest.mark.parametrize("width", [768, 1366])
def test_config_tables_keep_every_header_on_one_line(fleet_and_token, chromium, width, tmp_path) -> None:
    fleet, token = fleet_and_token
    httpx.put(f"{fleet}/api/config/device/{DISPLAY}/queue_display", headers={"Authorization": f"Bearer {token}"},
              json={"config": {"idle_text": "欢迎光临示例镇便民服务中心请您评价", "brightness": 60, "blink_s": 5,
                               "health_interval_s": 30}}).raise_for_status()
    context = chromium.new_context(locale="zh-CN", viewport={"width": width, "height": 768})
    page = context.new_page()
    try:
        log_in(page, fleet)
        page.goto(f"{fleet}/config?scope=device&scope_id={DISPLAY}&role=queue_display")
        for table in ("#scopes", "#history", "#config-devices"):
            lines = header_lines(page, table)
            assert lines and all(n == 1 for n in lines.values()), f"{table} at {width} px: {lines}"
        # The page itself never scrolls sideways: a wide table scrolls in its own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(tmp_path / f"config-{width}.png"), full_page=True)
    finally:
        context.close()

