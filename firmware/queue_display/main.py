"""HARDWARE WIRING of the queue display (ESP32). Boot runs this as /main.py.

Loads /config.json, brings up Wi-Fi, and runs the device runtime with the
queue display app on the panel of the board named in config.json
(hardware/boards/<board>.json: a MAX7219 LED panel or an SSD1306 OLED). All
logic lives elsewhere (app.py, render.py, firmware/lib); keep this file small.

Everything but the three imports below runs inside boot()'s guard: the LED
panel's OE held off first (firmware/drivers/panel_off.py), then the
hardware watchdog (unless provisioning holds the firmware, see
firmware/lib/hold.py): a MemoryError while importing, an OSError from
wlan.active(), any crash is printed and, after RESET_PAUSE_S (time to read
it, or to press Ctrl-C for the REPL), resets the board instead of leaving
it dead at the REPL until someone cycles its power.
"""

import sys
import time

import machine

CONFIG_PATH = "/config.json"
STATE_DIR = "/state"
OTA_DIR = STATE_DIR + "/ota"  # firmware/lib/otaboot.py: a bundle on trial, the one kept, or the factory set
RESET_PAUSE_S = 10  # well inside the watchdog's 30 s, which keeps running meanwhile


def main(watchdog):
    from firmware.drivers import board, display, network_link
    from firmware.lib import boards
    from firmware.lib import config as config_file
    from firmware.lib.runtime import DeviceRuntime
    from firmware.queue_display.app import QueueDisplayApp
    from firmware.queue_display.render import QueueDisplayRenderer
    from protocol import messages

    watchdog.feed()
    cfg = config_file.load(CONFIG_PATH)
    if cfg.role != messages.ROLE_QUEUE_DISPLAY:
        print("main: config says role %s, running as queue display" % cfg.role)
    link = network_link.open_link(cfg, watchdog.feed)  # Wi-Fi or Ethernet, per config.json
    if not cfg.mac:
        cfg.mac = link.mac()
    watchdog.feed()
    app = QueueDisplayApp(cfg.window)
    try:
        _, section = boards.load_for_role(cfg.board, messages.ROLE_QUEUE_DISPLAY)
    except boards.BoardError as exc:
        print("main: %s" % exc)
        section = {}
    panel = display.open_screen(app, section, QueueDisplayRenderer)
    watchdog.feed()
    # The runtime runs the panel's frame loop (scrolling, blinking) and watches it with the other loops.
    runtime = DeviceRuntime(cfg, app, STATE_DIR, panel=panel, network=link, watchdog=watchdog,
                            reset=machine.reset)
    board.run_forever(runtime.run())


_otaboot = None  # firmware/lib/otaboot.py as imported from the factory set, before any slot's files


def enter_slot():
    """Make the application files otaboot chooses the ones imported. The slot folder, or None (factory)."""
    global _otaboot
    from firmware.lib import otaboot

    _otaboot = otaboot
    return otaboot.enter(OTA_DIR)


def crashed(exc, pause):
    """Print what happened, pause, reset. Never returns (machine.reset)."""
    try:
        sys.print_exception(exc)  # type: ignore[attr-defined]  # MicroPython
    except Exception:
        print("main: crashed:", repr(exc))
    # A bundle on trial that crashes is not kept: the next boot runs the previous files and reports this.
    if _otaboot is not None and _otaboot.note_failure(OTA_DIR, "crashed: %s: %s" % (type(exc).__name__, exc)):
        print("main: the firmware on trial crashed; the previous firmware boots next")
    print("main: resetting in %d s (Ctrl-C for the REPL)" % RESET_PAUSE_S)
    pause(RESET_PAUSE_S)
    machine.reset()


def start():
    """The hardware watchdog, first: a hang anywhere after it resets the board too. None while
    provisioning holds the firmware (firmware/lib/hold.py): then nothing starts, so the watchdog
    cannot reset the board in the middle of a copy."""
    from firmware.lib import hold

    if hold.requested():
        print("main: %s is present: the firmware is held for provisioning (no watchdog); "
              "the REPL is free" % hold.HOLD_FILE)
        return None
    from firmware.drivers.wdt import HardwareWatchdog

    return HardwareWatchdog()


def boot(pause=time.sleep):
    try:
        from firmware.drivers import panel_off

        panel_off.hold()  # the LED panel dark before anything that takes time (hardware/display.md)
        watchdog = start()
        if watchdog is None:
            return
        if enter_slot() is None:
            main(watchdog)
        else:  # a bundle installed over the air: its own wiring, with its own files
            from firmware.queue_display import main as bundled

            bundled.main(watchdog)
        raise RuntimeError("the runtime stopped")
    except KeyboardInterrupt:  # Ctrl-C on the serial console: a technician wants the REPL
        raise
    except BaseException as exc:
        crashed(exc, pause)


if __name__ == "__main__":
    boot()
