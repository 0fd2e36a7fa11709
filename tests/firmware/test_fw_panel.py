"""The queue display's LED panel: the simulator's twin shows exactly what the MAX7219 chain would.

The board drives a chain of MAX7219 modules (firmware/drivers/max7219.py, hardware/display.md); the simulator
keeps the renderer's frame (firmware/sim/hardware.SimDisplay). Both are fed the same app states here, the
driver through the emulated chain of tests/firmware/cases/max7219_chain.py, and must show the same pixels,
which are the renderer's own: the simulator shows what it showed before the panel changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).with_name("cases")))

from max7219_chain import Chain, hlsb_pixels  # noqa: E402

from firmware.drivers.max7219 import Max7219Panel  # noqa: E402
from firmware.lib import clock, font  # noqa: E402
from firmware.lib import framebuf_compat as framebuf  # noqa: E402
from firmware.lib.screen import SCROLL_HOLD_MS, PixelScreen  # noqa: E402
from firmware.queue_display.app import QueueDisplayApp  # noqa: E402
from firmware.queue_display.render import QueueDisplayRenderer  # noqa: E402
from firmware.sim import png  # noqa: E402
from firmware.sim.hardware import SimDisplay, sim_screen  # noqa: E402
from protocol import messages  # noqa: E402

FONT = font.from_bytes((ROOT / "firmware" / "lib" / "default_font.bin").read_bytes())
SIM_BOARD = json.loads((ROOT / "hardware" / "boards" / "sim.json").read_text(encoding="utf-8"))
REAL_BOARD = json.loads((ROOT / "hardware" / "boards" / "esp32-devkitc-max7219.json").read_text(encoding="utf-8"))
STATES = [
    {"window": 3, "state": "serving", "ticket": "A012", "text": "请A012号到3号窗口", "call_seq": 7},
    {"window": 3, "state": "paused", "ticket": "", "text": "暂停服务", "call_seq": 7},
    {"window": 3, "state": "serving", "ticket": "B105", "text": "请B105号到3号窗口办理社保业务", "call_seq": 8},
]


def test_the_simulated_panel_is_the_boards_panel_led_look_same_size_same_frame_format() -> None:
    sim = SIM_BOARD["roles"][messages.ROLE_QUEUE_DISPLAY]["display"]
    real = REAL_BOARD["roles"][messages.ROLE_QUEUE_DISPLAY]["display"]
    assert (sim["type"], sim["width"], sim["height"]) == (real["type"], real["width"], real["height"]) == \
        ("max7219", 128, 16)
    display = SimDisplay(sim["type"], sim["width"], sim["height"])
    assert display.buffer_format == Max7219Panel.buffer_format == framebuf.MONO_HLSB
    assert SimDisplay.LOOKS["max7219"] == png.LOOK_LED


def test_the_simulator_and_the_chain_show_the_same_pixels_as_the_renderer_drew_them(monkeypatch) -> None:
    now = clock.ticks_ms()
    monkeypatch.setattr(clock, "ticks_ms", lambda: now)  # both screens lay out at the same moment
    section = SIM_BOARD["roles"][messages.ROLE_QUEUE_DISPLAY]
    sim_app, board_app = QueueDisplayApp(3), QueueDisplayApp(3)
    sim, sim_display, _ = sim_screen(messages.ROLE_QUEUE_DISPLAY, sim_app, section, FONT)
    chain = Chain(128, 16)
    driver = Max7219Panel(chain.spi, chain.cs, chain.oe, 128, 16)
    board = PixelScreen(board_app, QueueDisplayRenderer(FONT, 128, 16, driver.buffer_format), driver)
    compared = 0
    for state in STATES:
        for app, screen in ((sim_app, sim), (board_app, board)):
            app.on_display(state, now)
            screen.show_lines(app.lines())
        for step in range(0, SCROLL_HOLD_MS + 3000, 370):  # blinking, holding, then scrolling
            at = clock.ticks_add(now, step)
            sim.frame(at)
            board.frame(at)
            drawn = hlsb_pixels(board.renderer.buffer, 128, 16)
            assert sim_display.pixels() == drawn
            assert chain.pixels() == drawn
            assert any(any(row) for row in drawn)
            compared += 1
        now = clock.ticks_add(now, 10000)
    assert compared > 20
    # Dimmed to nothing and back, the chain keeps its frame as the simulator does.
    sim.set_brightness(0)
    board.set_brightness(0)
    assert not any(any(row) for row in chain.pixels()) and sim_display.level == 0
    board.set_brightness(80)
    assert chain.pixels() == hlsb_pixels(board.renderer.buffer, 128, 16)
