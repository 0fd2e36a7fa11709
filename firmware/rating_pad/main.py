"""HARDWARE WIRING of the rating pad (ESP32). Boot runs this as /main.py.

Loads /config.json, brings up Wi-Fi, and runs the device runtime with the
rating pad app, its screen, its five buttons and their LEDs, all on the
pins of the board named in config.json (hardware/boards/<board>.json). All
logic lives elsewhere (app.py, render.py, firmware/lib); keep this file small.
"""

import asyncio

import machine

from firmware.drivers import board, buttons, display, leds, network_link
from firmware.drivers.wdt import HardwareWatchdog
from firmware.lib import boards
from firmware.lib import config as config_file
from firmware.lib.runtime import DeviceRuntime, rated_store
from firmware.rating_pad.app import RatingPadApp
from firmware.rating_pad.render import RatingPadRenderer
from protocol import identity, messages

CONFIG_PATH = "/config.json"
STATE_DIR = "/state"


async def _run(runtime, buttons, panel):
    asyncio.create_task(buttons.run())
    if hasattr(panel, "run"):
        asyncio.create_task(panel.run())
    await runtime.run()


def main():
    cfg = config_file.load(CONFIG_PATH)
    if cfg.role != messages.ROLE_RATING_PAD:
        print("main: config says role %s, running as rating pad" % cfg.role)
    link = network_link.open_link(cfg)  # Wi-Fi or Ethernet, per config.json
    if not cfg.mac:
        cfg.mac = link.mac()
    app = RatingPadApp(cfg.window, identity.device_id_from_mac(cfg.mac), rated=rated_store(STATE_DIR))
    try:
        _, section = boards.load_for_role(cfg.board, messages.ROLE_RATING_PAD)
    except boards.BoardError as exc:
        print("main: %s" % exc)  # no pins known: the pad reports in but cannot be pressed
        section = {}
    button_leds = leds.from_board(boards.led_pins(section), section.get("led_lit", 1))
    panel = display.open_screen(app, section, RatingPadRenderer, button_leds)
    runtime = DeviceRuntime(cfg, app, STATE_DIR, panel=panel, network=link, watchdog=HardwareWatchdog(),
                            reset=machine.reset)
    # (score, GPIO) left to right: 非常满意 满意 基本满意 不满意 非常不满意
    board.run_forever(_run(runtime, buttons.from_board(boards.button_pins(section), runtime.press), panel))


if __name__ == "__main__":
    main()
