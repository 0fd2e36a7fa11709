"""The board's screen from its board definition: driver, font, renderer and PixelScreen together.

Used by both main.py files. Anything missing or broken (no display in the
board definition, an unknown type, no font file, a bus error) prints why and
falls back to the console panel: the device keeps running and reporting.
"""

from firmware.drivers import max7219, ssd1306
from firmware.drivers.panel import ConsolePanel
from firmware.lib import font
from firmware.lib.screen import PixelScreen

DRIVERS = {"max7219": max7219.from_board, "ssd1306": ssd1306.from_board}


def open_screen(app, section, renderer_class, leds=None):
    """A PixelScreen for the role section's display (or a ConsolePanel, with the reason printed)."""
    try:
        spec = section["display"]
        make = DRIVERS[spec["type"]]
        driver = make(spec)
        renderer = renderer_class(font.load(), driver.width, driver.height, driver.buffer_format)
        return PixelScreen(app, renderer, driver, leds)
    except Exception as exc:  # any failure here must leave a working device, only without pixels
        print("display: no pixel screen (%r); showing lines on the console" % (exc,))
        return ConsolePanel()
