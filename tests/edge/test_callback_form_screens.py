"""The kiosk's callback phone form on the kiosk's screens (landscape and portrait), in headless Chromium.

Every key, both fields, 提交 and 返回取号 are on screen and large enough for a resident at arm's length; a refusal
is shown in Chinese in the form, and 返回取号 goes back to the ticket screen.
"""

from __future__ import annotations

import pytest

from tests.edge.test_pages import make_agent  # noqa: F401  (the running agent fixture)
from tests.edge.test_screens import KIOSK_SIZES, MIN_RESIDENT_PX, font_px, on_screen, screen

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("size", KIOSK_SIZES, ids=["landscape", "portrait"])
def test_the_callback_form_fits_the_kiosk_and_says_why_it_refuses(make_agent, chromium, size,  # noqa: F811
                                                                  tmp_path) -> None:
    width, height = size
    center = make_agent()
    context, page = screen(chromium, width, height)
    try:
        page.goto(f"{center.base}/kiosk")
        on_screen(page.locator("#callback-open"), width, height)
        page.click("#callback-open")
        page.wait_for_selector("#keypad")
        keys = page.locator(".key")
        assert keys.count() == 2 + 12  # the services' letters A and B, ten digits, 清空 and 删除
        for i in range(keys.count()):
            on_screen(keys.nth(i), width, height)
            assert font_px(keys.nth(i)) >= MIN_RESIDENT_PX
        for element in ("#field-ticket", "#field-phone", "#callback-submit", "#callback-back"):
            on_screen(page.locator(element), width, height)
        assert font_px(page.locator("#ticket-value")) >= MIN_RESIDENT_PX
        for key in ["B", "0", "1", "2"]:
            page.click(f'.key[data-key="{key}"]')
        for digit in "13912345678":
            page.click(f'.key[data-key="{digit}"]')
        assert (page.locator("#ticket-value").inner_text(), page.locator("#phone-value").inner_text()) == \
            ("B012", "13912345678")
        page.click("#key-back")
        assert page.locator("#phone-value").inner_text() == "1391234567"
        page.click('.key[data-key="8"]')
        page.click("#callback-submit")
        # This test center has no edge key, so it could never forget a number: it takes none, and says so.
        error = page.locator("#callback-error")
        error.filter(has_text="本中心暂不能登记回访电话").wait_for()
        on_screen(error, width, height)
        assert font_px(error) >= MIN_RESIDENT_PX - 4
        page.screenshot(path=str(tmp_path / f"callback-{width}x{height}.png"))
        page.click("#callback-back")
        page.wait_for_url(f"{center.base}/kiosk")
    finally:
        context.close()
