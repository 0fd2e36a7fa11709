"""Hold the queue display's LED panel dark from the first instruction of main.py.

The LED chain sits behind a 74HCT245 level shifter whose OE# (active low)
comes from a GPIO with a 10 kOhm pull-up (hardware/display.md): from power-on
until this runs, the resistor keeps the shifter's outputs off, so nothing the
ESP32's floating pins do reaches the panel. hold() drives that GPIO to "off"
as main.py's first act, before the watchdog, the firmware's imports and
Wi-Fi, which can take seconds; the panel driver
(firmware/drivers/max7219.py) switches it on only once the chain is blanked
and configured.

Only `json` and `machine` (both in the port's C core) are imported, and two
small files are read: the device's config.json for its board name and that
board's definition for the OE pin. Nothing here may raise: a board without
a LED panel (a rating pad, an OLED queue display) simply has no OE pin.
"""

import json

OE_OFF = 1  # OE# of the 74HCT245 is active low: high keeps its outputs off
CONFIG_PATH = "/config.json"
DEVICE_BOARD_PATH = "/board.json"  # firmware/lib/boards.py: written at provisioning
ROLE = "queue_display"
FALLBACK_BOARD = "esp32-devkitc-max7219"  # firmware/lib/boards.DEFAULT_BOARDS[ROLE], not imported: it is big


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _boards_dir():
    # As firmware/lib/boards.boards_dir(): this file is <lib>/firmware/drivers/panel_off.py.
    parts = __file__.replace("\\", "/").split("/")
    root = "/".join(parts[:-3]) if len(parts) > 3 else "."
    return (root or "") + "/hardware/boards"


def oe_pin(config_path=CONFIG_PATH, board_paths=None):
    """The GPIO of the panel's OE in the board config.json names, or None (no LED panel, nothing readable)."""
    config = _read_json(config_path)
    name = config.get("board") if isinstance(config, dict) else None
    if not isinstance(name, str) or not name or "/" in name or ".." in name:
        name = FALLBACK_BOARD
    # A board not found is replaced by the role's default one, as main.py's boards.load_for_role does.
    for wanted in (name, FALLBACK_BOARD) if name != FALLBACK_BOARD else (name,):
        paths = board_paths
        if paths is None:
            paths = (DEVICE_BOARD_PATH, _boards_dir() + "/" + wanted + ".json")
        for path in paths:
            board = _read_json(path)
            if not isinstance(board, dict) or board.get("name") != wanted:
                continue
            try:
                pin = board["roles"][ROLE]["display"]["pins"]["oe"]
            except (KeyError, TypeError):
                return None
            return pin if isinstance(pin, int) and not isinstance(pin, bool) else None
    return None


def hold(config_path=CONFIG_PATH, board_paths=None):
    """Drive the panel's OE to off; the pin number, or None when the board has none. Never raises."""
    try:
        pin = oe_pin(config_path, board_paths)
        if pin is None:
            return None
        import machine

        # value= is set before the pin becomes an output (ports/esp32/machine_pin.c): no glitch to "on".
        machine.Pin(pin, machine.Pin.OUT, value=OE_OFF)
        return pin
    except Exception as exc:  # the pull-up still holds it off; the boot must go on
        print("panel_off: %r" % (exc,))
        return None
