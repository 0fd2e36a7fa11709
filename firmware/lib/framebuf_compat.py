"""A pure-Python stand-in for MicroPython's `framebuf`, for CPython (simulator, tests, bench).

Use it through feature detection, never a platform check:

    try:
        import framebuf
    except ImportError:
        from firmware.lib import framebuf_compat as framebuf

Only the monochrome formats the panels use are implemented, with the same
byte layout as MicroPython's C module so a buffer drawn here is the buffer a
board would send to its panel:

- MONO_VLSB: a byte is 8 pixels of one column, bit 0 on top; rows of bytes
  ("pages") of `stride` bytes (SSD1306).
- MONO_HLSB: a byte is 8 pixels of one row, bit 7 on the left (LED panels,
  Unifont glyphs).
- MONO_HMSB: as MONO_HLSB with bit 0 on the left.

Methods: fill, pixel, hline, vline, line, rect, fill_rect, blit, scroll.
`text` (the 8x8 built-in font) is left out on purpose: every text on our
panels comes from firmware.lib.font. The same clipping rules as the C code
apply: drawing outside the buffer is silently ignored.
"""

MONO_VLSB = 0
MONO_HLSB = 3
MONO_HMSB = 4
MVLSB = MONO_VLSB  # the old alias MicroPython still has


class FrameBuffer:
    def __init__(self, buffer, width, height, format, stride=None):
        if format not in (MONO_VLSB, MONO_HLSB, MONO_HMSB):
            raise ValueError("framebuf_compat: only MONO_VLSB, MONO_HLSB and MONO_HMSB are implemented")
        if width < 1 or height < 1:
            raise ValueError("invalid size")
        self.buffer = buffer
        self.width = width
        self.height = height
        self.format = format
        self.stride = width if stride is None else stride
        if format == MONO_VLSB:
            needed = ((height + 7) // 8) * self.stride
        else:
            self.stride = (self.stride + 7) & ~7
            needed = (self.stride // 8) * height
        if len(buffer) < needed:
            raise ValueError("buffer too small")

    # ------------------------------------------------------------ pixel level

    def _get(self, x, y):
        if self.format == MONO_VLSB:
            return (self.buffer[(y >> 3) * self.stride + x] >> (y & 7)) & 1
        index = (y * self.stride + x) >> 3
        if self.format == MONO_HLSB:
            return (self.buffer[index] >> (7 - (x & 7))) & 1
        return (self.buffer[index] >> (x & 7)) & 1

    def _set(self, x, y, c):
        if self.format == MONO_VLSB:
            index = (y >> 3) * self.stride + x
            mask = 1 << (y & 7)
        else:
            index = (y * self.stride + x) >> 3
            mask = 1 << (7 - (x & 7)) if self.format == MONO_HLSB else 1 << (x & 7)
        if c & 1:
            self.buffer[index] |= mask
        else:
            self.buffer[index] &= ~mask & 0xFF

    def pixel(self, x, y, c=None):
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        if c is None:
            return self._get(x, y)
        self._set(x, y, c)
        return None

    # ------------------------------------------------------------ shapes

    def fill(self, c):
        value = 0xFF if c & 1 else 0x00
        buf = self.buffer
        for i in range(len(buf)):
            buf[i] = value

    def fill_rect(self, x, y, w, h, c):
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, self.width), min(y + h, self.height)
        if x0 >= x1 or y0 >= y1:
            return
        if self.format == MONO_HLSB:
            self._fill_rect_hlsb(x0, y0, x1, y1, c)
            return
        for yy in range(y0, y1):
            for xx in range(x0, x1):
                self._set(xx, yy, c)

    def _fill_rect_hlsb(self, x0, y0, x1, y1, c):
        # Whole bytes in the middle of each row, single pixels at the ragged ends: the sim fills
        # and clears 128-pixel rows many times per frame.
        value = 0xFF if c & 1 else 0x00
        row_bytes = self.stride >> 3
        first_full = (x0 + 7) >> 3
        last_full = x1 >> 3
        buf = self.buffer
        for yy in range(y0, y1):
            if first_full < last_full:
                base = yy * row_bytes
                for i in range(base + first_full, base + last_full):
                    buf[i] = value
                for xx in range(x0, first_full << 3):
                    self._set(xx, yy, c)
                for xx in range(last_full << 3, x1):
                    self._set(xx, yy, c)
            else:
                for xx in range(x0, x1):
                    self._set(xx, yy, c)

    def hline(self, x, y, w, c):
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x, y, h, c):
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x, y, w, h, c, f=False):
        if f:
            self.fill_rect(x, y, w, h, c)
            return
        self.fill_rect(x, y, w, 1, c)
        self.fill_rect(x, y + h - 1, w, 1, c)
        self.fill_rect(x, y, 1, h, c)
        self.fill_rect(x + w - 1, y, 1, h, c)

    def line(self, x1, y1, x2, y2, c):
        # Bresenham, as the C module.
        dx, dy = abs(x2 - x1), -abs(y2 - y1)
        sx = 1 if x1 < x2 else -1
        sy = 1 if y1 < y2 else -1
        err = dx + dy
        while True:
            self.pixel(x1, y1, c)
            if x1 == x2 and y1 == y2:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x1 += sx
            if e2 <= dx:
                err += dx
                y1 += sy

    # ------------------------------------------------------------ copying

    def blit(self, fbuf, x, y, key=-1, palette=None):
        """Copy fbuf's pixels to (x, y); pixels equal to `key` are skipped (transparent)."""
        if isinstance(fbuf, tuple):  # (buffer, width, height, format[, stride]) as MicroPython accepts
            fbuf = FrameBuffer(*fbuf)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + fbuf.width, self.width), min(y + fbuf.height, self.height)
        if x0 >= x1 or y0 >= y1:
            return
        if (palette is None and key == -1 and fbuf.format == MONO_HLSB and self.format == MONO_HLSB
                and x0 == x and x1 == x + fbuf.width and not (x & 7) and not (fbuf.width & 7)):
            self._blit_hlsb_bytes(fbuf, x, y0, y1, y)
            return
        get = fbuf._get
        put = self._set
        for yy in range(y0, y1):
            sy = yy - y
            for xx in range(x0, x1):
                c = get(xx - x, sy)
                if palette is not None:
                    c = palette.pixel(c, 0)
                if c != key:
                    put(xx, yy, c)

    def _blit_hlsb_bytes(self, src, x, y0, y1, y):
        # Byte-aligned copy between MONO_HLSB buffers: whole rows of bytes, no pixel loop.
        count = src.width >> 3
        src_row = src.stride >> 3
        dst_row = self.stride >> 3
        dst_buf = self.buffer
        src_buf = src.buffer
        for yy in range(y0, y1):
            s = (yy - y) * src_row
            d = yy * dst_row + (x >> 3)
            dst_buf[d:d + count] = src_buf[s:s + count]

    def scroll(self, xstep, ystep):
        """Shift the content by (xstep, ystep); uncovered pixels keep their old values, as in C."""
        if abs(xstep) >= self.width or abs(ystep) >= self.height:
            return
        if xstep < 0:
            sx, xend, dx = 0, self.width + xstep, 1
        else:
            sx, xend, dx = self.width - 1, xstep - 1, -1
        if ystep < 0:
            y, yend, dy = 0, self.height + ystep, 1
        else:
            y, yend, dy = self.height - 1, ystep - 1, -1
        while y != yend:
            x = sx
            while x != xend:
                self._set(x, y, self._get(x - xstep, y - ystep))
                x += dx
            y += dy
