"""Provisioning accepts only the supported images (firmware/image/image.json): the pinned release, the
production image or the stock SPIRAM one, and PSRAM where the role needs it; on the production image only
what is not frozen into it is copied."""

from __future__ import annotations

from firmware.lib.hold import HOLD_FILE
from provisioning.supported_images import load

PRODUCTION = load()["machine"]


def writes(board) -> int:
    return sum(1 for program in board.programs if b"open(" in program and b"'w" in program)


def test_a_board_without_psram_is_refused_before_anything_is_written(board_factory, provision, device_args):
    board = board_factory(heap_bytes=160 * 1024)  # the SPIRAM image on a WROOM module: PSRAM not found at boot
    result = provision(*device_args(board.port))
    assert result.status == 1
    assert "has a 160 KB MicroPython heap: no PSRAM" in result.err and "a rating_pad needs" in result.err
    assert writes(board) == 0 and "/config.json" not in board.files() and HOLD_FILE not in board.files()


def test_a_plain_esp32_image_of_the_right_release_is_refused(board_factory, provision, device_args):
    board = board_factory(machine="Generic ESP32 module with ESP32")  # ESP32_GENERIC without SPIRAM
    result = provision(*device_args(board.port, role="queue_display"))
    assert result.status == 1
    assert 'on "Generic ESP32 module with ESP32": not a supported image' in result.err
    assert "flash the production image first" in result.err
    assert writes(board) == 0


def test_on_the_production_image_only_main_board_and_font_go_on_the_board(board_factory, provision, device_args):
    board = board_factory(machine=PRODUCTION)
    board.put_file("/lib/firmware/lib/mqtt.mpy", b"left by a stock image")  # never imported: frozen wins
    board.put_file("/lib/protocol/topics.mpy", b"left by a stock image")
    result = provision(*device_args(board.port, "--dry-run"))
    assert result.status == 0, result.err
    assert "(production image, 4096 KB heap)" in result.out
    copies = sorted(line.split()[2] for line in result.out.splitlines() if line.startswith("  would copy "))
    assert copies == ["/board.json", "/config.json", "/font.bin", "/main.py"]
    removes = sorted(line.split()[2] for line in result.out.splitlines() if line.startswith("  would remove "))
    assert removes == ["/lib/firmware/lib/mqtt.mpy", "/lib/protocol/topics.mpy"]
