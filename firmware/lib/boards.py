"""Board definitions: which display, buses, buttons and LEDs a board has, from hardware/boards/<name>.json.

main.py reads the board named in config.json and builds its drivers from
it; provisioning reads the same files. Pure (json only), on both runtimes.

Where a definition is looked for, first found wins:
  /board.json                          written at provisioning
  (a file is used only when its "name" is the name asked for)
  <lib>/hardware/boards/<name>.json    beside the firmware package: /lib/hardware/boards on a
                                       board, hardware/boards in the repository

Every problem of a definition is reported at once with its path
(`roles.rating_pad.buttons[2].gpio: ...`), as ESPHome does. A pin is checked
against the chip (`"chip"`, "esp32" when absent): it must exist, an output
(display bus and pins, LEDs, the Ethernet PHY's management pins) may not sit
on an input-only pin, and no pin may be the module's (flash, PSRAM) or the
Ethernet port's. `warnings()` lists what is allowed but needs care on the
hardware side (strapping pins, inputs without an internal pull-up).
"""

import json

DEVICE_FILE = "/board.json"
DISPLAY_TYPES = ("max7219", "ssd1306")  # both keep their frame and refresh it themselves (hardware/display.md)
# HUB12 modules have no frame memory: the ESP32 would refresh them from Python, and every pause of the interpreter
# (garbage collection, flash erase, a blocking DNS lookup) would freeze one row group lit at 4x brightness.
REFUSED_DISPLAY_TYPES = {
    "hub12": "HUB12 modules keep no frame: the ESP32 would have to refresh them from Python, and every pause of "
             "the interpreter (garbage collection, flash write, DNS lookup) freezes one row group lit at 4x or "
             "makes it flicker; use max7219 modules, which refresh themselves (hardware/display.md)",
}
MAX7219_MAX_BAUDRATE = 10000000  # the MAX7219's serial clock limit (datasheet)
# A frame must reach the chain in half the screen's frame period (firmware/lib/screen.py FRAME_MS = 40), or a
# scrolling text tears and the frame loop falls behind.
MAX7219_MAX_FRAME_MS = 20
MAX7219_FRAME_WORDS = 13  # 4 control registers, 8 digits, shutdown: words per chip and frame (drivers/max7219.py)
SCORES = (5, 4, 3, 2, 1)  # buttons and LEDs left to right, as firmware.rating_pad.app.BUTTON_SCORES
# The board each role runs on when config.json names none that can be found.
DEFAULT_BOARDS = {"queue_display": "esp32-devkitc-max7219", "rating_pad": "esp32-devkitc-ssd1306"}

# What the ESP32 (ESP32-D0WD-V3 in the WROVER-E module) has: GPIO20, 24 and 28-31 do not exist, 34-39 are
# inputs without pull-ups, and the strapping pins are read at reset (ESP32 datasheet, "Strapping Pins").
ESP32_GPIOS = tuple(range(0, 20)) + (21, 22, 23, 25, 26, 27) + tuple(range(32, 40))
ESP32_INPUT_ONLY = (34, 35, 36, 37, 38, 39)
ESP32_STRAPPING = {
    0: "low at reset starts the ROM download mode",
    2: "must be low or floating at reset for the ROM download mode",
    5: "sets the SDIO slave timing at reset",
    12: "high at reset sets the flash voltage to 1.8 V and a 3.3 V module does not boot",
    15: "low at reset silences the ROM boot log and sets the SDIO slave timing",
}
CHIPS = {"esp32": (ESP32_GPIOS, ESP32_INPUT_ONLY, ESP32_STRAPPING)}
DEFAULT_CHIP = "esp32"  # definitions written before "chip" existed were all for the ESP32

# The ESP32's internal Ethernet MAC talks RMII on fixed pins (no GPIO matrix): TXD0 19, TX_EN 21, TXD1 22,
# RXD0 25, RXD1 26, CRS_DV 27. Its 50 MHz reference clock comes in on GPIO0, or goes out on GPIO0, 16 or 17
# (16/17 are the PSRAM's on a WROVER module). MDC, MDIO and the PHY's power/reset pin are free to choose.
RMII_PINS = (("rmii.txd0", 19), ("rmii.tx_en", 21), ("rmii.txd1", 22), ("rmii.rxd0", 25), ("rmii.rxd1", 26),
             ("rmii.crs_dv", 27))
REF_CLK_PINS = {"in": (0,), "out": (0, 16, 17)}
ETHERNET_PHYS = ("LAN8710", "LAN8720", "IP101", "RTL8201", "DP83848", "KSZ8041", "KSZ8081")  # network.PHY_*
ETHERNET_KEYS = ("phy", "phy_addr", "mdc", "mdio", "power", "ref_clk", "ref_clk_mode")


class BoardError(ValueError):
    pass


def _is_int(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_gpio(problems, path, value):
    # Only the type here: whether the chip has the pin is _check_pins' job, with the chip known.
    if not _is_int(value, 0, 255):
        problems.append("%s: must be a GPIO number, got %r" % (path, value))


def _check_display(problems, path, display):
    if not isinstance(display, dict):
        problems.append("%s: must be an object" % path)
        return
    kind = display.get("type")
    if kind in REFUSED_DISPLAY_TYPES:
        problems.append("%s.type: %s" % (path, REFUSED_DISPLAY_TYPES[kind]))
    elif kind not in DISPLAY_TYPES:
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
    if kind == "max7219":
        _check_max7219(problems, path, display)


def _check_max7219(problems, path, display):
    # What a chain of MAX7219 8x8 modules cannot show: a size that is not whole modules, no OE to hold it dark
    # while the board boots, a serial clock the chips cannot take, or one too slow to write a frame in time.
    width, height = display.get("width"), display.get("height")
    if _is_int(width, 8, 1024) and _is_int(height, 8, 1024) and (width % 8 or height % 8):
        problems.append("%s: a MAX7219 panel is made of 8x8 modules: %dx%d is not whole modules" % (
            path, width, height))
    if not isinstance(display.get("msb_left", True), bool):
        problems.append("%s.msb_left: must be true or false, got %r" % (path, display.get("msb_left")))
    pins = display.get("pins")
    for name in ("cs", "oe"):
        if not isinstance(pins, dict) or name not in pins:
            why = {"cs": "the chain's LOAD line", "oe": "the level shifter's OE#, held off from boot until the "
                   "chain is blanked (hardware/display.md)"}[name]
            problems.append("%s.pins.%s: missing: %s" % (path, name, why))
    bus = display.get("spi")
    if not isinstance(bus, dict):
        problems.append("%s.spi: missing: the chain's clock (sck) and data (mosi)" % path)
        return
    baudrate = bus.get("baudrate", 1000000)
    if not _is_int(baudrate, 1, MAX7219_MAX_BAUDRATE):
        problems.append("%s.spi.baudrate: must be 1..%d (the MAX7219's limit), got %r" % (
            path, MAX7219_MAX_BAUDRATE, baudrate))
    elif _is_int(width, 8, 1024) and _is_int(height, 8, 1024):
        chips = (width // 8) * (height // 8)
        frame_ms = MAX7219_FRAME_WORDS * chips * 16 * 1000 // baudrate
        if frame_ms > MAX7219_MAX_FRAME_MS:
            problems.append("%s.spi.baudrate: %d Hz takes %d ms to write a frame to %d chips, more than %d ms: "
                            "scrolling would tear; raise it" % (path, baudrate, frame_ms, chips,
                                                               MAX7219_MAX_FRAME_MS))


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
    chip = board.get("chip", DEFAULT_CHIP)
    if chip not in CHIPS:
        problems.append("chip: must be one of %s, got %r" % (", ".join(sorted(CHIPS)), chip))
        chip = DEFAULT_CHIP
    if "ethernet" in board:
        _check_ethernet(problems, board["ethernet"])
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
        if "led_lit" in section and section["led_lit"] not in (0, 1):
            problems.append("%s.led_lit: must be 0 or 1, got %r" % (path, section["led_lit"]))
        _check_pins(problems, path, section, board.get("reserved_gpios") or [], chip, board.get("ethernet"))
    return problems


def _check_ethernet(problems, eth):
    if not isinstance(eth, dict):
        problems.append("ethernet: must be an object")
        return
    if eth.get("phy") not in ETHERNET_PHYS:
        problems.append("ethernet.phy: must be one of %s, got %r" % (", ".join(ETHERNET_PHYS), eth.get("phy")))
    if not _is_int(eth.get("phy_addr"), 0, 31):
        problems.append("ethernet.phy_addr: must be 0..31, got %r" % (eth.get("phy_addr"),))
    for key in ("mdc", "mdio", "ref_clk"):
        _check_gpio(problems, "ethernet." + key, eth.get(key))
    if eth.get("power") is not None:
        _check_gpio(problems, "ethernet.power", eth["power"])
    mode = eth.get("ref_clk_mode")
    if mode not in REF_CLK_PINS:
        problems.append("ethernet.ref_clk_mode: must be 'in' (the PHY's clock) or 'out', got %r" % (mode,))
    elif eth.get("ref_clk") not in REF_CLK_PINS[mode]:
        problems.append("ethernet.ref_clk: the RMII clock %s is on GPIO%s only, got %r" % (
            "input" if mode == "in" else "output", " or GPIO".join(str(p) for p in REF_CLK_PINS[mode]),
            eth.get("ref_clk")))
    for key in sorted(eth):
        if key not in ETHERNET_KEYS:
            problems.append("ethernet.%s: unknown key" % key)


def ethernet_pins(eth):
    """[(where, gpio, output?), ...] of every pin the board's Ethernet port takes from the ESP32."""
    if not isinstance(eth, dict):
        return []
    used = [("ethernet." + where, gpio, True) for where, gpio in RMII_PINS]
    for key in ("mdc", "mdio", "power"):
        if eth.get(key) is not None:
            used.append(("ethernet." + key, eth[key], True))
    if eth.get("ref_clk") is not None:
        used.append(("ethernet.ref_clk", eth["ref_clk"], eth.get("ref_clk_mode") == "out"))
    return used


def role_pins(section):
    """[(where, gpio, output?), ...] of every pin a role section uses; output? when the ESP32 drives it."""
    used = []
    display = section.get("display")
    if isinstance(display, dict):
        for bus_name in ("spi", "i2c"):
            bus = display.get(bus_name)
            if isinstance(bus, dict):
                for key in ("sck", "mosi", "scl", "sda"):  # I2C lines are open-drain outputs too
                    if key in bus:
                        used.append(("display.%s.%s" % (bus_name, key), bus[key], True))
        pins = display.get("pins")
        if isinstance(pins, dict):
            for name in sorted(pins):
                used.append(("display.pins." + name, pins[name], True))
    for key, output in (("buttons", False), ("leds", True)):
        items = section.get(key)
        if isinstance(items, list):
            for i in range(len(items)):
                if isinstance(items[i], dict) and "gpio" in items[i]:
                    used.append(("%s[%d].gpio" % (key, i), items[i]["gpio"], output))
    return used


def role_gpios(section):
    """[(where, gpio), ...] of every pin a role section uses."""
    return [(where, gpio) for where, gpio, _ in role_pins(section)]


def _check_pins(problems, path, section, reserved, chip, ethernet):
    # A pin the chip lacks, an output on an input-only pin, the module's flash (GPIO6-11) and PSRAM
    # (GPIO16/17 on WROVER modules) pins, or a pin taken twice: each stops the board working.
    gpios, input_only, _ = CHIPS[chip]
    seen = {}  # type: dict
    for where, gpio, output in ethernet_pins(ethernet) + role_pins(section):
        if not _is_int(gpio, 0, 255):
            continue  # reported by the shape checks
        if gpio not in gpios:
            problems.append("%s.%s: the %s has no GPIO%d (it has %s)" % (path, where, chip.upper(), gpio,
                                                                        _ranges(gpios)))
            continue
        if output and gpio in input_only:
            problems.append("%s.%s: GPIO%d is input-only on the %s (%s): it cannot drive an output" % (
                path, where, gpio, chip.upper(), _ranges(input_only)))
        if gpio in reserved:
            problems.append("%s.%s: GPIO%s is reserved on this board" % (path, where, gpio))
        if gpio in seen:
            problems.append("%s.%s: GPIO%s is already used by %s" % (path, where, gpio, seen[gpio]))
        else:
            seen[gpio] = where


def warnings(board):
    """What a valid definition allows but the hardware must get right, as 'path: message' lines.

    Strapping pins are read at reset: whatever is wired there must not pull them the wrong way while the
    board starts. GPIO34-39 have no internal pull-up: a button there needs the external one.
    """
    found = []  # type: list
    if not isinstance(board, dict) or not isinstance(board.get("roles"), dict):
        return found
    chip = board.get("chip", DEFAULT_CHIP)
    if chip not in CHIPS:
        return found
    _, input_only, strapping = CHIPS[chip]
    roles = board["roles"]
    for role in sorted(roles):
        section = roles[role]
        if not isinstance(section, dict):
            continue
        for where, gpio, output in ethernet_pins(board.get("ethernet")) + role_pins(section):
            if gpio in strapping:
                found.append("roles.%s.%s: GPIO%d is a strapping pin (%s): nothing wired to it may pull it "
                             "that way at power-on" % (role, where, gpio, strapping[gpio]))
            if not output and gpio in input_only:
                found.append("roles.%s.%s: GPIO%d has no internal pull-up: the button needs the external "
                             "pull-up of its input filter (hardware/wiring.md)" % (role, where, gpio))
    return found


def _ranges(numbers):
    """'0-19, 21-23, 25-27, 32-39' of a sorted tuple of GPIO numbers."""
    parts = []
    start = prev = numbers[0]
    for n in numbers[1:] + (None,):
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append("GPIO%d" % start if start == prev else "GPIO%d-%d" % (start, prev))
        if n is not None:
            start = prev = n
    return ", ".join(parts)


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
