"""Board definitions (hardware/boards) and the drivers built from them, run with fake buses and pins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.drivers.leds import Leds
from firmware.drivers.ssd1306 import SSD1306
from firmware.lib import boards
from firmware.lib import framebuf_compat as framebuf
from firmware.rating_pad.app import BUTTON_SCORES
from firmware.sim import png
from firmware.sim.center import SCREEN_PNG, SimulatedCenter
from protocol import messages

ROOT = Path(__file__).resolve().parents[2]
BOARD_FILES = sorted((ROOT / "hardware" / "boards").glob("*.json"))


# --- definitions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BOARD_FILES, ids=lambda p: p.stem)
def test_every_board_definition_is_valid_and_named_after_its_file(path: Path) -> None:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert boards.validate(board) == []
    assert board["name"] == path.stem
    assert boards.load(path.stem)["name"] == path.stem


def test_the_boards_the_firmware_falls_back_to_exist_for_their_role() -> None:
    assert {p.stem for p in BOARD_FILES} >= {"sim", *boards.DEFAULT_BOARDS.values()}
    for role, name in boards.DEFAULT_BOARDS.items():
        assert "display" in boards.role_section(boards.load(name), role)
    assert boards.SCORES == BUTTON_SCORES


def test_a_pin_used_twice_or_reserved_by_the_module_is_refused() -> None:
    board = json.loads((ROOT / "hardware" / "boards" / "esp32-devkitc-ssd1306.json").read_text(encoding="utf-8"))
    assert 16 in board["reserved_gpios"] and 6 in board["reserved_gpios"]
    pad = board["roles"]["rating_pad"]
    pad["leds"][0]["gpio"] = 16  # PSRAM on the WROVER module
    pad["leds"][1]["gpio"] = 32  # already button 5
    problems = boards.validate(board)
    assert "roles.rating_pad.leds[0].gpio: GPIO16 is reserved on this board" in problems
    assert "roles.rating_pad.leds[1].gpio: GPIO32 is already used by buttons[0].gpio" in problems


def _pad_board() -> dict:
    return json.loads((ROOT / "hardware" / "boards" / "esp32-devkitc-ssd1306.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("gpio", [20, 24, 28, 29, 30, 31, 40, 44, 48])
def test_a_gpio_the_esp32_does_not_have_is_refused(gpio: int) -> None:
    board = _pad_board()
    board["roles"]["rating_pad"]["buttons"][0]["gpio"] = gpio
    board["roles"]["rating_pad"]["leds"][0]["gpio"] = gpio
    problems = boards.validate(board)
    for where in ("buttons[0]", "leds[0]"):
        assert (f"roles.rating_pad.{where}.gpio: the ESP32 has no GPIO{gpio} "
                "(it has GPIO0-19, GPIO21-23, GPIO25-27, GPIO32-39)") in problems, problems


def test_an_output_on_an_input_only_pin_is_refused_and_a_button_there_is_warned() -> None:
    board = _pad_board()
    pad = board["roles"]["rating_pad"]
    pad["leds"][0]["gpio"] = 34
    pad["display"]["i2c"]["scl"] = 39  # open-drain, but driven low by the ESP32: an output
    pad["buttons"][0]["gpio"] = 35  # an input: allowed, but it has no internal pull-up
    problems = boards.validate(board)
    assert ("roles.rating_pad.leds[0].gpio: GPIO34 is input-only on the ESP32 (GPIO34-39): it cannot drive "
            "an output") in problems
    assert any(p.startswith("roles.rating_pad.display.i2c.scl: GPIO39 is input-only") for p in problems)
    assert not any("buttons[0]" in p for p in problems)
    assert ("roles.rating_pad.buttons[0].gpio: GPIO35 has no internal pull-up: the button needs the external "
            "pull-up of its input filter (hardware/wiring.md)") in boards.warnings(board)
    led = json.loads((ROOT / "hardware" / "boards" / "esp32-devkitc-max7219.json").read_text(encoding="utf-8"))
    led["roles"]["queue_display"]["display"]["pins"]["oe"] = 36
    assert any(p.startswith("roles.queue_display.display.pins.oe: GPIO36 is input-only")
               for p in boards.validate(led))


@pytest.mark.parametrize("gpio", [0, 2, 5, 12, 15])
def test_a_strapping_pin_is_warned_about_with_what_it_straps(gpio: int) -> None:
    board = _pad_board()
    board["roles"]["rating_pad"]["leds"][2]["gpio"] = gpio
    assert boards.validate(board) == []
    said = [w for w in boards.warnings(board) if "leds[2]" in w]
    assert len(said) == 1 and said[0].startswith(f"roles.rating_pad.leds[2].gpio: GPIO{gpio} is a strapping pin (")
    if gpio == 12:
        assert "flash voltage" in said[0]


def test_the_shipped_boards_warn_only_where_the_wiring_says_why() -> None:
    warned = {path.stem: boards.warnings(json.loads(path.read_text(encoding="utf-8"))) for path in BOARD_FILES}
    assert warned["esp32-devkitc-ssd1306"] == [] and warned["esp32-devkitc-max7219"] == []
    kit = warned["esp32-ethernet-kit-max7219"]
    # the PHY's clock into GPIO0 and its enable on GPIO5 are the kit's own design
    assert [w.split(":")[0] for w in kit] == ["roles.queue_display.ethernet.power",
                                              "roles.queue_display.ethernet.ref_clk"]
    wiring = (ROOT / "hardware" / "wiring.md").read_text(encoding="utf-8")
    for gpio in ("GPIO0", "GPIO5"):
        assert f"{gpio} (strapping)" in wiring


def test_the_old_ethernet_defaults_collide_with_both_pin_maps_and_are_refused() -> None:
    # What config.json used to default to on any board: MDC 23, MDIO 18, PHY power 12, the PHY's clock on GPIO0,
    # plus the RMII data pins the ESP32's MAC always takes (19, 21, 22, 25, 26, 27).
    old_defaults = {"phy": "LAN8720", "phy_addr": 1, "mdc": 23, "mdio": 18, "power": 12, "ref_clk": 0,
                    "ref_clk_mode": "in"}
    pad = _pad_board()
    pad["ethernet"] = old_defaults
    problems = boards.validate(pad)
    assert "roles.rating_pad.display.i2c.scl: GPIO22 is already used by ethernet.rmii.txd1" in problems
    assert "roles.rating_pad.display.i2c.sda: GPIO21 is already used by ethernet.rmii.tx_en" in problems
    assert "roles.rating_pad.buttons[2].gpio: GPIO25 is already used by ethernet.rmii.rxd0" in problems
    assert "roles.rating_pad.leds[4].gpio: GPIO23 is already used by ethernet.mdc" in problems
    display = json.loads((ROOT / "hardware" / "boards" / "esp32-devkitc-max7219.json").read_text(encoding="utf-8"))
    display["ethernet"] = old_defaults
    problems = boards.validate(display)
    assert "roles.queue_display.display.spi.sck: GPIO18 is already used by ethernet.mdio" in problems
    assert "roles.queue_display.display.pins.oe: GPIO22 is already used by ethernet.rmii.txd1" in problems


def test_the_ethernet_reference_clock_goes_where_the_esp32_can_take_it() -> None:
    kit = json.loads((ROOT / "hardware" / "boards" / "esp32-ethernet-kit-max7219.json").read_text(encoding="utf-8"))
    assert boards.validate(kit) == []
    kit["ethernet"]["ref_clk"] = 4
    assert any(p.startswith("ethernet.ref_clk: the RMII clock input is on GPIO0 only") for p in boards.validate(kit))
    kit["ethernet"].update(ref_clk=17, ref_clk_mode="out")  # an output pin the ESP32 has, but the PSRAM's here
    assert "roles.queue_display.ethernet.ref_clk: GPIO17 is reserved on this board" in boards.validate(kit)
    kit["ethernet"].update(ref_clk=0, ref_clk_mode="in", phy="W5500", speed=100)
    problems = boards.validate(kit)
    assert any(p.startswith("ethernet.phy: must be one of") for p in problems)
    assert "ethernet.speed: unknown key" in problems


def test_a_chip_the_check_does_not_know_is_refused() -> None:
    board = _pad_board()
    board["chip"] = "esp32s3"
    assert "chip: must be one of esp32, got 'esp32s3'" in boards.validate(board)
    board["roles"]["rating_pad"]["led_lit"] = "high"
    assert "roles.rating_pad.led_lit: must be 0 or 1, got 'high'" in boards.validate(board)


def test_rating_pad_buttons_and_leds_come_left_to_right() -> None:
    section = boards.role_section(boards.load("esp32-devkitc-ssd1306"), messages.ROLE_RATING_PAD)
    assert boards.button_pins(section) == ((5, 32), (4, 33), (3, 25), (2, 26), (1, 27))
    assert boards.led_pins(section) == [13, 14, 18, 19, 23]
    shuffled = {"buttons": [{"score": s, "gpio": 10 + s} for s in (1, 3, 5, 2, 4)]}
    assert [score for score, _ in boards.button_pins(shuffled)] == [5, 4, 3, 2, 1]


def test_every_problem_of_a_definition_is_reported_with_its_path() -> None:
    board = {"name": "bad", "roles": {
        "rating_pad": {
            "display": {"type": "lcd", "width": 128, "height": 64, "i2c": {"scl": 22, "sda": "21"}},
            "buttons": [{"score": 5, "gpio": 32}, {"score": 5, "gpio": 99}, {"score": 7, "gpio": 1}],
            "leds": "none",
        },
        "queue_display": {"display": {"type": "max7219", "width": 128, "height": 12, "pins": {"cs": 4}}},
    }}
    problems = boards.validate(board)
    assert "roles.rating_pad.display.type: must be one of max7219, ssd1306, got 'lcd'" in problems
    assert any(p.startswith("roles.queue_display.display: a MAX7219 panel is made of 8x8 modules") for p in problems)
    assert any(p.startswith("roles.queue_display.display.pins.oe: missing") for p in problems)
    assert any(p.startswith("roles.rating_pad.display.i2c.sda:") for p in problems)
    assert "roles.rating_pad.buttons[1].score: 5 appears twice" in problems
    assert any(p.startswith("roles.rating_pad.buttons[1].gpio:") for p in problems)
    assert any(p.startswith("roles.rating_pad.buttons[2].score:") for p in problems)
    assert "roles.rating_pad.leds: must be a list" in problems
    assert any(p.startswith("roles.rating_pad.buttons: a rating pad needs exactly 5") for p in problems)


def test_load_prefers_the_provisioned_board_file_and_refuses_odd_names(tmp_path: Path) -> None:
    device_file = tmp_path / "board.json"
    mine = json.loads((ROOT / "hardware" / "boards" / "sim.json").read_text(encoding="utf-8"))
    mine["name"] = "custom-pad"
    device_file.write_text(json.dumps(mine))
    assert boards.load("custom-pad", (str(device_file), str(tmp_path / "x.json")))["name"] == "custom-pad"
    with pytest.raises(boards.BoardError, match="not found"):
        boards.load("other", (str(device_file),))
    for name in ("../secrets", "a/b", ""):
        with pytest.raises(boards.BoardError):
            boards.load(name)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(boards.BoardError, match="not valid JSON"):
        boards.load("broken", (str(broken),))


def test_an_unknown_board_falls_back_to_the_roles_default_with_a_log_line() -> None:
    said: list[str] = []
    name, section = boards.load_for_role("esp32-unknown", messages.ROLE_RATING_PAD, log=said.append)
    assert name == boards.DEFAULT_BOARDS[messages.ROLE_RATING_PAD]
    assert len(boards.button_pins(section)) == 5
    assert "esp32-unknown" in said[0] and "not found" in said[0]
    with pytest.raises(boards.BoardError, match="no queue_display"):
        boards.role_section({"name": "x", "roles": {"rating_pad": {}}}, messages.ROLE_QUEUE_DISPLAY)


# --- HUB12 LED panels ---------------------------------------------------------------------------------------


class FakePin:
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name, self.level = log, name, None

    def value(self, level: int) -> None:
        self.level = level
        self.log.append((self.name, level))


class FakeSpi:
    def __init__(self, log: list) -> None:
        self.log = log

    def write(self, data) -> None:
        self.log.append(("spi", bytes(data)))


# --- SSD1306 OLED --------------------------------------------------------------------------------------------


class FakeI2c:
    def __init__(self) -> None:
        self.writes: list[tuple[int, bytes]] = []

    def writeto(self, address: int, data) -> None:
        self.writes.append((address, bytes(data)))

    def writevto(self, address: int, parts) -> None:
        self.writes.append((address, b"".join(bytes(p) for p in parts)))


def test_ssd1306_initialises_and_sends_the_frame_as_one_data_write() -> None:
    i2c = FakeI2c()
    oled = SSD1306(i2c, 128, 64, 0x3C)
    commands = [data[1] for _, data in i2c.writes if data[0] == 0x80]
    assert commands[0] == 0xAE and 0xAF in commands and 0x8D in commands
    assert all(address == 0x3C for address, _ in i2c.writes)
    i2c.writes.clear()
    frame = bytearray(range(256)) * 4
    oled.show(frame)
    data_writes = [data for _, data in i2c.writes if data[0] == 0x40]
    assert data_writes == [b"\x40" + bytes(frame)]
    assert [data[1] for _, data in i2c.writes if data[0] == 0x80] == [0x21, 0, 127, 0x22, 0, 7]


def test_ssd1306_brightness_is_contrast_and_zero_is_off() -> None:
    i2c = FakeI2c()
    oled = SSD1306(i2c)
    i2c.writes.clear()
    oled.brightness(50)
    assert [data[1] for _, data in i2c.writes] == [0x81, 127, 0xAF]
    i2c.writes.clear()
    oled.brightness(0)
    assert [data[1] for _, data in i2c.writes] == [0xAE]


# --- button LEDs ---------------------------------------------------------------------------------------------


def test_leds_set_each_pin_and_honour_active_low_wiring() -> None:
    log: list = []
    pins = [FakePin(log, str(i)) for i in range(5)]
    leds = Leds(pins, lit=0)
    assert [p.level for p in pins] == [1] * 5  # all dark at start
    leds.show((False, True, False, False, False))
    assert [p.level for p in pins] == [1, 0, 1, 1, 1]
    assert leds.states == [False, True, False, False, False]


# --- the simulator draws each board's panel -------------------------------------------------------------------


def test_simulated_devices_draw_their_boards_panels_to_png(tmp_path: Path) -> None:
    center = SimulatedCenter("445202101001", "127.0.0.1", 1, [3], tmp_path, log=None)
    display, pad = center.display(3), center.pad(3)
    display.app.on_display({"window": 3, "state": "serving", "ticket": "A012", "text": "请A012号到3号窗口",
                            "call_seq": 1}, 0, retained=True)
    display.runtime.refresh()
    pad.runtime.refresh()
    shot = tmp_path / display.device_id / SCREEN_PNG
    width, height, rows = png.decode_png(shot.read_bytes())
    scale = png.LOOKS[png.LOOK_LED][0]
    assert (width, height) == (128 * scale, 16 * scale)
    lit_cells = sum(row.count(bytes(png.LOOKS[png.LOOK_LED][1])) for row in rows)
    assert lit_cells > 0
    screen = display.panel.screen.display
    fb = framebuf.FrameBuffer(bytearray(screen.frame), 128, 16, framebuf.MONO_HLSB)
    assert screen.pixels() == [[fb.pixel(x, y) for x in range(128)] for y in range(16)]
    lit_leds = sum(map(sum, screen.pixels()))
    assert lit_leds > 0 and lit_cells == lit_leds * ((scale - 1) ** 2 - 4)  # a round dot per lit LED
    width, height, _ = png.decode_png(pad.png())
    assert (width, height) == (128 * png.LOOKS[png.LOOK_OLED][0], 64 * png.LOOKS[png.LOOK_OLED][0])
    assert pad.state()["leds"] == [False] * 5


def test_bill_of_materials_has_both_devices_with_their_boards_and_panels() -> None:
    import csv

    with open(ROOT / "hardware" / "bom.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["device"] for row in rows} == {"queue_display", "rating_pad", "queue_display_ethernet"}
    for row in rows:
        assert row["part"] and int(row["qty"]) >= 1, row
    by_device = {device: [r for r in rows if r["device"] == device]
                 for device in ("queue_display", "rating_pad", "queue_display_ethernet")}
    for device in ("queue_display", "rating_pad"):
        assert any(r["part_number"] == "ESP32-DevKitC-VE" for r in by_device[device])  # WROVER-E: see hardware/README
    # every ESP32 board of the bill has PSRAM (the Ethernet one too: not a WROOM board like the WT32-ETH01)
    assert all("WROVER" in r["part"] for r in rows if r["ref"] == "U1")
    assert any("MAX7219" in r["part"] and int(r["qty"]) == 8 for r in by_device["queue_display"])  # 32 chips
    assert not any("HUB12" in r["part"] for r in rows)  # no frame memory: hardware/display.md
    assert any("SSD1306" in r["part"] for r in by_device["rating_pad"])
    assert sum(int(r["qty"]) for r in by_device["rating_pad"] if "Push button" in r["part"]) == 5


def test_the_pads_button_leds_run_from_5v_through_a_transistor_array_and_its_buttons_are_protected() -> None:
    import csv

    with open(ROOT / "hardware" / "bom.csv", newline="", encoding="utf-8") as handle:
        pad = [r for r in csv.DictReader(handle) if r["device"] == "rating_pad"]
    # 6 V LEDs with their own resistor, from a 3.3 V GPIO through another 100 ohm: dim red, dark green
    assert not any("100 ohm" in r["part"] for r in pad)
    array = [r for r in pad if r["part_number"] in ("ULN2003AN", "ULN2803A")]
    assert len(array) == 1 and "5 V" in array[0]["part"]
    tvs = [r for r in pad if "TVS" in r["part"]]
    assert len(tvs) == 1 and "5 channels" in tvs[0]["part"]  # one per button line
    parts = {r["ref"]: r for r in pad}
    assert parts["R1-R5"]["part"].startswith("Resistor 1 kohm") and int(parts["R1-R5"]["qty"]) == 5
    assert parts["C1-C5"]["part"].startswith("Capacitor 100 nF") and int(parts["C1-C5"]["qty"]) == 5
    assert parts["R6-R10"]["part"].startswith("Resistor 10 kohm")
    board = boards.role_section(boards.load("esp32-devkitc-ssd1306"), messages.ROLE_RATING_PAD)
    assert board["led_lit"] == 1  # the array inverts nothing the firmware sees: GPIO high = LED lit
