"""HARDWARE WIRING of the rating pad (ESP32). Boot runs this as /main.py.

Loads /config.json, brings up Wi-Fi, and runs the device runtime with the
rating pad app, its screen and its five buttons. All logic lives elsewhere
(app.py, firmware/lib); keep this file small.
"""

import asyncio

from firmware.drivers import board, wifi
from firmware.drivers import panel as panel_driver
from firmware.drivers.buttons import Buttons
from firmware.lib import config as config_file
from firmware.lib.runtime import DeviceRuntime
from firmware.rating_pad.app import RatingPadApp
from protocol import identity, messages

CONFIG_PATH = "/config.json"
STATE_DIR = "/state"
# (score, GPIO) left to right: 非常满意 满意 基本满意 不满意 非常不满意
BUTTON_PINS = ((5, 32), (4, 33), (3, 25), (2, 26), (1, 27))


async def _run(runtime, buttons):
    asyncio.create_task(buttons.run())
    await runtime.run()


def main():
    cfg = config_file.load(CONFIG_PATH)
    if cfg.role != messages.ROLE_RATING_PAD:
        print("main: config says role %s, running as rating pad" % cfg.role)
    wifi.connect(cfg.wifi_ssid, cfg.wifi_password)
    if not cfg.mac:
        cfg.mac = wifi.mac()
    app = RatingPadApp(cfg.window, identity.device_id_from_mac(cfg.mac))
    panel = panel_driver.ConsolePanel()
    runtime = DeviceRuntime(cfg, app, STATE_DIR, panel=panel, rssi=wifi.rssi)
    board.run_forever(_run(runtime, Buttons(BUTTON_PINS, runtime.press)))


if __name__ == "__main__":
    main()
