"""HARDWARE WIRING of the queue display (ESP32). Boot runs this as /main.py.

Loads /config.json, brings up Wi-Fi, and runs the device runtime with the
queue display app on the real panel. All logic lives elsewhere (app.py,
firmware/lib); keep this file small.
"""

from firmware.drivers import board, wifi
from firmware.drivers import panel as panel_driver
from firmware.lib import config as config_file
from firmware.lib.runtime import DeviceRuntime
from firmware.queue_display.app import QueueDisplayApp
from protocol import messages

CONFIG_PATH = "/config.json"
STATE_DIR = "/state"


def main():
    cfg = config_file.load(CONFIG_PATH)
    if cfg.role != messages.ROLE_QUEUE_DISPLAY:
        print("main: config says role %s, running as queue display" % cfg.role)
    wifi.connect(cfg.wifi_ssid, cfg.wifi_password)
    if not cfg.mac:
        cfg.mac = wifi.mac()
    panel = panel_driver.ConsolePanel()
    runtime = DeviceRuntime(cfg, QueueDisplayApp(cfg.window), STATE_DIR, panel=panel, rssi=wifi.rssi)
    board.run_forever(runtime.run())


if __name__ == "__main__":
    main()
