"""Pixel screens: text regions that centre or scroll, and the panel the runtime draws on.

Pure (no machine, no network): runs on CPython (simulator, tests) and on
boards. The runtime calls `panel.show_lines(lines)` whenever the app's
screen changes; a PixelScreen then redraws with the role's renderer and
pushes the frame to the display driver, and its `run()` task keeps
scrolling and blinking going between changes. Frames are drawn into
buffers allocated when the text changes, never in the frame loop.
"""

import asyncio

from firmware.lib import clock

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

FRAME_MS = 40  # 25 frames a second: smooth enough for a marquee, light on the bus
RECOVER_MS = 1000  # after a panel or font error, the next try (re-initialise, lay out again) waits this long
SCROLL_PX_PER_S = 25  # about 1.5 Chinese characters a second: readable for elderly residents
SCROLL_HOLD_MS = 1500  # a new text stands still this long before it starts to move
SCROLL_GAP_PX = 32  # blank between the end of a scrolling text and its next start

_inverting = None  # palette for blit(): 0 -> 1, 1 -> 0


def inverting_palette():
    global _inverting
    if _inverting is None:
        _inverting = framebuf.FrameBuffer(bytearray(1), 2, 1, framebuf.MONO_HLSB)
        _inverting.pixel(0, 0, 1)
        _inverting.pixel(1, 0, 0)
    return _inverting


def buffer_size(width, height, fmt):
    """Bytes of a mono framebuffer: columns of 8-pixel pages (MONO_VLSB) or rows of bytes."""
    if fmt == framebuf.MONO_VLSB:
        return width * ((height + 7) // 8)
    return ((width + 7) // 8) * height


def wrap(font, text, width):
    """Split text into pieces no wider than `width` pixels (Chinese breaks between any two characters)."""
    pieces = []
    start = 0
    used = 0
    for i in range(len(text)):
        w = font.char_width(text[i])
        if used + w > width and i > start:
            pieces.append(text[start:i])
            start = i
            used = 0
        used += w
    if start < len(text):
        pieces.append(text[start:])
    return pieces


class Region:
    """A rectangle of the screen showing one line of text: centred when it fits, else scrolling.

    Scrolling is a function of time only (elapsed since the text was set),
    so a frame is the same whenever it is drawn and tests need no sleeps.
    """

    def __init__(self, x, y, width, height, align_left=False):
        self.x = x
        self.y = y
        self.width = width
        self.height = height
        self.align_left = align_left
        self.inverted = False
        self.bitmap = None
        self._buf = bytearray(((width + 7) // 8) * height)
        self._fb = framebuf.FrameBuffer(self._buf, width, height, framebuf.MONO_HLSB)
        self._since = 0  # when the current scroll cycle started
        self._cycle_ms = 0
        self._px_per_s = SCROLL_PX_PER_S
        self._drawn_offset = -1
        self._drawn_invert = None

    @property
    def scrolls(self):
        return self.bitmap is not None and self.bitmap.width > self.width

    def set(self, bitmap, now_ms, inverted=False):
        """Show a font.Bitmap (or None for blank) from now on."""
        self.bitmap = bitmap
        self.inverted = inverted
        self._drawn_offset = -1
        self._since = clock.ticks_add(now_ms, SCROLL_HOLD_MS)
        if bitmap is not None:
            self._cycle_ms = (bitmap.width + SCROLL_GAP_PX) * 1000 // self._px_per_s

    def offset(self, now_ms):
        """How many pixels the text has moved left by now (0 while it fits or holds)."""
        if not self.scrolls:
            return 0
        elapsed = clock.ticks_diff(now_ms, self._since)  # type: ignore[type-var]  # ticks are plain ints
        if elapsed < -SCROLL_HOLD_MS:
            # Not drawn for more than 2**29 ms (half the ticks period): the start reads as days ahead.
            self._since = now_ms
            elapsed = 0
        if elapsed < 0:
            return 0
        while elapsed >= self._cycle_ms:  # re-base so the numbers stay small ints on a board
            self._since = clock.ticks_add(self._since, self._cycle_ms)  # type: ignore[type-var]
            elapsed -= self._cycle_ms
        return elapsed * self._px_per_s // 1000

    def stale(self, now_ms, invert=False):
        """Whether drawing now would change a pixel of what was drawn last."""
        return self.offset(now_ms) != self._drawn_offset or invert != self._drawn_invert

    def draw(self, target, now_ms, invert=False):
        """Draw into `target` (a FrameBuffer of any mono format); `invert` swaps lit and dark."""
        self._drawn_offset = self.offset(now_ms)
        self._drawn_invert = invert
        invert = invert != self.inverted
        fb = self._fb
        fb.fill(1 if invert else 0)
        bitmap = self.bitmap
        if bitmap is not None:
            y = (self.height - bitmap.height) // 2
            if bitmap.width <= self.width:
                x = 0 if self.align_left else (self.width - bitmap.width) // 2
                self._blit(bitmap, x, y, invert)
            else:
                x = -self.offset(now_ms)
                self._blit(bitmap, x, y, invert)
                self._blit(bitmap, x + bitmap.width + SCROLL_GAP_PX, y, invert)
        target.blit(fb, self.x, self.y)

    def _blit(self, bitmap, x, y, invert):
        # No transparent key: the two copies of a scrolling text never overlap, and an opaque
        # aligned copy is a plain byte copy.
        if invert:
            self._fb.blit(bitmap.fb, x, y, -1, inverting_palette())
        else:
            self._fb.blit(bitmap.fb, x, y)


class LinesLayout:
    """Any list of lines, one 16-pixel row each (joined on a one-row strip): for overlays such as
    the identify and test-pattern commands, which show text that is not the app's."""

    def __init__(self, font, width, height):
        self.font = font
        self.width = width
        self.rows = max(1, height // 16)
        top = (height - self.rows * 16) // 2
        self.regions = [Region(0, top + 16 * i, width, 16) for i in range(self.rows)]
        self._pushed = False

    def set(self, lines, now_ms):
        if self.rows == 1:
            lines = [" ".join([line for line in lines if line])]
        for i in range(self.rows):
            text = lines[i] if i < len(lines) else ""
            self.regions[i].set(self.font.render(text) if text else None, now_ms)
        self._pushed = False

    def draw(self, fb, now_ms):
        if self._pushed:
            stale = False
            for region in self.regions:
                if region.stale(now_ms):
                    stale = True
            if not stale:
                return False
        fb.fill(0)
        for region in self.regions:
            region.draw(fb, now_ms)
        self._pushed = True
        return True


class PixelScreen:
    """The `panel` a DeviceRuntime draws on, for a pixel display.

    renderer: the role's renderer (draw(app, now_ms) -> bool, invalidate(), buffer, fb, font);
    display: a driver or its simulated twin (show(buffer), brightness(percent));
    leds: optional button LEDs (show(states)) fed from renderer.led_states(app).
    Lines that are not the app's (the runtime's identify / test-pattern overlay) are drawn
    as plain rows until the app's own lines come back.

    Nothing here may stop the screen: an I2C error (ETIMEDOUT from a loose OLED cable) or a font
    read error is caught, shown in `last_error` (the runtime reports it in health), and every
    RECOVER_MS the panel is initialised again and the content laid out again until it works.
    `progress_ms` is when the frame loop last went round: the runtime's watchdog watches it, so a
    loop that died or hangs resets the board instead of leaving a frozen screen on a healthy board.
    """

    def __init__(self, app, renderer, display, leds=None, frame_ms=FRAME_MS):
        self.app = app
        self.renderer = renderer
        self.display = display
        self.leds = leds
        self.lines = []
        self.frames = 0  # frames pushed to the display
        self.level = 100  # brightness in percent
        self.overlay = False
        self._overlay_layout = None
        self._period_s = frame_ms / 1000
        self._led_changes = None
        self.progress_ms = clock.ticks_ms()
        self.faults = 0  # panel or font errors caught
        self.last_error = None
        self._retry_at = None  # while failing: the tick of the next recovery try

    def show_lines(self, lines):
        """Called by the runtime when what it shows changed: redraw now. Never raises."""
        self.lines = list(lines)
        now_ms = clock.ticks_ms()
        overlay = self.lines != self.app.lines()
        if not overlay and self.overlay:
            self.renderer.invalidate()
        self.overlay = overlay
        if self._retry_at is not None:
            return  # failing: the frame loop lays it all out again when it recovers
        try:
            if overlay:
                self._set_overlay(now_ms)
            self.frame(now_ms)
        except Exception as exc:
            self._fault(exc, now_ms)

    def _set_overlay(self, now_ms):
        if self._overlay_layout is None:
            r = self.renderer
            self._overlay_layout = LinesLayout(r.font, r.width, r.height)
        self._overlay_layout.set(self.lines, now_ms)

    def frame(self, now_ms):
        """Draw one frame; push it only if a pixel may have changed. Returns True if pushed."""
        if self.leds is not None and self.app.changes != self._led_changes:
            self._led_changes = self.app.changes
            self.leds.show(self.renderer.led_states(self.app))
        overlay = self._overlay_layout
        if self.overlay and overlay is not None:
            drawn = overlay.draw(self.renderer.fb, now_ms)
        else:
            drawn = self.renderer.draw(self.app, now_ms)
        if not drawn:
            return False
        self.display.show(self.renderer.buffer)
        self.frames += 1
        return True

    def set_brightness(self, level):
        """0..100 (the runtime's brightness command and configuration)."""
        self.level = level
        self.display.brightness(level)

    def step(self, now_ms):
        """One round of the frame loop: a frame, or while failing a recovery try when one is due."""
        self.progress_ms = now_ms
        try:
            if self._retry_at is None:
                self.frame(now_ms)
            elif clock.ticks_diff(now_ms, self._retry_at) >= 0:  # type: ignore[type-var]  # plain ints
                self._recover(now_ms)
        except Exception as exc:
            self._fault(exc, now_ms)

    def _fault(self, exc, now_ms):
        self.faults += 1
        self.last_error = "screen: %s: %s" % (type(exc).__name__, exc)
        if self._retry_at is None:
            print(self.last_error)
        self._retry_at = clock.ticks_add(now_ms, RECOVER_MS)

    def _recover(self, now_ms):
        """Initialise the panel again (an OLED that lost its setup) and lay the content out again."""
        init = getattr(self.display, "init_display", None)
        if init is not None:
            init()
        self.renderer.invalidate()
        self._led_changes = None
        if self.overlay:
            self._set_overlay(now_ms)
        self.frame(now_ms)
        self._retry_at = None
        print("screen: recovered")

    async def run(self):
        """Keep scrolling and blinking going; the runtime's show_lines covers content changes."""
        while True:
            self.step(clock.ticks_ms())
            await asyncio.sleep(self._period_s)
