"""A chain of MAX7219 chips behind the 74HCT245, as the panel driver's fakes (runs on CPython and MicroPython).

Faithful to the datasheet where the driver depends on it: 16-bit words shifted
MSB first through every chip (DIN -> DOUT), taken by all chips when LOAD (CS)
rises; at power-on every chip is in shutdown (dark) with undefined digit
registers (here: all lit, the worst case); display test lights everything;
a chip shows its digit registers only out of shutdown. The level shifter
passes nothing while its OE# is high (the pull-up's level at power-on), and
LOAD is then held high by its own pull-up, so nothing is latched.
"""


class Chip:
    def __init__(self):
        self.digits = bytearray(b"\xff" * 8)  # undefined at power-on: the worst case, every LED
        self.decode = 0
        self.intensity = 0
        self.scan_limit = 0
        self.shutdown = 0  # 0: shut down (dark), as at power-on
        self.test = 0

    def take(self, register, value):
        if 1 <= register <= 8:
            self.digits[register - 1] = value
        elif register == 0x09:
            self.decode = value
        elif register == 0x0A:
            self.intensity = value & 0x0F
        elif register == 0x0B:
            self.scan_limit = value & 0x07
        elif register == 0x0C:
            self.shutdown = value & 1
        elif register == 0x0F:
            self.test = value & 1

    def lit_rows(self):
        """The 8 row bytes this chip lights (bit 7 = its first column as wired)."""
        if self.test:
            return [0xFF] * 8
        if not self.shutdown:
            return [0] * 8
        return [self.digits[r] if r <= self.scan_limit else 0 for r in range(8)]


class Chain:
    """`chips` MAX7219s; chip 0 is the first after the ESP32 (top right, the chain runs right to left)."""

    def __init__(self, width, height, msb_left=True):
        self.width = width
        self.height = height
        self.columns = width // 8
        self.chips = [Chip() for _ in range(self.columns * (height // 8))]
        self.msb_left = msb_left
        self.shifted = bytearray()
        self.shifter_on = False  # the 74HCT245's OE# is pulled high: off
        self.load_high = True  # LOAD's pull-up
        self.latches = 0
        self.shown = []  # the picture after each latch: a list of pixel rows (lists of 0/1)
        self.spi = _Spi(self)
        self.cs = _Pin(self._cs)
        self.oe = _Pin(self._oe)

    def _oe(self, level):
        self.shifter_on = level == 0

    def _cs(self, level):
        if not self.shifter_on:
            return  # the shifter's outputs are off: LOAD stays at its pull-up, nothing latches
        rising = level == 1 and not self.load_high
        self.load_high = level == 1
        if level == 0:
            self.shifted = bytearray()
        elif rising:
            self._latch()

    def _write(self, data):
        if self.shifter_on and not self.load_high:
            self.shifted.extend(data)

    def _latch(self):
        stream = self.shifted
        count = len(self.chips)
        for k in range(count):  # chip k holds the word shifted 2k+2 bytes before the end
            end = len(stream) - 2 * k
            if end - 2 < 0:
                break
            self.chips[k].take(stream[end - 2], stream[end - 1])
        self.latches += 1
        self.shown.append(self.pixels())

    def pixels(self):
        rows = [[0] * self.width for _ in range(self.height)]
        for k in range(len(self.chips)):
            top = (k // self.columns) * 8
            left = (self.columns - 1 - k % self.columns) * 8
            lit = self.chips[k].lit_rows()
            for r in range(8):
                for c in range(8):
                    bit = 7 - c if self.msb_left else c
                    rows[top + r][left + c] = (lit[r] >> bit) & 1
        return rows


class _Spi:
    def __init__(self, chain):
        self.chain = chain

    def write(self, data):
        self.chain._write(bytes(data))


class _Pin:
    def __init__(self, on_value):
        self.on_value = on_value
        self.level = None

    def value(self, level=None):
        if level is None:
            return self.level
        self.level = level
        self.on_value(level)


def hlsb_pixels(buffer, width, height):
    """Pixel rows of a MONO_HLSB frame (1 = lit), as the chain's pixels()."""
    row_bytes = width // 8
    return [[(buffer[y * row_bytes + x // 8] >> (7 - x % 8)) & 1 for x in range(width)] for y in range(height)]
