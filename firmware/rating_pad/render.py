"""The rating pad's pixels (SSD1306 128x64 OLED) and its five button LEDs.

Pure: reads the RatingPadApp's state, draws into a framebuffer of the
board's screen, allocates only when the screen changes.

- open: who served (张敏 工号1001) on top, 请对本次服务进行评价 wrapped
  below; every button LED lit, inviting a press.
- reason (after a 差评): 请选择不满意原因, one reason (服务效率) and 按亮灯的键选此项;
  only that reason's button lit, the next reason every REASON_SPOT_MS.
- thanks: 谢谢您的评价 and the chosen label (非常满意, or the reason picked);
  only the pressed button's LED lit.
- idle: 3号窗口 and 欢迎光临 twice as large; LEDs dark.
"""

from firmware.lib.screen import Region, buffer_size, wrap
from firmware.rating_pad.app import BUTTON_SCORES, SCREEN_OPEN, SCREEN_REASON, SCREEN_THANKS, SPOT_LEDS

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

ROW = 16
ALL_ON = tuple(True for _ in BUTTON_SCORES)
ALL_OFF = tuple(False for _ in BUTTON_SCORES)


def led_states(app):
    """One bool per button, left to right (BUTTON_SCORES order): which LEDs are lit."""
    if app.screen == SCREEN_THANKS:
        return SPOT_LEDS[app.lit] if app.lit >= 0 else ALL_OFF
    if app.screen == SCREEN_REASON and app.asking_reason:
        return SPOT_LEDS[app.spot]
    if app.screen == SCREEN_OPEN and app.is_open:
        return ALL_ON
    return ALL_OFF


class RatingPadRenderer:
    def __init__(self, font, width, height, fmt):
        self.font = font
        self.width = width
        self.height = height
        self.buffer = bytearray(buffer_size(width, height, fmt))
        self.fb = framebuf.FrameBuffer(self.buffer, width, height, fmt)
        self.rows = height // ROW
        # Row slots, one Region each; a line is placed in them by _set_content.
        self.regions = [Region(0, 0, width, ROW) for _ in range(self.rows)]
        self.big = Region(0, 0, width, 2 * ROW) if self.rows >= 3 else None
        self._used = []
        self._changes = None
        self._pushed = False

    def led_states(self, app):
        return led_states(app)

    def _place(self, region, y, bitmap, now_ms):
        region.y = y
        region.set(bitmap, now_ms)
        self._used.append(region)

    def _set_content(self, app, now_ms):
        """Lay out the app's lines: the heading in the first row, the rest wrapped, centred vertically."""
        font = self.font
        lines = app.lines()
        self._used = []
        heading, rest = lines[0], [line for line in lines[1:] if line]
        if app.screen not in (SCREEN_OPEN, SCREEN_REASON, SCREEN_THANKS) and self.big is not None and len(rest) == 1 \
                and font.text_width(rest[0], 2) <= self.width:
            # Idle: the greeting twice as large under the window title.
            top = (self.height - 3 * ROW) // 2
            self._place(self.regions[0], top, font.render(heading), now_ms)
            self._place(self.big, top + ROW, font.render(rest[0], 2, 2), now_ms)
            return
        pieces = []
        for line in rest:
            pieces.extend(wrap(font, line, self.width))
        pieces = pieces[:self.rows - 1]
        count = 1 + len(pieces)
        gap = 4 if count < self.rows else 0  # a little air under the heading when there is room
        top = (self.height - count * ROW - gap) // 2
        self._place(self.regions[0], top, font.render(heading), now_ms)
        for i in range(len(pieces)):
            self._place(self.regions[i + 1], top + gap + (i + 1) * ROW, font.render(pieces[i]), now_ms)

    def invalidate(self):
        """Draw everything again at the next frame (after an overlay covered the screen)."""
        self._pushed = False

    def draw(self, app, now_ms):
        """Draw the frame for `now_ms`. Returns False (and draws nothing) when no pixel would change."""
        if app.changes != self._changes:
            self._set_content(app, now_ms)
            self._changes = app.changes  # only once laid out: a font read error leaves it to do again
            self._pushed = False
        used = self._used
        if self._pushed:
            stale = False
            for region in used:
                if region.stale(now_ms):
                    stale = True
            if not stale:
                return False
        fb = self.fb
        fb.fill(0)
        for region in used:
            region.draw(fb, now_ms)
        self._pushed = True
        return True
