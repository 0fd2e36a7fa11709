"""LED dot-matrix panels of MAX7219 modules: each 8x8 has its own controller, frame memory and refresh.

Why this panel (hardware/display.md): a MAX7219 keeps its 8x8 pixels in its
own registers and multiplexes them itself (500 Hz or more, from its own
oscillator), so the picture does not depend on the ESP32's timing at all. A
garbage collection, a flash erase or a blocking DNS lookup only delays the
next *change* of the picture; the panel never freezes on one lit row as the
HUB12 modules refreshed from a Python timer did.

The modules form one serial chain (DIN -> DOUT): 16 bits per chip (register,
value), shifted while CS (LOAD) is low, taken by every chip at once when CS
rises. The chain is wired so (hardware/display.md): the first chip after the
ESP32 is the top row's rightmost 8x8, the chain runs right to left along the
top row, then on from the next row's rightmost. Within an 8x8, digit
register r+1 holds pixel row r and the byte's top bit is the leftmost
column (`msb_left`; false mirrors each 8x8 for modules wired the other way).

Every frame also rewrites the chips' control registers (decode, scan limit,
intensity, test, shutdown): a chip that a glitch on the long chain reset or
put into test mode is put right by the next frame instead of staying wrong.

The driver receives its bus and pins (write(buf), value(v)), so tests run it
on fakes; `from_board()` is the only code here touching `machine`.
"""

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

from firmware.drivers.panel_off import OE_OFF

# Registers (MAX7219 datasheet, Table 2).
REG_DIGIT0 = 0x01  # digits 0..7 are 0x01..0x08
REG_DECODE_MODE = 0x09
REG_INTENSITY = 0x0A
REG_SCAN_LIMIT = 0x0B
REG_SHUTDOWN = 0x0C
REG_DISPLAY_TEST = 0x0F

MODULE = 8  # pixels a side of one chip's matrix
DIGITS = 8
SCAN_ALL_DIGITS = 7  # scan limit 7: all 8 digits, the slowest scan (500 Hz or more): never fewer, they'd brighten
MAX_INTENSITY = 15
MAX_BAUDRATE = 10000000  # the MAX7219's 10 MHz serial clock


def frame_bits(chips):
    """Bits shifted for one frame: 4 control registers and 8 digits (to every chip) and the shutdown word."""
    return (4 + DIGITS + 1) * chips * 16


def reverse_bits(byte):
    out = 0
    for _ in range(8):
        out = (out << 1) | (byte & 1)
        byte >>= 1
    return out


class Max7219Panel:
    buffer_format = framebuf.MONO_HLSB  # as the renderers draw it: rows of bytes, top bit leftmost, 1 = lit

    def __init__(self, spi, cs, oe, width, height, msb_left=True):
        """spi: write(buf); cs: the chain's LOAD pin; oe: the level shifter's OE# (None: not wired)."""
        if width % MODULE or height % MODULE or width <= 0 or height <= 0:
            raise ValueError("a MAX7219 panel is made of 8x8 modules: %dx%d is not" % (width, height))
        self.spi = spi
        self.cs = cs
        self.oe = oe
        self.width = width
        self.height = height
        self.msb_left = msb_left
        self.level = 100
        self.row_bytes = width // 8
        self.columns = width // MODULE
        self.chips = self.columns * (height // MODULE)
        self._words = bytearray(2 * self.chips)  # one register word per chip, farthest chip first
        self._mirror = bytes([reverse_bits(b) for b in range(256)]) if not msb_left else None
        # The order matters: CS idles high before the shifter passes anything on (a rising CS latches),
        # the chain is blanked and configured, and only then lit (hardware/display.md, "Boot").
        cs.value(1)
        if oe is not None:
            oe.value(1 - OE_OFF)
        self._control(REG_SHUTDOWN, 0)
        self._configure()
        self.show(bytearray(self.row_bytes * height))

    def _send(self):
        self.cs.value(0)
        self.spi.write(self._words)
        self.cs.value(1)

    def _control(self, register, value):
        words = self._words
        for i in range(0, len(words), 2):
            words[i] = register
            words[i + 1] = value
        self._send()

    def _configure(self):
        self._control(REG_DISPLAY_TEST, 0)
        self._control(REG_DECODE_MODE, 0)
        self._control(REG_SCAN_LIMIT, SCAN_ALL_DIGITS)
        self._control(REG_INTENSITY, self.level * MAX_INTENSITY // 100)

    def show(self, buffer):
        """Write a frame (MONO_HLSB, width x height) into the chips' registers; allocates nothing."""
        self._configure()
        words = self._words
        chips = self.chips
        columns = self.columns
        row_bytes = self.row_bytes
        mirror = self._mirror
        for digit in range(DIGITS):
            at = 0
            for chip in range(chips - 1, -1, -1):  # the first word shifted ends up in the farthest chip
                top = (chip // columns) * MODULE
                column = columns - 1 - chip % columns
                byte = buffer[(top + digit) * row_bytes + column]
                words[at] = REG_DIGIT0 + digit
                words[at + 1] = byte if mirror is None else mirror[byte]
                at += 2
            self._send()
        self._control(REG_SHUTDOWN, 1 if self.level > 0 else 0)

    def brightness(self, percent):
        """0..100 in the chips' 16 steps; 0 shuts the chips down (dark, frame kept)."""
        self.level = max(0, min(100, int(percent)))
        self._control(REG_INTENSITY, self.level * MAX_INTENSITY // 100)
        self._control(REG_SHUTDOWN, 1 if self.level > 0 else 0)


def from_board(spec):
    """A Max7219Panel from a board definition's display section (checked by firmware/lib/boards.py)."""
    from machine import SPI, Pin

    pins = spec["pins"]
    bus = spec["spi"]
    # OE first, and still off: main.py's panel_off.hold() did so already, this keeps it so on any path.
    oe = Pin(pins["oe"], Pin.OUT, value=OE_OFF)
    cs = Pin(pins["cs"], Pin.OUT, value=1)
    spi = SPI(bus.get("id", 2), baudrate=bus.get("baudrate", 1000000), polarity=0, phase=0,
              sck=Pin(bus["sck"]), mosi=Pin(bus["mosi"]))
    return Max7219Panel(spi, cs, oe, spec["width"], spec["height"], msb_left=spec.get("msb_left", True))
