"""HARDWARE WIRING of the queue display (ESP32). Boot runs this as /main.py.

Loads /config.json, brings up Wi-Fi, and runs the device runtime with the
queue display app on the panel of the board named in config.json
(hardware/boards/<board>.json: a HUB12 LED strip or an SSD1306 OLED). All
logic lives elsewhere (app.py, render.py, firmware/lib); keep this file small.
"""

import asyncio

import machine

from firmware.drivers import board, display, network_link
from firmware.drivers.wdt import HardwareWatchdog
from firmware.lib import boards
from firmware.lib import config as config_file
from firmware.lib.runtime import DeviceRuntime
from firmware.queue_display.app import QueueDisplayApp
from firmware.queue_display.render import QueueDisplayRenderer
from protocol import messages

CONFIG_PATH = "/config.json"
STATE_DIR = "/state"


async def _run(runtime, panel):
    if hasattr(panel, "run"):
        asyncio.create_task(panel.run())  # scrolling and blinking between content changes
    await runtime.run()


def main():
    cfg = config_file.load(CONFIG_PATH)
    if cfg.role != messages.ROLE_QUEUE_DISPLAY:
        print("main: config says role %s, running as queue display" % cfg.role)
    link = network_link.open_link(cfg)  # Wi-Fi or Ethernet, per config.json
    if not cfg.mac:
        cfg.mac = link.mac()
    app = QueueDisplayApp(cfg.window)
    try:
        _, section = boards.load_for_role(cfg.board, messages.ROLE_QUEUE_DISPLAY)
    except boards.BoardError as exc:
        print("main: %s" % exc)
        section = {}
    panel = display.open_screen(app, section, QueueDisplayRenderer)
    runtime = DeviceRuntime(cfg, app, STATE_DIR, panel=panel, network=link,
                            watchdog=HardwareWatchdog(), reset=machine.reset)
    board.run_forever(_run(runtime, panel))


if __name__ == "__main__":
    main()
