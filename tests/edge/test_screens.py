"""A day at the counter on the screens centers buy, in headless Chromium against the real agent.

Kiosk at 1920x1080 and portrait 1080x1920, the staff caller on a 1024x600 window screen, the hall on a
1920x1080 and a 1366x768 TV. Bounding boxes prove that what a user needs is on screen (not below the
fold, not under the ticker), and the hall's banner is checked against every way a call ends.
"""

from __future__ import annotations

import re

import pytest

from tests.edge.test_pages import make_agent  # noqa: F401  (the running agent fixture)
from tests.support.staff import PINS, set_pins, signed_in

pytestmark = pytest.mark.broker

KIOSK_SIZES = [(1920, 1080), (1080, 1920)]
HALL_SIZES = [(1920, 1080), (1366, 768)]
STAFF_SIZE = (1024, 600)
MIN_RESIDENT_PX = 32  # the smallest text a resident must read at arm's length on the kiosk and the hall


def screen(chromium, width: int, height: int):
    context = chromium.new_context(locale="zh-CN", viewport={"width": width, "height": height})
    return context, context.new_page()


def on_screen(locator, width: int, height: int, under: float | None = None) -> None:
    """Wholly inside the viewport (and above `under`, e.g. the ticker's top)."""
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not shown"
    bottom = height if under is None else under
    assert box["x"] >= 0 and box["y"] >= 0, (locator, box)
    assert box["x"] + box["width"] <= width + 0.5 and box["y"] + box["height"] <= bottom + 0.5, (locator, box)


def font_px(locator) -> float:
    return float(locator.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))


def lines_of(locator) -> int:
    """How many lines a button's text takes (下一位 must not wrap)."""
    return int(locator.evaluate(
        "e => { const r = document.createRange(); r.selectNodeContents(e);"
        " return new Set([...r.getClientRects()].map(c => Math.round(c.top))).size; }"))


@pytest.mark.parametrize("size", KIOSK_SIZES, ids=["landscape", "portrait"])
def test_the_kiosk_fills_its_screen_asks_before_printing_and_prints_once(make_agent, chromium, size,  # noqa: F811
                                                                       tmp_path):
    width, height = size
    center = make_agent()
    signed_in(center.base, 3)  # so 社保业务 has an estimate
    context, page = screen(chromium, width, height)
    try:
        page.goto(f"{center.base}/kiosk")
        page.locator('[data-estimate="A"]').filter(has_text="预计").wait_for()
        tiles = page.locator("button.service")
        guides = page.locator("button.guide-open")
        assert tiles.count() == guides.count() == 2  # every item alike: each has its 办事指南
        for i in range(tiles.count()):
            on_screen(tiles.nth(i), width, height)
            on_screen(guides.nth(i), width, height)
        on_screen(page.locator("#help"), width, height)
        used = sum(tiles.nth(i).bounding_box()["height"] * tiles.nth(i).bounding_box()["width"]
                   for i in range(tiles.count()))
        assert used > 0.35 * width * height  # the tiles are the screen, not a third of it
        assert font_px(page.locator(".instruction")) >= MIN_RESIDENT_PX
        assert font_px(page.locator('[data-estimate="A"]')) >= MIN_RESIDENT_PX - 4
        page.screenshot(path=str(tmp_path / f"kiosk-{width}x{height}.png"))

        # A tap asks; 返回 goes back with no ticket.
        page.get_by_role("button", name=re.compile("医保业务")).first.click()
        question = page.locator("#confirm")
        question.filter(has_text="您选择的是医保业务，确认取号？").wait_for()
        on_screen(page.locator("#confirm-take"), width, height)
        on_screen(page.locator("#confirm-back"), width, height)
        page.get_by_role("button", name="返回").click()
        question.wait_for(state="hidden")
        # 确认 pressed twice in a hurry: one ticket, printed once.
        page.get_by_role("button", name=re.compile("医保业务")).first.click()
        page.locator("#confirm-take").dblclick()
        page.locator("#ticket-number").filter(has_text="B001").wait_for()
        page.locator("#ticket-close").click()
        page.locator('[data-waiting="B"]').filter(has_text="1").wait_for()
        assert center.agent.store.query("SELECT COUNT(*) FROM tickets WHERE service = 'B'") == [(1,)]
    finally:
        context.close()


def test_a_resident_asks_for_help_and_every_caller_and_the_hall_show_it(make_agent, chromium):  # noqa: F811
    center = make_agent()
    set_pins(center.base)
    kiosk_context, kiosk = screen(chromium, 1920, 1080)
    staff_context, staff = screen(chromium, *STAFF_SIZE)
    try:
        kiosk.goto(f"{center.base}/kiosk")
        staff.goto(f"{center.base}/staff/3")
        staff.locator("#staff-no").fill("1003")
        staff.locator("#staff-pin").fill(PINS["1003"])
        staff.get_by_role("button", name="登录").click()
        staff.locator("#staff-name").filter(has_text="王芳").wait_for()

        kiosk.get_by_role("button", name="请工作人员帮助").click()
        kiosk.locator("#help-status").filter(has_text="已通知工作人员").wait_for()
        alert = staff.locator("#help-alert")
        alert.wait_for()
        on_screen(alert, *STAFF_SIZE)
        staff.get_by_role("button", name="我去处理").click()
        alert.wait_for(state="hidden")
        kiosk.locator("#help-status").filter(has_text="王芳马上就到").wait_for()
    finally:
        kiosk_context.close()
        staff_context.close()


def test_the_staff_caller_keeps_every_action_on_a_small_window_screen(make_agent, chromium, tmp_path):  # noqa: F811
    center = make_agent()
    set_pins(center.base)
    for service in "AAA":
        center.post("/api/tickets", service=service)
    context, page = screen(chromium, *STAFF_SIZE)
    try:
        page.goto(f"{center.base}/staff/3")
        page.locator("#window-state").filter(has_text="未登录").wait_for()  # the real state before a sign-in
        for target in ("#staff-no", "#staff-pin", "#login"):
            on_screen(page.locator(target), *STAFF_SIZE)
        page.locator("#staff-no").fill("1003")
        page.locator("#staff-pin").fill(PINS["1003"])
        page.get_by_role("button", name="登录").click()
        page.locator("#window-state").filter(has_text="服务中").wait_for()
        for name in ("下一位", "重呼", "过号", "转移", "办结", "暂停", "退出登录"):
            on_screen(page.get_by_role("button", name=name, exact=True), *STAFF_SIZE)
        assert lines_of(page.locator("#next")) == 1
        first = page.locator("#waiting li").first
        first.filter(has_text="已等").wait_for()  # how long each person has waited
        on_screen(first.get_by_role("button", name="绿色通道"), *STAFF_SIZE)
        page.screenshot(path=str(tmp_path / "staff-1024x600.png"))

        # 绿色通道 asks first, and can be undone.
        first.get_by_role("button", name="绿色通道").click()
        page.locator("#green-panel").filter(has_text="将 A001 设为绿色通道").wait_for()
        page.get_by_role("button", name="取消").click()
        assert center.agent.store.query("SELECT priority FROM tickets WHERE number = 'A002'") == [("",)]
        page.locator('#waiting li[data-ticket="A002"]').get_by_role("button", name="绿色通道").click()
        page.get_by_role("button", name="确认").click()
        page.locator("#message").filter(has_text="A002 已设为绿色通道").wait_for()
        page.locator('#waiting li[data-ticket="A002"]').filter(has_text="绿色通道").wait_for()
        page.locator("#undo").click()
        page.locator("#message").filter(has_text="A002 已撤销绿色通道").wait_for()
        assert center.agent.store.query("SELECT priority FROM tickets WHERE number = 'A002'") == [("",)]

        # 转移 to the queue the ticket is already in is refused.
        page.locator("#next").click()
        page.locator("#current").filter(has_text="A001").wait_for()
        page.get_by_role("button", name="转移").click()
        page.locator("#transfer-service").select_option("A")
        page.get_by_role("button", name="确定转移").click()
        page.locator("#message").filter(has_text="已在社保业务队列中").wait_for()
    finally:
        context.close()


@pytest.mark.parametrize("size", HALL_SIZES, ids=["1920x1080", "1366x768"])
def test_the_hall_calls_only_where_a_window_is_serving(make_agent, chromium, size, tmp_path):  # noqa: F811
    width, height = size
    center = make_agent()
    for service in "AAAAB":
        center.post("/api/tickets", service=service)
    w3, w1 = signed_in(center.base, 3), signed_in(center.base, 1, pins_set=True)
    context, hall = screen(chromium, width, height)
    try:
        hall.goto(f"{center.base}/hall")
        banner = hall.locator("#latest")
        hall.locator('tr[data-window="2"] .state').filter(has_text="暂未开放").wait_for()  # neutral, not an alarm
        assert hall.locator('tr[data-window="2"] .staff').inner_text() == "—"
        hall.locator("#clock").filter(has_text=re.compile(r"\d{2}:\d{2}")).wait_for()

        w3.press("next").raise_for_status()
        banner.filter(has_text="请A001号到3号窗口").wait_for()
        ticker_top = hall.locator("footer.notice").bounding_box()["y"]
        on_screen(banner, width, height, under=ticker_top)
        assert font_px(banner) > font_px(hall.locator("table.windows td").first)  # the call is the largest
        assert font_px(hall.locator("#services li").first) >= MIN_RESIDENT_PX - 8
        w1.press("next").raise_for_status()
        banner.filter(has_text="请A002号到1号窗口").wait_for()
        recent = hall.locator("#recent li")
        recent.nth(1).wait_for()
        for i in range(recent.count()):
            on_screen(recent.nth(i), width, height, under=ticker_top)
        hall.screenshot(path=str(tmp_path / f"hall-{width}x{height}.png"))

        w1.press("skip").raise_for_status()  # A002 did not come: its call is over
        banner.filter(has_text="请A001号到3号窗口").wait_for()
        w3.press("transfer", service="B").raise_for_status()  # A001 goes to another queue
        banner.filter(has_text=re.compile("^$")).wait_for()
        w3.press("next").raise_for_status()
        banner.filter(has_text="请A003号到3号窗口").wait_for()
        w3.press("finish").raise_for_status()
        w3.press("pause").raise_for_status()  # window 3 closed: nobody is sent there
        banner.filter(has_text=re.compile("^$")).wait_for()
        hall.locator('tr[data-window="3"] .state').filter(has_text="暂停服务").wait_for()
    finally:
        context.close()
