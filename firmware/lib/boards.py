"""Board definitions: which display, buses, buttons and LEDs a board has, from hardware/boards/<name>.json.

main.py reads the board named in config.json and builds its drivers from
it; provisioning reads the same files. Pure (json only), on both runtimes.

Where a definition is looked for, first found wins:
  /board.json                          written at provisioning
  (a file is used only when its "name" is the name asked for)
  <lib>/hardware/boards/<name>.json    beside the firmware package: /lib/hardware/boards on a
                                       board, hardware/boards in the repository

Every problem of a definition is reported at once with its path
(`roles.rating_pad.buttons[2].gpio: ...`), as ESPHome does.
"""

import json

DEVICE_FILE = "/board.json"
DISPLAY_TYPES = ("hub12", "ssd1306")
SCORES = (5, 4, 3, 2, 1)  # buttons and LEDs left to right, as firmware.rating_pad.app.BUTTON_SCORES
# The board each role runs on when config.json names none that can be found.
DEFAULT_BOARDS = {"queue_display": "esp32-devkitc-hub12", "rating_pad": "esp32-devkitc-ssd1306"}
MAX_GPIO = 48  # ESP32-S3 has GPIO 0..48; the ESP32 0..39


class BoardError(ValueError):
    pass


def _is_int(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_gpio(problems, path, value):
    if not _is_int(value, 0, MAX_GPIO):
        problems.append("%s: must be a GPIO number 0..%d, got %r" % (path, MAX_GPIO, value))


def _check_display(problems, path, display):
    if not isinstance(display, dict):
        problems.append("%s: must be an object" % path)
        return
    kind = display.get("type")
    if kind not in DISPLAY_TYPES:
        problems.append("%s.type: must be one of %s, got %r" % (path, ", ".join(DISPLAY_TYPES), kind))
    for key in ("width", "height"):
        if not _is_int(display.get(key), 8, 1024):
            problems.append("%s.%s: must be an integer 8..1024, got %r" % (path, key, display.get(key)))
    for bus_name, pins in (("spi", ("sck", "mosi")), ("i2c", ("scl", "sda"))):
        bus = display.get(bus_name)
        if bus is None:
            continue
        if not isinstance(bus, dict):
            problems.append("%s.%s: must be an object" % (path, bus_name))
            continue
        for pin in pins:
            _check_gpio(problems, "%s.%s.%s" % (path, bus_name, pin), bus.get(pin))
    display_pins = display.get("pins")
    if display_pins is not None:
        if not isinstance(display_pins, dict):
            problems.append("%s.pins: must be an object" % path)
        else:
            for name in sorted(display_pins):
                _check_gpio(problems, "%s.pins.%s" % (path, name), display_pins[name])
    if kind == "hub12" and isinstance(display.get("height"), int):
        scan = display.get("scan", 4)
        if not _is_int(scan, 1, 32) or display["height"] % scan:
            problems.append("%s.scan: must divide the height, got %r" % (path, scan))


def _check_scored(problems, path, items):
    if not isinstance(items, list):
        problems.append("%s: must be a list" % path)
        return
    seen = []
    for i in range(len(items)):
        item = items[i]
        where = "%s[%d]" % (path, i)
        if not isinstance(item, dict):
            problems.append("%s: must be an object" % where)
            continue
        score = item.get("score")
        if score not in SCORES:
            problems.append("%s.score: must be 1..5, got %r" % (where, score))
        elif score in seen:
            problems.append("%s.score: %d appears twice" % (where, score))
        else:
            seen.append(score)
        _check_gpio(problems, where + ".gpio", item.get("gpio"))


def validate(board):
    """Every problem of a board definition as 'path: message' lines; [] when it is usable."""
    problems = []
    if not isinstance(board, dict):
        return ["board definition must be a JSON object"]
    if not isinstance(board.get("name"), str) or not board.get("name"):
        problems.append("name: must be a non-empty string")
    roles = board.get("roles")
    if not isinstance(roles, dict) or not roles:
        problems.append("roles: must be an object with at least one role")
        return problems
    for role in sorted(roles):
        section = roles[role]
        path = "roles." + role
        if not isinstance(section, dict):
            problems.append("%s: must be an object" % path)
            continue
        if "display" in section:
            _check_display(problems, path + ".display", section["display"])
        for key in ("buttons", "leds"):
            if key in section:
                _check_scored(problems, path + "." + key, section[key])
        if role == "rating_pad" and len(section.get("buttons") or []) != len(SCORES):
            problems.append("%s.buttons: a rating pad needs exactly %d buttons" % (path, len(SCORES)))
        _check_reserved(problems, path, section, board.get("reserved_gpios") or [])
    return problems


def role_gpios(section):
    """[(where, gpio), ...] of every pin a role section uses."""
    used = []
    display = section.get("display")
    if isinstance(display, dict):
        for bus_name in ("spi", "i2c"):
            bus = display.get(bus_name)
            if isinstance(bus, dict):
                for key in ("sck", "mosi", "scl", "sda"):
                    if key in bus:
                        used.append(("display.%s.%s" % (bus_name, key), bus[key]))
        pins = display.get("pins")
        if isinstance(pins, dict):
            for name in sorted(pins):
                used.append(("display.pins." + name, pins[name]))
    for key in ("buttons", "leds"):
        items = section.get(key)
        if isinstance(items, list):
            for i in range(len(items)):
                if isinstance(items[i], dict) and "gpio" in items[i]:
                    used.append(("%s[%d].gpio" % (key, i), items[i]["gpio"]))
    return used


def _check_reserved(problems, path, section, reserved):
    # Flash (GPIO6-11) and PSRAM (GPIO16/17 on WROVER modules) pins: wiring anything there hangs the board.
    seen = {}  # type: dict
    for where, gpio in role_gpios(section):
        if gpio in reserved:
            problems.append("%s.%s: GPIO%s is reserved on this board" % (path, where, gpio))
        if gpio in seen:
            problems.append("%s.%s: GPIO%s is already used by %s" % (path, where, gpio, seen[gpio]))
        else:
            seen[gpio] = where


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise BoardError("board name must be a non-empty string")
    for char in name:
        if not (char.isalpha() or char.isdigit() or char in "-_."):
            raise BoardError("board name %r may hold only letters, digits, '-', '_' and '.'" % name)
    if ".." in name:
        raise BoardError("board name %r may not contain '..'" % name)


def boards_dir():
    """hardware/boards beside the firmware package (this file is <lib>/firmware/lib/boards.py)."""
    here = __file__.replace("\\", "/")
    parts = here.split("/")
    root = "/".join(parts[:-3]) if len(parts) > 3 else "."
    return (root or "") + "/hardware/boards"


def _read(path):
    with open(path) as handle:
        return json.load(handle)


def load(name, paths=None):
    """The validated definition of board `name`. Raises BoardError with every problem found."""
    _check_name(name)
    if paths is None:
        paths = (DEVICE_FILE, boards_dir() + "/" + name + ".json")
    tried = []
    for path in paths:
        try:
            board = _read(path)
        except OSError:
            tried.append(path)
            continue
        except ValueError as exc:
            raise BoardError("%s: not valid JSON (%s)" % (path, exc))
        if not isinstance(board, dict) or board.get("name") != name:
            tried.append(path + " (another board)")  # /board.json of a board provisioned otherwise
            continue
        problems = validate(board)
        if problems:
            raise BoardError("%s: %s" % (path, "; ".join(problems)))
        return board
    raise BoardError("board %r not found (tried %s)" % (name, ", ".join(tried)))


def role_section(board, role):
    """The part of a board definition for one role (display, buttons, LEDs)."""
    section = board["roles"].get(role)
    if section is None:
        roles = ", ".join(sorted(board["roles"]))
        raise BoardError("board %s has no %s (it has: %s)" % (board.get("name"), role, roles))
    return section


def load_for_role(name, role, paths=None, log=print):
    """(board name used, role section): the named board, else the role's default board, with a log line."""
    try:
        return name, role_section(load(name, paths), role)
    except BoardError as exc:
        fallback = DEFAULT_BOARDS.get(role)
        if fallback is None or fallback == name:
            raise
        if log is not None:
            log("boards: %s; using %s" % (exc, fallback))
        return fallback, role_section(load(fallback), role)


def _by_score(items):
    """[(score, gpio), ...] left to right (5 非常满意 .. 1 非常不满意)."""
    ordered = []
    for score in SCORES:
        for item in items:
            if item.get("score") == score:
                ordered.append((score, item["gpio"]))
    return ordered


def button_pins(section):
    """((score, gpio), ...) left to right, as firmware.drivers.buttons.Buttons takes them."""
    return tuple(_by_score(section.get("buttons") or []))


def led_pins(section):
    """GPIO numbers of the button LEDs, left to right (5 非常满意 .. 1 非常不满意)."""
    return [gpio for _, gpio in _by_score(section.get("leds") or [])]
