"""Flashing MicroPython onto a board with esptool (used as a library), before the files are copied.

`provision device --flash IMAGE.bin`: the image is checked first (it exists, it is an ESP32 image: the
0xE9 magic, chip id ESP32, every segment present, the checksum right), so a wrong or corrupt file never
reaches the board. Then esptool talks to the ESP32's ROM bootloader: connect, write the image at 0x1000
(where MicroPython's ESP32 images start: bootloader, partition table and application in one file),
verify it with the ROM's MD5, reset the board, and wait until MicroPython answers on the same port.

Resets: by default the USB bridge's DTR/RTS lines put the board in download mode and reset it after
(esptool's default-reset / hard-reset). With `--flash-no-reset` the technician has put the board in
download mode by hand (BOOT held while pressing EN), for boards without the auto-reset circuit; the
board is then started with the ROM's own "run user code" command (esptool's soft-reset), which needs
no control lines. The stub flasher is never uploaded (`no-stub`): the ROM writes the flash itself, a
little slower, but the same on every board and on the virtual ROM of the tests, which runs no code.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial
from esp_pylib.logger import EspLog
from esptool.bin_image import LoadFirmwareImage
from esptool.cmds import attach_flash, connect_esp, reset_chip, write_flash
from esptool.logger import TemplateLogger, log
from esptool.util import FatalError

from protocol import identity
from protocol.errors import ProtocolError
from provisioning import supported_images
from provisioning.errors import ProvisionError
from provisioning.progress import Progress
from provisioning.transport import Board

FLASH_OFFSET = 0x1000  # ESP32 (not S2/S3/C3): the second-stage bootloader starts here
ESP_IMAGE_MAGIC = 0xE9
ESP32_CHIP_ID = 0  # in the image's extended header
FLASH_BAUD = 460_800  # the ESP32 ROM changes to it on request; the sync itself is at 115200
CONNECT_ATTEMPTS = 3
REPL_WAIT_S = 30.0  # MicroPython's first boot formats its filesystem: a few seconds on a real board


@dataclass(frozen=True)
class FlashImage:
    path: Path
    data: bytes
    sha256: str


@dataclass(frozen=True)
class FlashResult:
    chip: str  # e.g. "ESP32-D0WD-V3 (revision v3.0)"
    device_id: str | None  # from the chip's MAC, known before MicroPython runs


def read_image(path: Path) -> FlashImage:
    """The image file, checked: a ProvisionError says why it cannot go onto an ESP32."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProvisionError(f"no such MicroPython image {path}") from None
    except OSError as exc:
        raise ProvisionError(f"cannot read the MicroPython image {path}: {exc.strerror or exc}") from None
    if not data or data[0] != ESP_IMAGE_MAGIC:
        first = f"0x{data[0]:02X}" if data else "nothing (the file is empty)"
        raise ProvisionError(
            f"{path} is not an ESP32 image: it starts with {first}, not the 0xE9 magic of an ESP firmware image "
            "(download the ESP32_GENERIC .bin from micropython.org, not the .elf, .uf2 or a web page)")
    try:
        image = LoadFirmwareImage("esp32", data)
    except (FatalError, ValueError, IndexError) as exc:
        raise ProvisionError(f"{path} is not a whole ESP32 image: {exc} (the download may be cut short)") from None
    if getattr(image, "chip_id", ESP32_CHIP_ID) != ESP32_CHIP_ID:
        raise ProvisionError(f"{path} is an image for another chip (chip id {image.chip_id}), not for the ESP32")
    if image.checksum != image.calculate_checksum():
        raise ProvisionError(f"{path} is corrupt: its checksum does not match its contents")
    return FlashImage(path, data, hashlib.sha256(data).hexdigest())


class _EsptoolLog(TemplateLogger):
    """esptool's output, kept for error messages; its progress bar goes to the technician's status line."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.lines: list[str] = []

    def print(self, *args, **kwargs) -> None:
        text = " ".join(str(a) for a in args).strip()
        if text:
            self.lines.append(text)

    def note(self, message: str) -> None:
        self.lines.append(f"note: {message}")

    def warning(self, message: str) -> None:
        self.lines.append(f"warning: {message}")

    def error(self, message: str) -> None:
        self.lines.append(f"error: {message}")

    def stage(self, finish: bool = False) -> None:
        pass

    def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "",
                     bar_length: int = 30) -> None:
        if total_iters:
            self.progress.status(f"flash: {100 * cur_iter // total_iters}% {prefix.strip()}")

    def set_verbosity(self, verbosity: str) -> None:
        pass


def flash_micropython(port: str, image: FlashImage, progress: Progress, auto_reset: bool = True,
                      baud: int = FLASH_BAUD, connect_attempts: int = CONNECT_ATTEMPTS,
                      on_device_id: Callable[[str], None] | None = None) -> FlashResult:
    """Write the image at 0x1000, verify it, and start it; every failure is a ProvisionError.

    `on_device_id` hears the device id as soon as the chip's MAC is read, so a failed write names the device.
    """
    if "://" not in port and not os.path.exists(port):
        raise ProvisionError(f"no such port {port} (`provision list` shows the boards plugged in)")
    previous_logger = EspLog.instance
    esptool_log = _EsptoolLog(progress)
    log.set_logger(esptool_log)
    esp = None
    try:
        try:
            esp = connect_esp(port=port, chip="esp32", before="default-reset" if auto_reset else "no-reset",
                              connect_attempts=connect_attempts)
        except (FatalError, serial.SerialException, OSError) as exc:
            hint = ("hold BOOT, press and release EN, release BOOT, then run again with --flash-no-reset"
                    if auto_reset else "hold BOOT, press and release EN, release BOOT, and run again")
            raise ProvisionError(
                f"no ESP32 in download mode on {port}: {_first_line(exc)} ({hint}; check that nothing "
                "else uses the port)") from None
        try:
            chip = esp.get_chip_description()
            device_id = _device_id(esp.read_mac())
            if device_id and on_device_id is not None:
                on_device_id(device_id)
            if baud != esp._port.baudrate:
                esp.change_baud(baud)
            attach_flash(esp)
            write_flash(esp, [(FLASH_OFFSET, image.data)], flash_size="keep")
            reset_chip(esp, "hard-reset" if auto_reset else "soft-reset")
        except (FatalError, serial.SerialException, OSError) as exc:
            raise ProvisionError(
                f"writing {image.path.name} to the board on {port} failed: {_first_line(exc)}; the board may "
                "have no working firmware now: check the cable and run the same command again") from None
        return FlashResult(chip, device_id)
    finally:
        if esp is not None:
            try:
                esp._port.close()
            except Exception:  # the port may be gone with the board: closing is only tidying up
                pass
        if previous_logger is not None:
            EspLog.set_logger(previous_logger)
        else:
            EspLog._reset()


def wait_for_micropython(port: str, answer_timeout: float, wait_s: float = REPL_WAIT_S) -> None:
    """Wait until the freshly flashed MicroPython answers in the raw REPL on `port`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            Board.connect(port, answer_timeout).close()
            return
        except ProvisionError as exc:
            if time.monotonic() >= deadline:
                raise ProvisionError(
                    f"MicroPython did not start on {port} after flashing ({exc}); press EN (reset) on the board "
                    "and run the same command again without --flash") from None
            time.sleep(0.5)


def flash_step(port: str, image_path: str, auto_reset: bool, answer_timeout: float, progress: Progress,
               record, dry_run: bool = False, any_image: bool = False) -> None:
    """The `flash` and `MicroPython starts` steps of `provision device --flash`, filling in the record.

    Only a release of the production image is written (its sha256 listed in firmware/image/image.json),
    unless `any_image` (a bench board)."""
    with progress.step("flash") as step:
        image = read_image(Path(image_path))
        release = supported_images.check_flash_image(image.sha256, image.path.name, any_image)
        if dry_run:
            step.skip(f"dry run: {image.path.name} is an ESP32 image ({len(image.data)} bytes), not written")
            return
        record.flashed_image = f"{image.path.name} sha256 {image.sha256}"  # written from here on, maybe in part
        result = flash_micropython(port, image, progress, auto_reset=auto_reset,
                                   on_device_id=lambda device_id: setattr(record, "device_id", device_id))
        step.detail = (f"{image.path.name} ({len(image.data)} bytes, sha256 {image.sha256[:12]}, {release}) "
                       f"written at 0x{FLASH_OFFSET:X} and verified, {result.chip}")
    with progress.step("MicroPython starts") as step:
        wait_for_micropython(port, answer_timeout)
        step.detail = f"the REPL answers on {port}"


def _device_id(mac: tuple[int, ...]) -> str | None:
    try:
        return identity.device_id_from_mac(":".join(f"{b:02x}" for b in mac))
    except ProtocolError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
