"""Simulated twins of the hardware drivers in firmware/drivers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from firmware.lib import clock
from firmware.lib import framebuf_compat as framebuf
from firmware.lib.font import Font
from firmware.lib.screen import PixelScreen, buffer_size
from firmware.queue_display.render import QueueDisplayRenderer
from firmware.rating_pad.app import BUTTON_SCORES
from firmware.rating_pad.render import RatingPadRenderer
from firmware.sim import png
from protocol import messages

HISTORY = 50
# What a simulated board reports as its free heap (CPython has no gc.mem_free): the boards' heap (ESP32-WROVER-E,
# 4 MB of PSRAM) less what the role's objects take after boot under MicroPython (firmware/README.md, make bench).
SIM_HEAP_BYTES = 4 * 1024 * 1024
SIM_HEAP_USED_BYTES = {messages.ROLE_QUEUE_DISPLAY: 25 * 1024, messages.ROLE_RATING_PAD: 37 * 1024}


def sim_free_heap(role: str) -> Callable[[], int]:
    """The free heap a simulated device of `role` puts in its heartbeats, as a board's gc.mem_free() would."""
    free = SIM_HEAP_BYTES - SIM_HEAP_USED_BYTES.get(role, 0)
    return lambda: free


class SimPanel:
    """Twin of a panel driver: records what would be shown.

    With a `screen` (a firmware.lib.screen.PixelScreen over a SimDisplay) it
    also draws the pixels as the board would, and writes them to `png_path`
    whenever the content changes, so a person can look at the panel.
    """

    def __init__(self, screen: PixelScreen | None = None, png_path: Path | None = None) -> None:
        self.lines: list[str] = []
        self.history: list[list[str]] = []  # newest last, bounded
        self.brightness = 100  # percent, as set_brightness() last set it
        self.screen = screen
        self.png_path = png_path

    def show_lines(self, lines: list[str]) -> None:
        self.lines = list(lines)
        self.history.append(self.lines)
        del self.history[:-HISTORY]
        if self.screen is not None:
            self.screen.show_lines(lines)
            if self.png_path is not None:
                write_atomically(self.png_path, self.screen.display.png())

    def set_brightness(self, level: int) -> None:
        self.brightness = level
        if self.screen is not None:
            self.screen.set_brightness(level)

    def png(self, now_ms: int | None = None) -> bytes | None:
        """The panel as a PNG, drawn for now (scrolling and blinking move on between calls)."""
        if self.screen is None:
            return None
        self.screen.frame(clock.ticks_ms() if now_ms is None else now_ms)
        return self.screen.display.png()


class SimDisplay:
    """Twin of firmware.drivers.max7219.Max7219Panel and ssd1306.SSD1306: keeps the last frame, draws PNGs.

    Both chips keep the frame they were sent and refresh it themselves, so the last frame is what the panel
    shows (tests/firmware/test_fw_panel.py checks it against the MAX7219 driver on an emulated chain).
    """

    FORMATS = {"max7219": framebuf.MONO_HLSB, "ssd1306": framebuf.MONO_VLSB}
    LOOKS = {"max7219": png.LOOK_LED, "ssd1306": png.LOOK_OLED}

    def __init__(self, kind: str, width: int, height: int) -> None:
        if kind not in self.FORMATS:
            raise ValueError(f"no simulated display of type {kind!r}")
        self.kind = kind
        self.width = width
        self.height = height
        self.buffer_format = self.FORMATS[kind]
        self.level = 100
        self.frames = 0
        self.frame = bytes(buffer_size(width, height, self.buffer_format))
        self._png: tuple[bytes, bytes] | None = None

    def show(self, buffer: bytes | bytearray) -> None:
        self.frame = bytes(buffer)
        self.frames += 1

    def brightness(self, percent: int) -> None:
        self.level = max(0, min(100, int(percent)))

    def pixels(self) -> list[list[int]]:
        return png.pixels(self.frame, self.width, self.height, self.buffer_format)

    def png(self) -> bytes:
        """The last frame as a PNG; the same frame is encoded once (the control page polls)."""
        if self._png is None or self._png[0] != self.frame:
            picture = png.panel_png(self.frame, self.width, self.height, self.buffer_format, self.LOOKS[self.kind])
            self._png = (self.frame, picture)
        return self._png[1]


class SimLeds:
    """Twin of firmware.drivers.leds.Leds: remembers which button LEDs are lit, left to right."""

    def __init__(self, count: int = len(BUTTON_SCORES)) -> None:
        self.states = [False] * count

    def show(self, states) -> None:
        self.states = [bool(states[i]) if i < len(states) else False for i in range(len(self.states))]


def sim_screen(role: str, app, section: dict, font: Font) -> tuple[PixelScreen, SimDisplay, SimLeds | None]:
    """The pixel screen of a simulated device, built from its board definition's role section."""
    spec = section["display"]
    display = SimDisplay(spec["type"], spec["width"], spec["height"])
    leds = None
    if role == messages.ROLE_RATING_PAD:
        renderer = RatingPadRenderer(font, display.width, display.height, display.buffer_format)
        if section.get("leds"):
            leds = SimLeds(len(section["leds"]))
    else:
        renderer = QueueDisplayRenderer(font, display.width, display.height, display.buffer_format)
    return PixelScreen(app, renderer, display, leds), display, leds


def write_atomically(path: Path, data: bytes) -> None:
    """Replace a file in one step, so a viewer never reads half a PNG."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


class SimButtons:
    """Twin of firmware.drivers.buttons.Buttons: press(score) is a finger on a button."""

    LABELS: tuple[tuple[int, str], ...] = tuple((score, messages.RATING_LABELS[score]) for score in BUTTON_SCORES)

    def __init__(self, on_press: Callable[[int], bool | None]) -> None:
        self.on_press = on_press

    def press(self, score: int) -> bool:
        if score not in BUTTON_SCORES:
            raise ValueError(f"no button for score {score!r}")
        return bool(self.on_press(score))


class SimWatchdog:
    """Twin of firmware.drivers.wdt.HardwareWatchdog: counts feeds instead of resetting the board."""

    def __init__(self, timeout_ms: int = 30000) -> None:
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self) -> None:
        self.feeds += 1


class SimNetwork:
    """Twin of the network-link drivers (WifiLink, EthernetLink): `up` is the cable or the access point."""

    kind = "sim"

    def __init__(self, mac: str, up: bool = True, rssi: int | None = -55) -> None:
        self.up = up
        self.reconnects = 0
        self._mac = mac
        self._rssi = rssi

    def start(self) -> bool:
        return True

    def is_up(self) -> bool:
        return self.up

    def reconnect(self) -> None:
        self.reconnects += 1

    def mac(self) -> str:
        return self._mac

    def rssi(self) -> int | None:
        return self._rssi if self.up else None
