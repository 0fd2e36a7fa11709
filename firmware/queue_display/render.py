"""The queue display's pixels: the ticket number large, the call text scrolling.

Pure: reads the QueueDisplayApp's state, draws into a framebuffer of the
board's panel, allocates only when the content changes. Three layouts,
chosen by the panel's size (the board definition):

- strip (16 rows, 96+ columns: two chained 64x16 HUB12 LED panels):
  the number twice as wide on the left 64 columns, the call text
  scrolling on the right; 3号窗口 暂停服务 across the whole width otherwise.
- alternate (16 rows, narrower: one 64x16 panel): the number for
  NUMBER_MS, then the call text scrolls past once, and again.
- tall (48+ rows: SSD1306 128x64 OLED): window title on top, the number
  twice as wide and tall in the middle, the call text at the bottom.

A new call blinks the number (inverted every BLINK_PERIOD_MS for
BLINK_MS, from the app); the offline mark is 网络中断, inverted in the
title row of a tall panel, after the text on a strip (plus a dotted bar
between number and text, always in view).
"""

from firmware.lib import clock
from firmware.lib.screen import SCROLL_HOLD_MS, SCROLL_PX_PER_S, Region, buffer_size
from firmware.queue_display.app import BLINK_MS, OFFLINE_TEXT, window_title
from protocol import messages

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

LAYOUT_STRIP = "strip"
LAYOUT_ALTERNATE = "alternate"
LAYOUT_TALL = "tall"
NUMBER_WIDTH = 64  # strip layout: columns kept for the number (4 characters twice as wide)
NUMBER_GAP = 4  # strip layout: dark columns between the number and the text, so A012 does not run into 请
NUMBER_MS = BLINK_MS  # alternate layout: the number stands this long (covering the blink) before the text
TEXT_STILL_MS = 3000  # alternate layout: how long a text that fits stands before the number returns
SEPARATOR = "  "


def layout_for(width, height):
    if height >= 48:
        return LAYOUT_TALL
    if width >= NUMBER_WIDTH + NUMBER_GAP + 32:
        return LAYOUT_STRIP
    return LAYOUT_ALTERNATE


def number_bitmap(font, ticket, width, height):
    """The ticket number as large as the area allows: 2x2, 2x wide, or plain."""
    for scale_x, scale_y in ((2, 2), (2, 1), (1, 1)):
        if 16 * scale_y <= height and font.text_width(ticket, scale_x) <= width:
            return font.render(ticket, scale_x, scale_y)
    return font.render(ticket)


class QueueDisplayRenderer:
    def __init__(self, font, width, height, fmt):
        self.font = font
        self.width = width
        self.height = height
        self.buffer = bytearray(buffer_size(width, height, fmt))
        self.fb = framebuf.FrameBuffer(self.buffer, width, height, fmt)
        self.layout = layout_for(width, height)
        self.serving = False
        self.offline = False
        # Which regions exist depends on the layout: the title only on a tall panel, `whole` only on a strip.
        self.title = None  # type: Region | None
        if self.layout == LAYOUT_TALL:
            self.title = Region(0, 0, width, 16)
            self.number = Region(0, 16, width, 32)
            self.text = Region(0, height - 16, width, 16)
        elif self.layout == LAYOUT_STRIP:
            self.title = None
            self.number = Region(0, 0, NUMBER_WIDTH, 16)
            self.text = Region(NUMBER_WIDTH + NUMBER_GAP, 0, width - NUMBER_WIDTH - NUMBER_GAP, 16)
        else:
            self.title = None
            self.number = Region(0, 0, width, 16)
            self.text = Region(0, 0, width, 16)
        self.whole = Region(0, 0, width, 16) if self.layout != LAYOUT_TALL else None  # type: Region | None
        self._changes = None
        self._pushed = False
        self._showing_number = True
        self._cycle_since = 0
        self._text_ms = 0

    # ------------------------------------------------------------ content

    def _set_content(self, app, now_ms):
        """Lay out the app's current lines: the only place that allocates."""
        lines = app.lines()
        font = self.font
        self.serving = app.state == messages.DISPLAY_SERVING and bool(app.ticket)
        offline = app.offline
        self.offline = offline
        title = self.title
        if self.layout == LAYOUT_TALL:
            assert title is not None  # a tall panel always has its title row
            if offline:
                title.set(font.render(OFFLINE_TEXT), now_ms, inverted=True)
            else:
                title.set(font.render(window_title(app.window) if self.serving else lines[0]), now_ms)
            if self.serving:
                self.number.set(number_bitmap(font, lines[0], self.width, 32), now_ms)
                self.text.set(font.render(lines[1]), now_ms)
            else:
                self.number.set(number_bitmap(font, lines[1], self.width, 32), now_ms)
                self.text.set(None, now_ms)
            return
        extra = (SEPARATOR + OFFLINE_TEXT) if offline else ""
        if self.serving:
            self.number.set(number_bitmap(font, lines[0], self.number.width, 16), now_ms)
            text = font.render(lines[1] + extra)
            self.text.set(text, now_ms)
            if self.text.scrolls:
                self._text_ms = SCROLL_HOLD_MS + text.width * 1000 // SCROLL_PX_PER_S
            else:
                self._text_ms = TEXT_STILL_MS
            self._cycle_since = now_ms
            self._showing_number = True
        else:
            whole = self.whole
            assert whole is not None  # only the tall layout has no `whole`, and it is handled above
            whole.set(font.render(lines[0] + " " + lines[1] + extra), now_ms)

    # ------------------------------------------------------------ frames

    def _alternate_phase(self, now_ms):
        """Alternate layout: whether the number shows now (else the text); restarts the text's scroll."""
        cycle = NUMBER_MS + self._text_ms
        elapsed = clock.ticks_diff(now_ms, self._cycle_since)  # type: ignore[type-var]  # ticks are plain ints
        if elapsed < 0:  # not drawn for more than 2**29 ms (half the ticks period): start a new cycle
            self._cycle_since = now_ms
            elapsed = 0
        while elapsed >= cycle:
            self._cycle_since = clock.ticks_add(self._cycle_since, cycle)  # type: ignore[type-var]
            elapsed -= cycle
        showing_number = elapsed < NUMBER_MS
        if showing_number != self._showing_number:
            self._showing_number = showing_number
            self._pushed = False
            if not showing_number:
                self.text.set(self.text.bitmap, now_ms)
        return showing_number

    def invalidate(self):
        """Draw everything again at the next frame (after an overlay covered the screen)."""
        self._pushed = False

    def draw(self, app, now_ms):
        """Draw the frame for `now_ms`. Returns False (and draws nothing) when no pixel would change."""
        if app.changes != self._changes:
            self._set_content(app, now_ms)
            self._changes = app.changes  # only once laid out: a font read error leaves it to do again
            self._pushed = False
        invert = not app.blink_on(now_ms)
        fb = self.fb
        title, whole = self.title, self.whole
        if self.layout == LAYOUT_TALL:
            assert title is not None
            if self._pushed and not (title.stale(now_ms) or self.number.stale(now_ms, invert and self.serving)
                                     or self.text.stale(now_ms)):
                return False
            fb.fill(0)
            title.draw(fb, now_ms)
            self.number.draw(fb, now_ms, invert and self.serving)
            self.text.draw(fb, now_ms)
        elif not self.serving:
            assert whole is not None
            if self._pushed and not whole.stale(now_ms):
                return False
            whole.draw(fb, now_ms)
        elif self.layout == LAYOUT_STRIP:
            if self._pushed and not (self.number.stale(now_ms, invert) or self.text.stale(now_ms)):
                return False
            fb.fill_rect(NUMBER_WIDTH, 0, NUMBER_GAP, 16, 0)
            if self.offline:
                for y in range(0, 16, 2):  # a dotted bar between number and text: always in view
                    fb.fill_rect(NUMBER_WIDTH + 1 + (y >> 1) % 2, y, 1, 1, 1)
            self.number.draw(fb, now_ms, invert)
            self.text.draw(fb, now_ms)
        else:
            if self._alternate_phase(now_ms):
                if self._pushed and not self.number.stale(now_ms, invert):
                    return False
                self.number.draw(fb, now_ms, invert)
            else:
                if self._pushed and not self.text.stale(now_ms):
                    return False
                self.text.draw(fb, now_ms)
        self._pushed = True
        return True
