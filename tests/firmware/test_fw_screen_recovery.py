"""The screen survives an I2C error or a font read error, and the runtime's watchdog watches its frame loop.

One I2C ETIMEDOUT (a loose OLED cable) or one failed read of the font used to kill the screen task, or the
ticker that drew through it, while the board went on reporting healthy. Now the screen reports the fault,
initialises the panel again and lays its content out again every RECOVER_MS; a frame loop that dies or
hangs starves the watchdog.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from fw_helpers import CENTER, KEEPALIVE_S, DrivenClock, FeedRounds, run, until

from firmware.drivers.ssd1306 import SSD1306
from firmware.lib import clock, config, font
from firmware.lib import runtime as runtime_module
from firmware.lib.runtime import DeviceRuntime
from firmware.lib.screen import RECOVER_MS, PixelScreen
from firmware.rating_pad.app import RatingPadApp
from firmware.rating_pad.render import RatingPadRenderer
from firmware.sim.hardware import SimWatchdog
from protocol import messages

ROOT = Path(__file__).resolve().parents[2]
FONT_BYTES = (ROOT / "firmware" / "lib" / "default_font.bin").read_bytes()
START = clock.TICKS_PERIOD - 500  # the recovery deadline lies across the ticks wrap
ETIMEDOUT = 116


class I2c:
    """An I2C bus to an SSD1306 that can time out (every write raises OSError ETIMEDOUT while `down`)."""

    def __init__(self) -> None:
        self.down = False
        self.writes: list[bytes] = []

    def writeto(self, address: int, data: Any) -> None:
        if self.down:
            raise OSError(ETIMEDOUT, "ETIMEDOUT")
        self.writes.append(bytes(data))

    def writevto(self, address: int, parts: Any) -> None:
        self.writeto(address, b"".join(bytes(p) for p in parts))

    def frames(self) -> list[bytes]:
        return [w[1:] for w in self.writes if w[0] == 0x40]

    def commands(self) -> list[int]:
        return [w[1] for w in self.writes if w[0] == 0x80]


class FontFile(io.BytesIO):
    """The font file on flash; readinto fails while `failing` (a flash read error)."""

    failing = False

    def readinto(self, buffer: Any) -> int:
        if self.failing:
            raise OSError(5, "EIO")
        return super().readinto(buffer)


def pad_screen(font_file: FontFile | None = None) -> tuple[RatingPadApp, PixelScreen, I2c]:
    i2c = I2c()
    oled = SSD1306(i2c, 128, 64)
    app = RatingPadApp(3, "dev-020000000007")
    glyphs = font.Font(font_file if font_file is not None else FontFile(FONT_BYTES))
    screen = PixelScreen(app, RatingPadRenderer(glyphs, 128, 64, oled.buffer_format), oled)
    screen.show_lines(app.lines())
    return app, screen, i2c


def device_config(port: int) -> config.Config:
    return config.from_dict({"center": CENTER, "window": 3, "role": "rating_pad", "board": "test",
                             "broker": {"host": "127.0.0.1", "port": port}, "keepalive_s": KEEPALIVE_S,
                             "mac": "02:00:00:00:00:07"})


def open_request(app: RatingPadApp, now_ms: int) -> None:
    app.on_request(messages.make("rating_request", request_id="rq-1", window=3, state="open", ticket="A001",
                                 staff_no="1003", staff_name="王芳"), now_ms)


def healthy_frame(now_ms: int) -> bytes:
    """What a screen that never failed shows for the open request."""
    app, screen, i2c = pad_screen()
    open_request(app, now_ms)
    screen.show_lines(app.lines())
    screen.step(now_ms)
    return i2c.frames()[-1]


def test_an_i2c_timeout_is_reported_and_the_panel_initialised_again(monkeypatch) -> None:
    monkeypatch.setattr(clock, "ticks_ms", lambda: START)
    app, screen, i2c = pad_screen()
    i2c.down = True
    open_request(app, START)
    screen.show_lines(app.lines())  # from the runtime's ticker: must not raise into it
    assert screen.last_error is not None and "ETIMEDOUT" in screen.last_error
    screen.step(clock.ticks_add(START, 40))
    screen.step(clock.ticks_add(START, RECOVER_MS - 1))  # still down, and no try due yet
    i2c.down = False
    i2c.writes.clear()
    screen.step(clock.ticks_add(START, RECOVER_MS - 1))
    assert i2c.writes == []  # waits for the recovery time, not hammering a bus that times out
    later = clock.ticks_add(START, RECOVER_MS)
    screen.step(later)
    commands = i2c.commands()
    assert commands[0] == 0xAE and 0x8D in commands and 0xAF in commands  # the OLED set up again
    assert i2c.frames()[-1] == healthy_frame(later)
    assert screen.progress_ms == later


def test_a_failed_font_read_is_laid_out_again_once_the_font_reads(monkeypatch) -> None:
    monkeypatch.setattr(clock, "ticks_ms", lambda: START)
    font_file = FontFile(FONT_BYTES)
    app, screen, i2c = pad_screen(font_file)
    font_file.failing = True
    open_request(app, START)
    screen.show_lines(app.lines())
    assert screen.last_error is not None and "EIO" in screen.last_error
    font_file.failing = False
    later = clock.ticks_add(START, RECOVER_MS)
    screen.step(later)
    assert i2c.frames()[-1] == healthy_frame(later)  # the whole text, not what was laid out before the error


@pytest.mark.broker
def test_the_watchdog_watches_the_screens_frame_loop(center_broker, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runtime_module, "WATCHDOG_FEED_MS", 50)  # feeder rounds, in real time
    ticks = DrivenClock(monkeypatch)
    app, screen, i2c = pad_screen()
    logged: list[str] = []

    async def scenario() -> None:
        wdt = SimWatchdog()
        device = DeviceRuntime(device_config(center_broker.port), app, str(tmp_path), panel=screen, watchdog=wdt,
                               tick_ms=20, backoff_min_s=0.05, backoff_max_s=0.3, log=logged.append)
        rounds = FeedRounds(device.watchdog)
        assert "screen" in device.watchdog.monitor.deadlines_ms
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up and wdt.feeds >= 3, what="fed while running")
        i2c.down = True  # a failing panel is reported, not a reason to reset
        open_request(app, ticks.now_ms)  # something new to draw
        await until(lambda: device.last_error and "ETIMEDOUT" in device.last_error, what="the fault reported")
        died: list[int] = []

        def broken_step(now_ms: int) -> None:  # a bug outside the guarded frame: the frame loop dies
            died.append(now_ms)
            raise RuntimeError("a bug in the frame loop")

        screen.step = broken_step  # type: ignore[method-assign]
        await until(lambda: died, what="the frame loop dies")
        fed = wdt.feeds
        await until(lambda: wdt.feeds > fed, what="still fed within the deadline")
        ticks.advance(runtime_module.SCREEN_STALL_MS + 1)
        await until(lambda: any("no progress from screen" in line for line in logged), what="feeding stops")
        assert device.watchdog.starved == ["screen"]
        assert await rounds.next(3) == [False, False, False]
        await device.stop()
        await task

    run(scenario())
