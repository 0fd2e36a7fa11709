"""The MAX7219 panel driver on an emulated chain (max7219_chain.py), and the board check of its panels.

Runs under CPython and MicroPython (tests/firmware/test_fw_wasm.py): the driver and the check run on boards.
"""

from case_support import raises
from max7219_chain import Chain, hlsb_pixels

from firmware.drivers.max7219 import Max7219Panel
from firmware.lib import boards

WIDTH, HEIGHT = 128, 16


def panel_on(chain, msb_left=True):
    return Max7219Panel(chain.spi, chain.cs, chain.oe, chain.width, chain.height, msb_left=msb_left)


def pattern(width, height):
    """A frame where every 8x8 differs and no row is symmetric: a wrong chip, row or bit order shows."""
    frame = bytearray(width // 8 * height)
    for i in range(len(frame)):
        frame[i] = (i * 37 + 11) & 0xFF
    return frame


def test_the_chain_shows_exactly_the_frame():
    for msb_left in (True, False):
        chain = Chain(WIDTH, HEIGHT, msb_left=msb_left)
        panel = panel_on(chain, msb_left)
        frame = pattern(WIDTH, HEIGHT)
        panel.show(frame)
        assert chain.pixels() == hlsb_pixels(frame, WIDTH, HEIGHT)


def test_every_chip_runs_all_eight_rows_unlit_by_test_mode_or_decoding():
    chain = Chain(32, 16)
    panel_on(chain).show(pattern(32, 16))
    for chip in chain.chips:
        assert (chip.scan_limit, chip.decode, chip.test, chip.shutdown) == (7, 0, 0, 1)


def test_the_panel_stays_dark_until_blanked_and_configured():
    # At power-on the chips' digit registers hold anything (the emulation: every LED); they are dark only
    # because they start in shutdown. The driver must clear them before it lights the chain.
    chain = Chain(WIDTH, HEIGHT)
    panel_on(chain)
    dark = hlsb_pixels(bytearray(WIDTH // 8 * HEIGHT), WIDTH, HEIGHT)
    assert chain.latches > 0
    assert all(picture == dark for picture in chain.shown), "the panel lit something before its first frame"


def test_nothing_reaches_the_chain_while_oe_is_off():
    chain = Chain(WIDTH, HEIGHT)
    chain.cs.value(0)
    chain.spi.write(b"\x0c\x01\x0f\x01" * 32)  # what floating pins might shift: 'on' and 'test'
    chain.cs.value(1)
    assert chain.latches == 0 and all(chip.shutdown == 0 and chip.test == 0 for chip in chain.chips)


def test_a_chip_reset_or_put_in_test_mode_by_a_glitch_is_put_right_by_the_next_frame():
    chain = Chain(WIDTH, HEIGHT)
    panel = panel_on(chain)
    frame = pattern(WIDTH, HEIGHT)
    panel.show(frame)
    chain.chips[3].test = 1
    chain.chips[9].__init__()  # a supply dip: power-on state
    panel.show(frame)
    assert chain.pixels() == hlsb_pixels(frame, WIDTH, HEIGHT)


def test_brightness_sets_the_chips_intensity_and_zero_darkens_keeping_the_frame():
    chain = Chain(WIDTH, HEIGHT)
    panel = panel_on(chain)
    frame = pattern(WIDTH, HEIGHT)
    panel.show(frame)
    panel.brightness(50)
    assert [chip.intensity for chip in chain.chips] == [7] * 32
    panel.brightness(0)
    assert not any(any(row) for row in chain.pixels())
    panel.brightness(100)
    assert chain.pixels() == hlsb_pixels(frame, WIDTH, HEIGHT)
    assert chain.chips[0].intensity == 15


def test_a_size_of_no_whole_modules_is_refused_by_the_driver():
    chain = Chain(WIDTH, HEIGHT)
    raises(ValueError, Max7219Panel, chain.spi, chain.cs, chain.oe, 128, 12)


def display_board(**display):
    spec = {"type": "max7219", "width": WIDTH, "height": HEIGHT,
            "spi": {"id": 2, "baudrate": 2000000, "sck": 18, "mosi": 23}, "pins": {"cs": 4, "oe": 22}}
    spec.update(display)
    return {"name": "x", "chip": "esp32", "roles": {"queue_display": {"display": spec}}}


def test_the_board_check_takes_a_max7219_chain():
    assert boards.validate(display_board()) == []


def test_the_board_check_refuses_hub12_panels_whatever_their_scan():
    for scan in (4, 8, 16):
        board = display_board(type="hub12", scan=scan, pins={"latch": 4, "oe": 22, "a": 25, "b": 26})
        problems = boards.validate(board)
        assert [p for p in problems if p.startswith("roles.queue_display.display.type: HUB12 modules keep no "
                                                    "frame")], problems
        assert "max7219" in problems[0]


def test_the_board_check_refuses_what_a_max7219_chain_cannot_show_without_flicker_or_tearing():
    problems = boards.validate(display_board(height=12))
    assert "roles.queue_display.display: a MAX7219 panel is made of 8x8 modules: 128x12 is not whole " \
           "modules" in problems, problems
    problems = boards.validate(display_board(pins={"cs": 4}))
    assert [p for p in problems if p.startswith("roles.queue_display.display.pins.oe: missing")], problems
    problems = boards.validate(display_board(spi={"sck": 18, "mosi": 23, "baudrate": 100000}))
    assert "roles.queue_display.display.spi.baudrate: 100000 Hz takes 66 ms to write a frame to 32 chips, " \
           "more than 20 ms: scrolling would tear; raise it" in problems, problems
    problems = boards.validate(display_board(spi={"sck": 18, "mosi": 23, "baudrate": 20000000}))
    assert [p for p in problems if "the MAX7219's limit" in p], problems


def test_the_oe_pin_held_at_boot_is_the_boards_and_a_board_not_found_is_the_default_ones():
    import json

    from case_support import scratch_dir, write

    from firmware.drivers import panel_off

    folder = scratch_dir("panel-off")
    paths = []
    for name, role, display in (
            ("esp32-devkitc-max7219", "queue_display", {"type": "max7219", "pins": {"cs": 4, "oe": 22}}),
            ("esp32-ethernet-kit-max7219", "queue_display", {"type": "max7219", "pins": {"cs": 4, "oe": 32}}),
            ("esp32-devkitc-ssd1306", "queue_display", {"type": "ssd1306", "i2c": {"scl": 22, "sda": 21}})):
        path = folder + "/" + name + ".json"
        write(path, json.dumps({"name": name, "roles": {role: {"display": display}}}))
        paths.append(path)
    config = folder + "/config.json"
    write(config, '{"board": "esp32-ethernet-kit-max7219"}')
    assert panel_off.oe_pin(config, paths) == 32
    write(config, '{"board": "esp32-devkitc-hub12"}')  # provisioned before the panel changed: the default board
    assert panel_off.oe_pin(config, paths) == 22
    write(config, '{"board": "esp32-devkitc-ssd1306"}')  # an OLED: no OE to hold
    assert panel_off.oe_pin(config, paths) is None
    assert panel_off.oe_pin(folder + "/missing.json", paths) == 22
