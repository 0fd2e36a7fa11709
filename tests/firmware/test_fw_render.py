"""Pixels of the queue display and the rating pad, compared with the font's own bitmaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.lib import clock, font
from firmware.lib import framebuf_compat as framebuf
from firmware.lib.screen import SCROLL_GAP_PX, SCROLL_HOLD_MS, SCROLL_PX_PER_S, PixelScreen, Region, wrap
from firmware.queue_display import render as qd_render
from firmware.queue_display.app import BLINK_MS, BLINK_PERIOD_MS, OFFLINE_AFTER_MS, QueueDisplayApp
from firmware.rating_pad.app import THANKS_MS, RatingPadApp
from firmware.rating_pad.render import RatingPadRenderer, led_states

ROOT = Path(__file__).resolve().parents[2]
FONT = font.from_bytes((ROOT / "firmware" / "lib" / "default_font.bin").read_bytes())
CALL = "请A012号到3号窗口"


def serving(seq: int = 7, ticket: str = "A012", text: str = CALL) -> dict:
    return {"window": 3, "state": "serving", "ticket": ticket, "text": text, "call_seq": seq}


def paused() -> dict:
    return {"window": 3, "state": "paused", "ticket": "", "text": "暂停服务", "call_seq": 7}


def area(fb, x: int, y: int, w: int, h: int) -> list[list[int]]:
    return [[fb.pixel(x + i, y + j) or 0 for i in range(w)] for j in range(h)]


def bitmap_area(bitmap, x: int, w: int, pad_to: int | None = None) -> list[list[int]]:
    """Columns x..x+w of a text bitmap, dark beyond its width."""
    rows = []
    for j in range(bitmap.height):
        rows.append([(bitmap.fb.pixel(i, j) or 0) if 0 <= i < bitmap.width else 0 for i in range(x, x + w)])
    return rows


def inverted(rows: list[list[int]]) -> list[list[int]]:
    return [[1 - p for p in row] for row in rows]


def centred(bitmap, width: int, height: int | None = None) -> list[list[int]]:
    left = (width - bitmap.width) // 2
    return bitmap_area(bitmap, -left, width)


def lit(rows: list[list[int]]) -> int:
    return sum(map(sum, rows))


def strip() -> qd_render.QueueDisplayRenderer:
    return qd_render.QueueDisplayRenderer(FONT, 128, 16, framebuf.MONO_HLSB)


TEXT_X = qd_render.NUMBER_WIDTH + qd_render.NUMBER_GAP
TEXT_W = 128 - TEXT_X


# --- queue display on two chained 64x16 LED panels --------------------------------------------------------


def test_strip_shows_the_number_twice_as_wide_and_the_start_of_the_call_text() -> None:
    app, r = QueueDisplayApp(3), strip()
    app.on_display(serving(), 1000, retained=True)
    assert r.draw(app, 1000)
    assert area(r.fb, 0, 0, 64, 16) == bitmap_area(FONT.render("A012", 2, 1), 0, 64)
    assert lit(area(r.fb, 64, 0, qd_render.NUMBER_GAP, 16)) == 0
    assert area(r.fb, TEXT_X, 0, TEXT_W, 16) == bitmap_area(FONT.render(CALL), 0, TEXT_W)


def test_call_text_holds_then_scrolls_left_at_its_pace_and_comes_round_again() -> None:
    app, r = QueueDisplayApp(3), strip()
    app.on_display(serving(), 1000, retained=True)
    text = FONT.render(CALL)
    r.draw(app, 1000)  # the screen learns of the change when it happens (PixelScreen.show_lines)
    r.draw(app, 1000 + SCROLL_HOLD_MS - 1)
    assert area(r.fb, TEXT_X, 0, TEXT_W, 16) == bitmap_area(text, 0, TEXT_W)
    r.draw(app, 1000 + SCROLL_HOLD_MS + 1000)
    assert area(r.fb, TEXT_X, 0, TEXT_W, 16) == bitmap_area(text, SCROLL_PX_PER_S, TEXT_W)
    cycle_ms = (text.width + SCROLL_GAP_PX) * 1000 // SCROLL_PX_PER_S
    r.draw(app, 1000 + SCROLL_HOLD_MS + cycle_ms)  # one whole round later: the start again
    assert area(r.fb, TEXT_X, 0, TEXT_W, 16) == bitmap_area(text, 0, TEXT_W)


def test_a_new_call_blinks_the_number_then_stops() -> None:
    app, r = QueueDisplayApp(3), strip()
    app.on_display(serving(seq=1), 0, retained=True)  # the state at boot: no blink
    app.on_display(serving(seq=2), 1000)
    number = bitmap_area(FONT.render("A012", 2, 1), 0, 64)
    r.draw(app, 1000)
    assert area(r.fb, 0, 0, 64, 16) == number
    r.draw(app, 1000 + BLINK_PERIOD_MS)
    assert area(r.fb, 0, 0, 64, 16) == inverted(number)
    assert area(r.fb, TEXT_X, 0, TEXT_W, 16) == bitmap_area(FONT.render(CALL), 0, TEXT_W)  # the text never blinks
    app.tick(1000 + BLINK_MS)
    r.draw(app, 1000 + BLINK_MS + BLINK_PERIOD_MS)
    assert area(r.fb, 0, 0, 64, 16) == number


def test_paused_and_idle_fill_the_strip_with_window_and_state() -> None:
    app, r = QueueDisplayApp(3), strip()
    r.draw(app, 0)
    assert area(r.fb, 0, 0, 128, 16) == centred(FONT.render("3号窗口 欢迎光临"), 128)
    app.on_display(paused(), 100)
    r.draw(app, 100)
    assert area(r.fb, 0, 0, 128, 16) == centred(FONT.render("3号窗口 暂停服务"), 128)


def test_offline_shows_a_dotted_bar_and_network_down_after_the_text() -> None:
    app, r = QueueDisplayApp(3), strip()
    app.on_link(True, 0)
    app.on_display(serving(), 0, retained=True)
    r.draw(app, 0)
    assert lit(area(r.fb, 64, 0, 4, 16)) == 0
    app.on_link(False, 1000)
    app.tick(1000 + OFFLINE_AFTER_MS + 1)
    r.draw(app, 1000 + OFFLINE_AFTER_MS + 1)
    assert lit(area(r.fb, 64, 0, 4, 16)) == 8
    assert r.text.bitmap.width == FONT.text_width(CALL + "  网络中断")
    app.on_link(True, 20000)
    r.draw(app, 20000)
    assert lit(area(r.fb, 64, 0, 4, 16)) == 0


def test_draw_reports_whether_any_pixel_can_have_changed() -> None:
    app, r = QueueDisplayApp(3), strip()
    app.on_display(paused(), 0)
    assert r.draw(app, 0) is True
    assert r.draw(app, 5000) is False  # a still text: nothing to push
    app.on_display(serving(), 6000, retained=True)
    assert r.draw(app, 6000) is True
    assert r.draw(app, 6000 + 100) is False  # holding before the scroll
    assert r.draw(app, 6000 + SCROLL_HOLD_MS + 200) is True  # moving
    r.invalidate()
    assert r.draw(app, 6000 + SCROLL_HOLD_MS + 200) is True


# --- one 64x16 panel: number and text take turns --------------------------------------------------------


def test_a_single_panel_alternates_the_large_number_and_the_scrolling_text() -> None:
    app = QueueDisplayApp(3)
    r = qd_render.QueueDisplayRenderer(FONT, 64, 16, framebuf.MONO_HLSB)
    assert r.layout == qd_render.LAYOUT_ALTERNATE
    app.on_display(serving(), 0, retained=True)
    number = bitmap_area(FONT.render("A012", 2, 1), 0, 64)
    text = FONT.render(CALL)
    r.draw(app, 0)
    assert area(r.fb, 0, 0, 64, 16) == number
    r.draw(app, qd_render.NUMBER_MS)
    assert area(r.fb, 0, 0, 64, 16) == bitmap_area(text, 0, 64)
    r.draw(app, qd_render.NUMBER_MS + SCROLL_HOLD_MS + 2000)
    assert area(r.fb, 0, 0, 64, 16) == bitmap_area(text, 2 * SCROLL_PX_PER_S, 64)
    cycle = qd_render.NUMBER_MS + SCROLL_HOLD_MS + text.width * 1000 // SCROLL_PX_PER_S
    r.draw(app, cycle + 10)
    assert area(r.fb, 0, 0, 64, 16) == number


def test_a_single_panel_keeps_alternating_after_a_pause_longer_than_half_the_ticks_period() -> None:
    # Drawn again more than 2**29 ms later (across the wrap): the number and the text still take turns.
    period = clock.TICKS_PERIOD
    start = period - 2000
    app = QueueDisplayApp(3)
    r = qd_render.QueueDisplayRenderer(FONT, 64, 16, framebuf.MONO_HLSB)
    app.on_display(serving(), start, retained=True)
    number = bitmap_area(FONT.render("A012", 2, 1), 0, 64)
    r.draw(app, start)
    later = (start + period // 2 + 1000) % period
    shown = []
    for t in range(0, 3 * (qd_render.NUMBER_MS + 10000), 500):
        r.draw(app, clock.ticks_add(later, t))
        shown.append(area(r.fb, 0, 0, 64, 16) == number)
    assert True in shown and False in shown


# --- queue display on a 128x64 OLED ----------------------------------------------------------------------


def tall() -> qd_render.QueueDisplayRenderer:
    return qd_render.QueueDisplayRenderer(FONT, 128, 64, framebuf.MONO_VLSB)


def test_oled_shows_title_number_large_and_call_text() -> None:
    app, r = QueueDisplayApp(3), tall()
    assert r.layout == qd_render.LAYOUT_TALL
    app.on_display(serving(), 0, retained=True)
    r.draw(app, 0)
    assert area(r.fb, 0, 0, 128, 16) == centred(FONT.render("3号窗口"), 128)
    assert area(r.fb, 0, 16, 128, 32) == centred(FONT.render("A012", 2, 2), 128)
    assert area(r.fb, 0, 48, 128, 16) == bitmap_area(FONT.render(CALL), 0, 128)  # wider than 128: scrolls


def test_oled_offline_mark_is_an_inverted_title_row() -> None:
    app, r = QueueDisplayApp(3), tall()
    app.on_link(False, 0)
    app.tick(OFFLINE_AFTER_MS + 1)
    r.draw(app, OFFLINE_AFTER_MS + 1)
    assert area(r.fb, 0, 0, 128, 16) == inverted(centred(FONT.render("网络中断"), 128))
    assert area(r.fb, 0, 16, 128, 32) == centred(FONT.render("欢迎光临", 2, 2), 128)


# --- rating pad ---------------------------------------------------------------------------------------------


def pad() -> tuple[RatingPadApp, RatingPadRenderer]:
    return RatingPadApp(3, "dev-000000000001"), RatingPadRenderer(FONT, 128, 64, framebuf.MONO_VLSB)


def open_request(app: RatingPadApp, now: int) -> None:
    app.on_request({"request_id": "rq-1", "window": 3, "state": "open", "ticket": "A012", "staff_no": "1003",
                    "staff_name": "王芳", "timeout_s": 60}, now)


def rows_of(r: RatingPadRenderer) -> list[tuple[int, object]]:
    return [(region.y, region.bitmap) for region in r._used]


def test_pad_open_shows_who_served_and_the_wrapped_prompt_with_every_led_lit() -> None:
    app, r = pad()
    open_request(app, 0)
    r.draw(app, 0)
    assert wrap(FONT, "请对本次服务进行评价", 128) == ["请对本次服务进行", "评价"]
    rows = rows_of(r)
    assert len(rows) == 3
    (y0, _), (y1, _), (y2, _) = rows
    assert area(r.fb, 0, y0, 128, 16) == centred(FONT.render("王芳 工号1003"), 128)
    assert area(r.fb, 0, y1, 128, 16) == centred(FONT.render("请对本次服务进行"), 128)
    assert area(r.fb, 0, y2, 128, 16) == centred(FONT.render("评价"), 128)
    assert y0 >= 0 and y2 + 16 <= 64 and y1 - y0 > 16  # air under the heading, all on the screen
    assert led_states(app) == (True,) * 5


def test_pad_thanks_after_a_press_lights_only_that_button() -> None:
    app, r = pad()
    open_request(app, 0)
    app.press(4, 100)
    r.draw(app, 100)
    (y0, _), (y1, _) = rows_of(r)
    assert area(r.fb, 0, y0, 128, 16) == centred(FONT.render("谢谢您的评价"), 128)
    assert area(r.fb, 0, y1, 128, 16) == centred(FONT.render("满意"), 128)
    assert led_states(app) == (False, True, False, False, False)
    app.tick(100 + THANKS_MS)
    assert led_states(app) == (False,) * 5


def test_pad_idle_greets_twice_as_large_with_leds_dark() -> None:
    app, r = pad()
    r.draw(app, 0)
    (y0, _), (y1, big) = rows_of(r)
    assert (big.width, big.height) == (128, 32)
    assert area(r.fb, 0, y1, 128, 32) == centred(FONT.render("欢迎光临", 2, 2), 128)
    assert area(r.fb, 0, y0, 128, 16) == centred(FONT.render("3号窗口"), 128)
    assert led_states(app) == (False,) * 5


def test_pad_asks_a_bad_ratings_reason_one_at_a_time_lighting_its_button() -> None:
    app, r = pad()
    open_request(app, 0)
    app.press(2, 100)  # 不满意
    r.draw(app, 100)
    (y0, _), (y1, _), (y2, _) = rows_of(r)
    assert area(r.fb, 0, y0, 128, 16) == centred(FONT.render("请选择不满意原因"), 128)
    assert area(r.fb, 0, y1, 128, 16) == centred(FONT.render("服务态度"), 128)
    assert area(r.fb, 0, y2, 128, 16) == centred(FONT.render("按亮灯的键选此项"), 128)
    assert y0 >= 0 and y2 + 16 <= 64
    assert led_states(app) == (True, False, False, False, False)
    later = 100 + 3 * RatingPadApp.REASON_SPOT_MS
    app.tick(later)
    assert r.draw(app, later) is True
    (_, _), (y1, _), (_, _) = rows_of(r)
    assert FONT.render("一次性告知不到位").width == 128  # the longest reason fits the screen
    assert area(r.fb, 0, y1, 128, 16) == centred(FONT.render("一次性告知不到位"), 128)
    assert led_states(app) == (False, False, False, True, False)
    app.press(4, later + 10)  # the second button: 服务效率, lit alone on the thanks screen
    r.draw(app, later + 10)
    (y0, _), (y1, _) = rows_of(r)
    assert area(r.fb, 0, y1, 128, 16) == centred(FONT.render("服务效率"), 128)
    assert led_states(app) == (False, True, False, False, False)


def test_a_long_staff_line_scrolls_instead_of_being_cut() -> None:
    app, r = pad()
    app.on_request({"request_id": "rq-2", "window": 3, "state": "open", "ticket": "A013", "staff_no": "100312",
                    "staff_name": "欧阳王芳张敏", "timeout_s": 60}, 0)
    r.draw(app, 0)
    heading = r._used[0]
    assert heading.scrolls
    assert r.draw(app, SCROLL_HOLD_MS + 1000) is True


# --- the panel the runtime draws on ---------------------------------------------------------------------------


class RecordingDisplay:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.level = None

    def show(self, buffer) -> None:
        self.frames.append(bytes(buffer))

    def brightness(self, percent: int) -> None:
        self.level = percent


class RecordingLeds:
    def __init__(self) -> None:
        self.shown: list[tuple] = []

    def show(self, states) -> None:
        self.shown.append(tuple(states))


def test_pixel_screen_pushes_frames_only_when_something_moved() -> None:
    app, r, display = QueueDisplayApp(3), strip(), RecordingDisplay()
    screen = PixelScreen(app, r, display)
    app.on_display(paused(), 0)
    assert screen.frame(0) is True
    assert screen.frame(40) is False and screen.frame(80) is False
    assert len(display.frames) == 1
    screen.set_brightness(30)
    assert display.level == 30


def test_pixel_screen_draws_overlay_lines_then_returns_to_the_app() -> None:
    app, r, display = QueueDisplayApp(3), tall(), RecordingDisplay()
    screen = PixelScreen(app, r, display)
    app.on_display(serving(), 0, retained=True)
    screen.show_lines(app.lines())
    normal = display.frames[-1]
    screen.show_lines(["设备识别", "dev-0266f53dc4de"])  # the runtime's identify overlay
    assert screen.overlay
    fb = framebuf.FrameBuffer(bytearray(display.frames[-1]), 128, 64, framebuf.MONO_VLSB)
    assert area(fb, 0, 0, 128, 16) == centred(FONT.render("设备识别"), 128)
    screen.show_lines(app.lines())
    assert not screen.overlay
    assert display.frames[-1][:128 * 6] == normal[:128 * 6]  # title and number as before (text row scrolls)


def test_pixel_screen_drives_the_button_leds_on_every_change() -> None:
    app, r = pad()
    leds = RecordingLeds()
    screen = PixelScreen(app, r, RecordingDisplay(), leds)
    screen.show_lines(app.lines())
    open_request(app, 0)
    screen.show_lines(app.lines())
    app.press(5, 10)
    screen.show_lines(app.lines())
    assert leds.shown == [(False,) * 5, (True,) * 5, (True, False, False, False, False)]


def test_region_keeps_its_clock_small_over_long_scrolling() -> None:
    region = Region(0, 0, 32, 16)
    region.set(FONT.render(CALL), 0)
    day_ms = 24 * 3600 * 1000
    offset = region.offset(day_ms)
    assert 0 <= offset < FONT.text_width(CALL) + SCROLL_GAP_PX
    assert region._since > day_ms - 20000  # re-based, so ticks arithmetic stays in small ints


def test_region_scrolls_on_after_a_pause_longer_than_half_the_ticks_period() -> None:
    period = clock.TICKS_PERIOD
    start = period - 2000
    region = Region(0, 0, 32, 16)
    region.set(FONT.render(CALL), start)
    assert region.offset(clock.ticks_add(start, SCROLL_HOLD_MS + 1000)) == SCROLL_PX_PER_S
    later = (start + period // 2 + SCROLL_HOLD_MS + 1000) % period  # not drawn since: the start reads as days ahead
    offsets = {region.offset(clock.ticks_add(later, t)) for t in range(0, 4000, 200)}
    assert len(offsets) > 1  # moving again, not stuck at 0


@pytest.mark.parametrize("width, height, layout", [(128, 16, "strip"), (64, 16, "alternate"), (128, 64, "tall"),
                                                   (256, 16, "strip")])
def test_layout_follows_the_panel_size(width: int, height: int, layout: str) -> None:
    assert qd_render.layout_for(width, height) == layout
