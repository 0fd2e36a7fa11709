"""HARDWARE WIRING of the rating pad (ESP32). Boot runs this as /main.py.

Loads /config.json, brings up Wi-Fi, and runs the device runtime with the
rating pad app, its screen, its five buttons and their LEDs, all on the
pins of the board named in config.json (hardware/boards/<board>.json). All
logic lives elsewhere (app.py, render.py, firmware/lib); keep this file small.

Everything but the three imports below runs inside boot()'s guard, the
hardware watchdog first (unless provisioning holds the firmware, see
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


async def _run(runtime, pad_buttons):
    import asyncio

    asyncio.create_task(pad_buttons.run())
    await runtime.run()  # runs the screen's frame loop (scrolling, recovery) and watches it


def main(watchdog):
    from firmware.drivers import board, buttons, display, leds, network_link
    from firmware.lib import boards
    from firmware.lib import config as config_file
    from firmware.lib.runtime import DeviceRuntime, rated_store
    from firmware.rating_pad.app import RatingPadApp
    from firmware.rating_pad.render import RatingPadRenderer
    from protocol import identity, messages

    watchdog.feed()
    cfg = config_file.load(CONFIG_PATH)
    if cfg.role != messages.ROLE_RATING_PAD:
        print("main: config says role %s, running as rating pad" % cfg.role)
    link = network_link.open_link(cfg, watchdog.feed)  # Wi-Fi or Ethernet, per config.json
    if not cfg.mac:
        cfg.mac = link.mac()
    watchdog.feed()
    app = RatingPadApp(cfg.window, identity.device_id_from_mac(cfg.mac), rated=rated_store(STATE_DIR))
    try:
        _, section = boards.load_for_role(cfg.board, messages.ROLE_RATING_PAD)
    except boards.BoardError as exc:
        print("main: %s" % exc)  # no pins known: the pad reports in but cannot be pressed
        section = {}
    button_leds = leds.from_board(boards.led_pins(section), section.get("led_lit", 1))
    panel = display.open_screen(app, section, RatingPadRenderer, button_leds)
    watchdog.feed()
    runtime = DeviceRuntime(cfg, app, STATE_DIR, panel=panel, network=link, watchdog=watchdog,
                            reset=machine.reset)
    # (score, GPIO) left to right: 非常满意 满意 基本满意 不满意 非常不满意
    board.run_forever(_run(runtime, buttons.from_board(boards.button_pins(section), runtime.press)))


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
        watchdog = start()
        if watchdog is None:
            return
        if enter_slot() is None:
            main(watchdog)
        else:  # a bundle installed over the air: its own wiring, with its own files
            from firmware.rating_pad import main as bundled

            bundled.main(watchdog)
        raise RuntimeError("the runtime stopped")
    except KeyboardInterrupt:  # Ctrl-C on the serial console: a technician wants the REPL
        raise
    except BaseException as exc:
        crashed(exc, pause)


if __name__ == "__main__":
    boot()
