"""`provision device --flash`: esptool (unmodified, as a library and as its CLI) against a virtual ESP32 ROM."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning import supported_images
from provisioning.flashing import FLASH_OFFSET
from provisioning.testing.virtual_rom import VirtualRom


def esp32_image(path: Path, payload_bytes: int = 40_000) -> bytes:
    """A well-formed ESP32 image (header, extended header, one segment, checksum), as MicroPython's .bin starts."""
    segment = os.urandom(payload_bytes)
    header = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080000)  # magic, 1 segment, DIO, 4 MB / 40 MHz, entry
    extended = struct.pack("<B3sHBHH4sB", 0xEE, bytes(3), 0, 0, 0, 0xFFFF, bytes(4), 0)  # chip id 0: ESP32
    body = header + extended + struct.pack("<II", 0x40080000, len(segment)) + segment
    body += bytes(15 - len(body) % 16)
    checksum = 0xEF
    for byte in segment:
        checksum ^= byte
    data = body + bytes([checksum])
    path.write_bytes(data)
    return data


def list_as_release(image: bytes, tmp_path: Path, monkeypatch) -> str:
    """image.json with `image` as a release of the production image (none is built on these machines)."""
    spec = supported_images.load()
    sha256 = hashlib.sha256(image).hexdigest()
    spec["releases"] = [{"sha256": sha256, "built": "2026-01-05"}]
    listed = tmp_path / "image.json"
    listed.write_text(json.dumps(spec))
    monkeypatch.setattr(supported_images, "IMAGE_FILE", listed)
    return sha256


@pytest.fixture
def rom_factory():
    started: list[VirtualRom] = []

    def start(**options) -> VirtualRom:
        rom = VirtualRom(**options).start()
        started.append(rom)
        return rom

    yield start
    for rom in started:
        rom.close()


def test_flash_writes_the_image_then_provisions_the_board(board_factory, rom_factory, provision, device_args,
                                                           tmp_path, monkeypatch):
    image = esp32_image(tmp_path / "ESP32_GENERIC-v1.27.0.bin")
    list_as_release(image, tmp_path, monkeypatch)
    board = board_factory()
    rom = rom_factory(then=board)  # after flashing, the port carries this board's MicroPython
    result = provision(*device_args(rom.port, "--flash", str(tmp_path / "ESP32_GENERIC-v1.27.0.bin"),
                                    "--flash-no-reset"))
    assert result.status == 0, result.err
    assert rom.flash_at(FLASH_OFFSET, len(image)) == image
    assert rom.flash_at(FLASH_OFFSET + len(image), 4096) == b"\xff" * 4096
    assert rom.commands[0] == "SYNC" and "SPI_ATTACH" in rom.commands and "SPI_FLASH_MD5" in rom.commands
    assert rom.booted
    steps = [line.split(":")[0] for line in result.out.splitlines()]
    assert steps[2:5] == ["✓ flash", "✓ MicroPython starts", "✓ board"]
    assert "production image SERVICE_CENTER_ESP32 2026-01-05) written at 0x1000 and verified, ESP32-D0WDQ6-V3" \
        in result.out
    assert "/config.json" in board.files()
    record = provision.read_records()[0]
    assert record["outcome"] == "ok" and record["device_id"] == "dev-a4cf12ab34cd"
    assert record["flashed_image"].startswith("ESP32_GENERIC-v1.27.0.bin sha256 ")


@pytest.mark.parametrize(("content", "message"), [
    (b"<html>404 Not Found</html>", "is not an ESP32 image: it starts with 0x3C, not the 0xE9 magic"),
    (b"", "is not an ESP32 image: it starts with nothing (the file is empty)"),
    ("truncated", "is not a whole ESP32 image: End of file reading segment"),
    ("bad checksum", "is corrupt: its checksum does not match its contents"),
    ("other chip", "is an image for another chip (chip id 9), not for the ESP32"),
])
def test_a_corrupt_image_is_refused_before_anything_is_written(rom_factory, provision, device_args, tmp_path,
                                                               content, message):
    path = tmp_path / "firmware.bin"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        good = esp32_image(path)
        bad = {"truncated": good[:5000], "bad checksum": good[:-1] + bytes([good[-1] ^ 0xFF]),
               "other chip": good[:12] + b"\x09" + good[13:]}[content]
        path.write_bytes(bad)
    rom = rom_factory()
    result = provision(*device_args(rom.port, "--flash", str(path), "--flash-no-reset"))
    assert result.status == 1
    assert result.err.startswith("provision: ") and message in result.err, result.err
    assert rom.commands == []  # esptool never even opened the port
    assert rom.flash_at(0, 64 * 1024) == b"\xff" * 64 * 1024
    assert provision.read_records()[0]["outcome"] == "failed"


def test_an_image_that_is_not_a_release_of_the_production_image_is_refused_unless_any_image(
        board_factory, rom_factory, provision, device_args, tmp_path):
    image = esp32_image(tmp_path / "ESP32_GENERIC-v1.28.0.bin")  # a good ESP32 image, only not ours
    rom = rom_factory(then=board_factory())
    refused = provision(*device_args(rom.port, "--flash", str(tmp_path / "ESP32_GENERIC-v1.28.0.bin"),
                                     "--flash-no-reset"))
    assert refused.status == 1
    assert "is not a release of the production image" in refused.err and "--any-image" in refused.err
    assert rom.commands == [] and rom.flash_at(FLASH_OFFSET, 4096) == b"\xff" * 4096
    anyway = provision(*device_args(rom.port, "--flash", str(tmp_path / "ESP32_GENERIC-v1.28.0.bin"),
                                    "--flash-no-reset", "--any-image"))
    assert anyway.status == 0, anyway.err
    assert "not a listed release (--any-image)" in anyway.out
    assert rom.flash_at(FLASH_OFFSET, len(image)) == image


def test_a_missing_image(rom_factory, provision, device_args, tmp_path):
    rom = rom_factory()
    result = provision(*device_args(rom.port, "--flash", str(tmp_path / "nothing.bin"), "--flash-no-reset"))
    assert result.status == 1
    assert result.err == f"provision: no such MicroPython image {tmp_path / 'nothing.bin'}\n"
    assert rom.commands == []


def test_a_board_not_in_download_mode(board, provision, device_args, tmp_path):
    """A board running MicroPython (not held in its ROM bootloader) does not answer esptool's SYNC."""
    esp32_image(tmp_path / "fw.bin")
    result = provision(*device_args(board.port, "--flash", str(tmp_path / "fw.bin"), "--flash-no-reset",
                                    "--any-image"))
    assert result.status == 1
    assert "provision: no ESP32 in download mode on " in result.err
    assert "Failed to connect to ESP32" in result.err and "hold BOOT" in result.err
    assert "/config.json" not in board.files()


def test_a_write_failure_is_reported(rom_factory, provision, device_args, tmp_path):
    image = esp32_image(tmp_path / "fw.bin")
    rom = rom_factory(fail_write_at=FLASH_OFFSET + 0x2000)
    result = provision(*device_args(rom.port, "--flash", str(tmp_path / "fw.bin"), "--flash-no-reset",
                                    "--any-image"))
    assert result.status == 1
    assert "writing fw.bin to the board on" in result.err and "Flash write error" in result.err, result.err
    assert "dev-a4cf12ab34cd" in result.err  # the chip's MAC was read before the write failed
    assert rom.flash_at(FLASH_OFFSET, len(image)) != image
    assert not rom.booted
    record = provision.read_records()[0]
    assert record["outcome"] == "failed" and "Flash write error" in record["error"]


def test_the_esptool_command_line_flashes_the_virtual_rom(rom_factory, tmp_path):
    """The unmodified esptool CLI, as a technician would run it by hand, with the virtual ROM's settings."""
    image = esp32_image(tmp_path / "fw.bin")
    rom = rom_factory()
    result = subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", rom.port, "--no-stub", "--before",
         "no-reset", "--after", "no-reset", "write-flash", "0x1000", str(tmp_path / "fw.bin")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MAC:                a4:cf:12:ab:34:cd" in result.stdout
    assert "Hash of data verified." in result.stdout
    assert rom.flash_at(FLASH_OFFSET, len(image)) == image
    assert not rom.booted  # --after no-reset: it stays in the bootloader
