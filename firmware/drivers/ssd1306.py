"""SSD1306 128x64 monochrome OLED over I2C (the rating pad's screen; the small queue display).

The controller's memory is 8 pages of 128 column bytes, bit 0 on top:
exactly framebuf.MONO_VLSB, so a frame goes out as one I2C write after
setting the address window. The driver receives its bus (anything with
writeto(addr, buf) and, on MicroPython, writevto) so tests run it with a
fake; `from_board()` builds the real bus from a board definition.
Command values are from the SSD1306 datasheet (Solomon Systech, rev 1.1).
"""

try:
    import framebuf
except ImportError:
    from firmware.lib import framebuf_compat as framebuf

DEFAULT_ADDRESS = 0x3C
CONTROL_COMMAND = 0x80  # Co=1, D/C#=0: one command byte follows
CONTROL_DATA = 0x40  # Co=0, D/C#=1: display data follows

SET_CONTRAST = 0x81
SET_ENTIRE_ON = 0xA4
SET_NORM_INV = 0xA6
SET_DISP = 0xAE
SET_MEM_ADDR = 0x20
SET_COL_ADDR = 0x21
SET_PAGE_ADDR = 0x22
SET_DISP_START_LINE = 0x40
SET_SEG_REMAP = 0xA0
SET_MUX_RATIO = 0xA8
SET_COM_OUT_DIR = 0xC0
SET_DISP_OFFSET = 0xD3
SET_COM_PIN_CFG = 0xDA
SET_DISP_CLK_DIV = 0xD5
SET_PRECHARGE = 0xD9
SET_VCOM_DESEL = 0xDB
SET_CHARGE_PUMP = 0x8D


class SSD1306:
    buffer_format = framebuf.MONO_VLSB

    def __init__(self, i2c, width=128, height=64, address=DEFAULT_ADDRESS, external_vcc=False):
        self.i2c = i2c
        self.width = width
        self.height = height
        self.address = address
        self.external_vcc = external_vcc
        self.pages = height // 8
        self._command = bytearray(2)
        self._command[0] = CONTROL_COMMAND
        self._data_prefix = bytes((CONTROL_DATA,))
        self._parts = [self._data_prefix, None]
        self.init_display()

    def init_display(self):
        for cmd in (
            SET_DISP,  # off while configuring
            SET_MEM_ADDR, 0x00,  # horizontal addressing: one write fills the screen
            SET_DISP_START_LINE,
            SET_SEG_REMAP | 0x01,  # column 127 is SEG0: not mirrored on the usual modules
            SET_MUX_RATIO, self.height - 1,
            SET_COM_OUT_DIR | 0x08,  # scan from COM[N-1]: not upside down
            SET_DISP_OFFSET, 0x00,
            SET_COM_PIN_CFG, 0x02 if self.width > 2 * self.height else 0x12,
            SET_DISP_CLK_DIV, 0x80,
            SET_PRECHARGE, 0x22 if self.external_vcc else 0xF1,
            SET_VCOM_DESEL, 0x30,
            SET_CONTRAST, 0xFF,
            SET_ENTIRE_ON,  # show the RAM
            SET_NORM_INV,  # not inverted
            SET_CHARGE_PUMP, 0x10 if self.external_vcc else 0x14,
            SET_DISP | 0x01,  # on
        ):
            self.write_cmd(cmd)
        self.show(bytearray(self.width * self.pages))

    def write_cmd(self, cmd):
        self._command[1] = cmd
        self.i2c.writeto(self.address, self._command)

    def show(self, buffer):
        """Send a whole frame (MONO_VLSB, width x height)."""
        x0, x1 = 0, self.width - 1
        if self.width == 64:
            x0, x1 = 32, 32 + self.width - 1  # 64-wide modules sit in the middle of the 128 columns
        self.write_cmd(SET_COL_ADDR)
        self.write_cmd(x0)
        self.write_cmd(x1)
        self.write_cmd(SET_PAGE_ADDR)
        self.write_cmd(0)
        self.write_cmd(self.pages - 1)
        self._parts[1] = buffer
        try:
            self.i2c.writevto(self.address, self._parts)  # prefix + frame without copying the frame
        except AttributeError:
            self.i2c.writeto(self.address, self._data_prefix + bytes(buffer))

    def brightness(self, percent):
        """0..100: the contrast register; 0 turns the panel off (it keeps its memory)."""
        percent = max(0, min(100, int(percent)))
        if percent == 0:
            self.write_cmd(SET_DISP)
            return
        self.write_cmd(SET_CONTRAST)
        self.write_cmd(percent * 255 // 100)
        self.write_cmd(SET_DISP | 0x01)


def from_board(spec):
    """An SSD1306 from a board definition's display section (hardware I2C)."""
    from machine import I2C, Pin

    bus = spec["i2c"]
    i2c = I2C(bus.get("id", 0), scl=Pin(bus["scl"]), sda=Pin(bus["sda"]), freq=bus.get("freq", 400000))
    return SSD1306(i2c, spec.get("width", 128), spec.get("height", 64), spec.get("address", DEFAULT_ADDRESS),
                   spec.get("external_vcc", False))
