"""Single-colour HUB12 LED panels (64x16 modules, chained): shift registers refreshed by scan rows.

A HUB12 module has no frame memory: the board shifts one scan row's bits
into the chain's 74HC595-style registers (R = data, CLK), latches them
(LAT/STB), selects the row group with A/B and enables the LEDs with OE, and
does that for each row group hundreds of times a second. With 1/4 scan
(A, B) scan row s lights pixel rows s, s+4, s+8, s+12 at once.

Byte order within a scan row follows the Freetronics DMD library for the
same P10/HUB12 modules: for each byte column left to right, the bytes of
rows s+12, s+8, s+4, s; a 0 bit lights an LED on these modules
(`data_lit` = 0 in the board definition).

The driver receives its bus and pins (anything with write(buf) and
value(v)), so tests run it with fakes. `from_board()` builds the real
ones from a board definition and is the only code here touching `machine`.
"""

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

PANEL_WIDTH = 64
PANEL_HEIGHT = 16
PWM_FREQ = 20000  # OE dimming frequency: far above what an eye or a phone camera sees


class Hub12Panel:
    buffer_format = framebuf.MONO_HLSB

    def __init__(self, spi, latch, oe, row_pins, width=2 * PANEL_WIDTH, height=PANEL_HEIGHT, scan=4,
                 data_lit=0, oe_on=1, oe_pwm=None):
        """spi: write(buf); latch, oe: pins; row_pins: (A, B[, C, D]) selecting the scan row.

        oe_pwm: optional PWM on the OE pin (duty_u16) for brightness; without it brightness is on/off.
        """
        if height % scan:
            raise ValueError("height %d is not a multiple of scan %d" % (height, scan))
        if (1 << len(row_pins)) < scan:
            raise ValueError("%d row pins cannot select %d scan rows" % (len(row_pins), scan))
        self.spi = spi
        self.latch = latch
        self.oe = oe
        self.oe_pwm = oe_pwm
        self.row_pins = row_pins
        self.width = width
        self.height = height
        self.scan = scan
        self.data_lit = data_lit
        self.oe_on = oe_on
        self.level = 100
        self.row_bytes = width // 8
        group = height // scan  # pixel rows lit by one scan row
        self._scan_bytes = self.row_bytes * group
        self._frame = bytearray(self._scan_bytes * scan)
        view = memoryview(self._frame)
        self._rows = [view[s * self._scan_bytes:(s + 1) * self._scan_bytes] for s in range(scan)]
        self._next = 0
        self.show(bytearray(self.row_bytes * height))

    def show(self, buffer):
        """Take a new frame (MONO_HLSB, width x height): reorder it into scan rows for the refresh."""
        row_bytes = self.row_bytes
        scan = self.scan
        group = self.height // scan
        frame = self._frame
        flip = 0xFF if self.data_lit == 0 else 0x00
        at = 0
        for s in range(scan):
            for col in range(row_bytes):
                k = group - 1
                while k >= 0:
                    frame[at] = buffer[(s + k * scan) * row_bytes + col] ^ flip
                    at += 1
                    k -= 1

    def scan_next(self):
        """Show the next scan row. Call it from a timer, scan x 100+ times a second; allocates nothing."""
        s = self._next
        self._oe_off()
        self.spi.write(self._rows[s])
        self.latch.value(1)
        self.latch.value(0)
        for i in range(len(self.row_pins)):
            self.row_pins[i].value((s >> i) & 1)
        self._oe_restore()
        self._next = (s + 1) % self.scan

    def _oe_off(self):
        if self.oe_pwm is not None:
            self.oe_pwm.duty_u16(0 if self.oe_on else 65535)
        else:
            self.oe.value(1 - self.oe_on)

    def _oe_restore(self):
        if self.level <= 0:
            return
        if self.oe_pwm is not None:
            duty = self.level * 65535 // 100
            self.oe_pwm.duty_u16(duty if self.oe_on else 65535 - duty)
        else:
            self.oe.value(self.oe_on)

    def brightness(self, percent):
        """0..100; 0 switches the LEDs off (the refresh keeps running)."""
        self.level = max(0, min(100, int(percent)))

    def start(self, timer, period_ms=2):
        """Refresh from a machine.Timer: one scan row every period_ms (4 rows: 125 Hz a frame at 2 ms)."""
        timer.init(period=period_ms, mode=timer.PERIODIC, callback=lambda t: self.scan_next())


def from_board(spec):
    """A Hub12Panel from a board definition's display section, refreshing from hardware timer 0."""
    from machine import PWM, SPI, Pin, Timer

    pins = spec["pins"]
    bus = spec["spi"]
    spi = SPI(bus.get("id", 2), baudrate=bus.get("baudrate", 8000000), polarity=0, phase=0,
              sck=Pin(bus["sck"]), mosi=Pin(bus["mosi"]))
    oe = Pin(pins["oe"], Pin.OUT)
    rows = [Pin(pins[name], Pin.OUT) for name in ("a", "b", "c", "d") if name in pins]
    panel = Hub12Panel(spi, Pin(pins["latch"], Pin.OUT, value=0), oe, rows,
                       width=spec["width"], height=spec["height"], scan=spec.get("scan", 4),
                       data_lit=spec.get("data_lit", 0), oe_on=spec.get("oe_on", 1),
                       oe_pwm=PWM(oe, freq=PWM_FREQ, duty_u16=0))
    panel.start(Timer(spec.get("timer", 0)))
    return panel
