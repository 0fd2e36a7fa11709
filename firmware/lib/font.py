"""16-pixel bitmap font for the panels: Unifont glyphs indexed by Unicode code point.

MicroPython has no GBK and no font engine, so every text a resident reads
(请A012号到3号窗口, 暂停服务, 谢谢您的评价) is drawn from a subset font file
made by tools/make_font.py from GNU Unifont with only the characters a
center needs. default_font.bin beside this file holds the sample center's
texts; provisioning may put a center's own file at /font.bin.

File layout (all integers little-endian):

    header   8 bytes   b"SCF1", glyph count (u16), glyph height (u8, 16), 0
    index    4 bytes   per glyph, sorted by code point: code point (u16),
                       ref (u16): bit 15 set = 16 pixels wide (else 8),
                       bits 0..14 = offset of its bitmap in 16-byte units
    bitmaps            rows top to bottom, 1 or 2 bytes a row, bit 7 on the
                       left: exactly framebuf.MONO_HLSB

Nothing of the file is held in RAM: a lookup is a binary search over the
index on flash (about 13 reads of 4 bytes for the ~7,500 glyphs of a GB2312
font, whose index alone would take 30 KB of a board's ~100 KB heap), and a
bitmap is read when a text is laid out, which happens when the text
changes, never per frame. No dict of glyphs.
"""

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

MAGIC = b"SCF1"
HEADER_SIZE = 8
ENTRY_SIZE = 4
HEIGHT = 16
WIDE_FLAG = 0x8000
REPLACEMENT = 0xFFFD  # shown for a character the font lacks
DEFAULT_FILE = "default_font.bin"
DEVICE_FILE = "/font.bin"  # a center's own font written at provisioning wins over the default

_doubled = None  # 256 x 2 bytes: each bit of a byte doubled, for 2x wide text


class FontError(ValueError):
    pass


def _double_table():
    global _doubled
    if _doubled is None:
        table = bytearray(512)
        for value in range(256):
            wide = 0
            for bit in range(8):
                if value & (1 << bit):
                    wide |= 3 << (2 * bit)
            table[2 * value] = wide >> 8
            table[2 * value + 1] = wide & 0xFF
        _doubled = table
    return _doubled


class Bitmap:
    """A laid-out text: a MONO_HLSB buffer and the FrameBuffer over it, ready to blit."""

    def __init__(self, width, height):
        self.width = width
        self.height = height
        self.row_bytes = (width + 7) // 8
        self.buf = bytearray(self.row_bytes * height)
        self.fb = framebuf.FrameBuffer(self.buf, max(width, 1), height, framebuf.MONO_HLSB)


class Font:
    def __init__(self, stream):
        """stream: an open binary file (or io.BytesIO) positioned at the start of a font file."""
        header = stream.read(HEADER_SIZE)
        if len(header) != HEADER_SIZE or header[:4] != MAGIC:
            raise FontError("not a font file (bad magic)")
        self.count = header[4] | (header[5] << 8)
        self.height = header[6]
        if self.height != HEIGHT:
            raise FontError("glyph height %d not supported" % self.height)
        self._data_start = HEADER_SIZE + self.count * ENTRY_SIZE
        self._stream = stream
        self._probe = bytearray(ENTRY_SIZE)  # one index entry, read from the file at each step of a search
        if self.count:
            self._read_entry(self.count - 1)  # a file cut short in its index is refused now, not mid-text
        self._glyph = bytearray(32)
        self._glyph_narrow = memoryview(self._glyph)[:16]
        self._glyph_wide = memoryview(self._glyph)
        self.missing = 0  # characters asked for that the font lacks (drawn as a box)
        self.last_missing = None

    # ------------------------------------------------------------ lookup

    def _read_entry(self, i):
        """Index entry i into self._probe (code point in bytes 0-1, ref in bytes 2-3)."""
        self._stream.seek(HEADER_SIZE + i * ENTRY_SIZE)
        if self._stream.readinto(self._probe) != ENTRY_SIZE:
            raise FontError("font file truncated in its index")
        return self._probe

    def _find(self, code):
        """The ref of a code point, or -1. Binary search over the sorted index, on flash."""
        low, high = 0, self.count - 1
        while low <= high:
            mid = (low + high) >> 1
            entry = self._read_entry(mid)
            cp = entry[0] | (entry[1] << 8)
            if cp == code:
                return entry[2] | (entry[3] << 8)
            if cp < code:
                low = mid + 1
            else:
                high = mid - 1
        return -1

    def has(self, char):
        return self._find(ord(char)) >= 0

    def code_points(self):
        """Every code point in the font, ascending (for tools and tests)."""
        points = []
        for i in range(self.count):
            entry = self._read_entry(i)
            points.append(entry[0] | (entry[1] << 8))
        return points

    def _ref(self, code):
        ref = self._find(code)
        if ref < 0:
            ref = self._find(REPLACEMENT)
        return ref

    def char_width(self, char):
        code = ord(char)
        if code < 0x20:
            return 0  # control characters take no room
        ref = self._ref(code)
        if ref < 0:
            return 16  # drawn as a hollow box
        return 16 if ref & WIDE_FLAG else 8

    def text_width(self, text, scale_x=1):
        width = 0
        for char in text:
            width += self.char_width(char)
        return width * scale_x

    def glyph(self, char):
        """The glyph's rows (16 or 32 bytes, MONO_HLSB) in a shared buffer, valid until the next call."""
        code = ord(char)
        ref = self._find(code)
        if ref < 0:
            self.missing += 1
            self.last_missing = code
            ref = self._find(REPLACEMENT)
        if ref < 0:
            return self._box()
        wide = ref & WIDE_FLAG
        view = self._glyph_wide if wide else self._glyph_narrow
        self._stream.seek(self._data_start + (ref & 0x7FFF) * 16)
        if self._stream.readinto(view) != len(view):
            raise FontError("font file truncated in its bitmaps")
        return view

    def _box(self):
        rows = self._glyph
        for row in range(16):
            edge = row in (1, 14)
            rows[2 * row] = 0x7F if edge else (0x40 if 1 <= row <= 14 else 0)
            rows[2 * row + 1] = 0xFE if edge else (0x02 if 1 <= row <= 14 else 0)
        return self._glyph_wide

    # ------------------------------------------------------------ layout

    def render(self, text, scale_x=1, scale_y=1):
        """Lay out one line of text as a Bitmap, scaled by 1 or 2 each way (the large ticket number).

        Allocates the bitmap: call it when the text changes, not per frame.
        """
        if scale_x not in (1, 2) or scale_y not in (1, 2):
            raise ValueError("scale must be 1 or 2")
        bitmap = Bitmap(self.text_width(text, scale_x), HEIGHT * scale_y)
        self.draw_into(bitmap, text, scale_x, scale_y)
        return bitmap

    def draw_into(self, bitmap, text, scale_x=1, scale_y=1):
        buf = bitmap.buf
        row_bytes = bitmap.row_bytes
        table = _double_table() if scale_x == 2 else None
        col = 0  # byte column: every glyph is 8 or 16 pixels wide, so glyphs start on a byte
        for char in text:
            if ord(char) < 0x20:
                continue
            rows = self.glyph(char)
            per_row = len(rows) // 16
            for y in range(16):
                for b in range(per_row):
                    value = rows[y * per_row + b]
                    for dy in range(scale_y):
                        at = (y * scale_y + dy) * row_bytes + col + b * scale_x
                        if table is None:
                            buf[at] = value
                        else:
                            buf[at] = table[2 * value]
                            buf[at + 1] = table[2 * value + 1]
            col += per_row * scale_x


def open_font(path):
    """The Font of a file (kept open: bitmaps are read from it on demand)."""
    return Font(open(path, "rb"))


def from_bytes(data):
    import io

    return Font(io.BytesIO(data))


def default_path():
    """The font beside this module (firmware/lib/default_font.bin, /lib/firmware/lib/ on a board)."""
    here = __file__.replace("\\", "/")
    folder = here.rsplit("/", 1)[0] if "/" in here else "."
    return folder + "/" + DEFAULT_FILE


def board_font_path():
    """The board font in the repository (firmware/fonts/board_font.bin: all of GB2312, tools/make_font.py --board),
    for the programs beside the boards: the fleet checks texts with it, the simulator draws with it. A board has it
    as /font.bin (DEVICE_FILE), written at provisioning."""
    return default_path().rsplit("/", 2)[0] + "/fonts/board_font.bin"


def load(paths=None):
    """The first font that opens from `paths` (default: the device's /font.bin, then the default).

    Raises FontError when none does; the caller falls back to a console panel.
    """
    if paths is None:
        paths = (DEVICE_FILE, default_path())
    problems = []
    for path in paths:
        try:
            return open_font(path)
        except OSError as exc:
            problems.append("%s: %s" % (path, exc))
        except FontError as exc:
            problems.append("%s: %s" % (path, exc))
    raise FontError("no usable font: " + "; ".join(problems))
