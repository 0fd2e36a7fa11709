"""The commands of `provision`: do_list and do_device (do_batch comes with the batch/offline work).

Each takes the parsed arguments and an output stream, returns the exit status, and raises
ProvisionError for anything the technician must know; main.py turns that into `provision: <message>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from firmware.lib.hold import HOLD_FILE
from protocol import identity
from protocol.errors import ProtocolError
from provisioning import device_check, flashing, fleet_registration, label, supported_images
from provisioning.device_config import DeviceCredentials, board_warnings, config_json, settings_from_arguments
from provisioning.errors import BoardFullError, ConnectionLostError, ProvisionError
from provisioning.image import MANAGED_DIRS, build_image, with_center_font
from provisioning.plan import CONFIG_PATH, MAIN_PATH, CopyPlan, make_plan, space_needed, top_level_paths
from provisioning.ports import serial_ports
from provisioning.progress import Progress, Step
from provisioning.records import (
    DEFAULT_RECORDS,
    ProvisioningRecord,
    append_record,
    check_records_writable,
    current_technician,
)
from provisioning.transport import Board, BoardInfo, RemoteFile

SUPPORTED_SYSNAMES = ("esp32",)  # os.uname().sysname of MicroPython on every ESP32 variant


def do_list(args: argparse.Namespace, out: TextIO, comports=None) -> int:
    """USB serial ports, ESP32-class boards first and marked; --probe asks each board who it is."""
    kwargs = {"extra": args.ports}
    if comports is not None:
        kwargs["comports"] = comports
    ports = serial_ports(**kwargs)
    if not ports:
        print("no serial ports found (is the board plugged in, and is its USB driver installed?)", file=out)
        return 0
    for port in ports:
        mark = "*" if port.is_esp32_class else " "
        kind = f"ESP32 board ({port.bridge})" if port.is_esp32_class else (port.description or "serial port")
        line = f"{mark} {port.device:<20} {port.usb_id:<10} {kind}"
        if args.probe and (port.is_esp32_class or port.device in args.ports):
            line += "  " + _probe(port.device, args.answer_timeout)
        print(line.rstrip(), file=out)
    print("* = USB serial bridge used on ESP32 boards", file=out)
    return 0


def _probe(port: str, answer_timeout: float) -> str:
    try:
        with Board.connect(port, answer_timeout) as board:
            info = board.info()
        return f"{identity.device_id_from_mac(info.mac)} MicroPython {info.version} ({info.machine})"
    except (ProvisionError, ProtocolError) as exc:
        return f"(not answering as MicroPython: {exc})"


# Credentials as long as any the fleet or a pack issues (user name up to 16, password 43, key 64 hex
# characters), with room to spare: config.json is never bigger than with these.
SPACE_PROBE = DeviceCredentials("d" * 24, "p" * 64, "0" * 64)


def _check_board(info: BoardInfo, port: str) -> str:
    if info.implementation != "micropython":
        raise ProvisionError(f"the board on {port} runs {info.implementation}, not MicroPython")
    if info.sysname not in SUPPORTED_SYSNAMES:
        raise ProvisionError(f"the board on {port} is a {info.sysname} ({info.machine}), not an ESP32")
    try:
        return identity.device_id_from_mac(info.mac)
    except ProtocolError as exc:
        raise ProvisionError(f"the board on {port} reports an unusable MAC: {exc}") from None


def do_device(args: argparse.Namespace, out: TextIO) -> int:
    """Set up one board for one window of one center (see provisioning/README.md for the steps)."""
    progress = Progress(out)
    record = ProvisioningRecord(
        technician=args.technician or current_technician(), port=args.port, center=args.center,
        window=args.window, role=args.role, board=args.board)
    records_path = Path(args.records) if args.records else DEFAULT_RECORDS
    board: Board | None = None
    held = False  # the board's firmware is held (firmware/lib/hold.py) until the end of this run
    try:
        with progress.step("arguments") as step:
            check_records_writable(records_path)
            _fleet_options(args, records_path)  # an http:// fleet or a missing token: refused before any change
            settings = settings_from_arguments(
                args.center, args.window, args.role, args.board, args.broker, args.wifi_ssid,
                args.wifi_password, Path(args.site) if args.site else None)
            record.board = settings.board
            step.detail = (f"center {settings.center} window {settings.window}, {settings.role} on "
                           f"{settings.board}, broker {settings.broker_host}:{settings.broker_port}")
        for warning in board_warnings(settings.board):
            progress.line(f"  ! board {settings.board}: {warning}")
        with progress.step("build") as step:
            image = build_image(settings.role, settings.board)
            if args.center_config:
                image = with_center_font(image, Path(args.center_config))
            record.image_sha256 = image.sha256
            step.detail = f"{len(image.files)} files, {image.size} bytes, image {image.sha256[:12]}"
        if args.flash:
            flashing.flash_step(args.port, args.flash, not args.flash_no_reset, args.answer_timeout, progress,
                                record, dry_run=args.dry_run, any_image=getattr(args, "any_image", False))
        with progress.step("board") as step:
            board = Board.connect(args.port, args.answer_timeout)
            info = board.info()
            record.micropython = f"{info.version} {info.machine}"
            device_id = _check_board(info, args.port)
            record.device_id = device_id
            running = supported_images.check_running_image(info.version, info.machine, info.heap_bytes,
                                                           settings.role, args.port)
            if running.frozen:  # the firmware is in the board's image: only main.py, board.json and font.bin
                image = build_image(settings.role, settings.board, frozen=True)
                if args.center_config:
                    image = with_center_font(image, Path(args.center_config))
                record.image_sha256 = image.sha256
            step.detail = (f"{device_id}, MicroPython {info.version} on {info.machine} ({running.kind} image, "
                           f"{info.heap_bytes // 1024} KB heap), {args.port}")
            on_board = board.sha256_tree(list(MANAGED_DIRS), top_level_paths(image))
            # Before the fleet is asked (it may rotate the device's credentials): will the image fit at all?
            _check_space(make_plan(image, config_json(settings, SPACE_PROBE), on_board), on_board, info)
        if not args.dry_run:  # a dry run only reads, in far less than the watchdog's 30 s
            with progress.step("stop firmware") as step:
                board.hold_firmware(HOLD_FILE)
                held = True
                step.detail = (f"{HOLD_FILE} written and the board reset: its firmware and watchdog stay off "
                               "until the end")
        with progress.step("fleet registration") as step:
            credentials = _register(args, record, records_path, settings, info.mac, step, board)
        config = config_json(settings, credentials)
        with progress.step("compare") as step:
            plan = make_plan(image, config, on_board)
            step.detail = (f"{len(plan.copy)} of {plan.total} files to copy ({plan.bytes_to_copy} bytes), "
                           f"{len(plan.remove)} to remove")
        with progress.step("space") as step:
            needed = _check_space(plan, on_board, info)
            step.detail = f"{needed} bytes needed, {info.free_bytes} free"
        if args.dry_run:
            for path in plan.remove:
                progress.line(f"  would remove {path}")
            for item in plan.copy:
                progress.line(f"  would copy {item.device_path} ({len(item.data)} bytes)")
            record.outcome = "dry-run"
            progress.line(f"dry run: {device_id} left unchanged")
            return 0
        if plan.remove:
            with progress.step("remove") as step:
                for path in plan.remove:
                    board.remove(path)
                    record.files_removed += 1
                step.detail = f"{len(plan.remove)} files: " + _names(plan.remove)
        with progress.step("copy") as step:
            try:
                _copy(board, plan.copy, record, progress)
            except BoardFullError as exc:
                step.detail = f"{record.files_copied} of {len(plan.copy)} files"
                raise BoardFullError(
                    f"{exc}: {record.files_copied} of {len(plan.copy)} files were copied and the partial file "
                    "was removed; /main.py is not on the board, so it will not start a half-updated firmware. "
                    "Free space on the board (or use one with a bigger filesystem) and run again") from None
            except ConnectionLostError as exc:
                step.detail = f"{record.files_copied} of {len(plan.copy)} files"
                raise ConnectionLostError(
                    f"{exc}. {record.files_copied} of {len(plan.copy)} files were copied, none is half-written "
                    "under its real name, and /main.py is not on the board yet: plug it back in and run the "
                    "same command again, it copies only what is missing") from None
            step.detail = f"{record.files_copied} files, {record.bytes_copied} bytes"
            if plan.copy:
                step.detail += ": " + _names([item.device_path for item in plan.copy])
        with progress.step("firmware loads") as step:
            module = f"firmware.{settings.role}.app"
            board.exec(f"import {module}", f"importing {module} on the board")
            step.detail = f"import {module} works under the board's MicroPython"
        with progress.step("soft reset") as step:
            board.soft_reset()
            for path, data in ((CONFIG_PATH, config), (MAIN_PATH, image.by_path()[MAIN_PATH].data)):
                if board.sha256(path) != _sha256(data):
                    raise ProvisionError(f"{path} on the board is not what was written, after the soft reset")
            board.release_hold(HOLD_FILE)
            held = False
            step.detail = f"the board answers again, config.json and main.py intact, {HOLD_FILE} removed"
        record.after_reset = device_check.restart_and_check(
            board, device_id, settings, credentials, progress, args.online_timeout, args.self_test_time,
            check=not args.no_check)
        record.outcome = "ok"
        progress.line(f"{device_id} is set up for center {settings.center} window {settings.window} "
                      f"({settings.role}): {record.files_copied} files copied, {record.files_removed} removed")
        if args.label_printer is not None:
            label.label_step(args.label_printer, device_id, settings.center, settings.window, settings.role,
                             progress, record)
        return 0
    except ProvisionError as exc:
        record.outcome = "failed"
        if held and board is not None:
            _release_after_failure(board)
        if record.device_id and record.device_id not in str(exc):
            exc = type(exc)(f"{record.device_id}: {exc}")  # errors carry the device id once it is known
        record.error = str(exc)
        raise exc from None
    except KeyboardInterrupt:
        record.outcome = "interrupted"
        if held and board is not None:
            _release_after_failure(board)
        raise
    finally:
        if board is not None:
            board.close()
        try:
            append_record(record, records_path)
        except OSError as exc:  # checked writable at the start: the disk filled up or the folder went away
            print(f"provision: warning: this run is not recorded in {records_path}: {exc.strerror or exc}",
                  file=sys.stderr, flush=True)


def _release_after_failure(board: Board) -> None:
    """Best effort after a failed run: no hold left behind, and the board restarted, so it runs whatever
    firmware it has (all of the old one when nothing was copied; none when /main.py was removed for the
    update, as before). Impossible when the cable is gone: the board then stays at the REPL, held, until
    the next run."""
    try:
        board.release_hold(HOLD_FILE)
        board.hard_reset()
    except ProvisionError:
        pass


def _check_space(plan: CopyPlan, on_board: dict[str, RemoteFile], info: BoardInfo) -> int:
    """The bytes the copy needs; BoardFullError when the board does not have them."""
    needed = space_needed(plan, on_board, info.block_bytes)
    if needed > info.free_bytes:
        raise BoardFullError(
            f"the board's filesystem is too small for this image: it needs {needed} bytes free and has "
            f"{info.free_bytes} (of {info.total_bytes}); nothing was copied. Remove other files from the "
            "board, or use a board with a bigger filesystem")
    return needed


def _fleet_options(args: argparse.Namespace, records_path: Path) -> fleet_registration.FleetOptions:
    return fleet_registration.options_from_arguments(getattr(args, "fleet", None), getattr(args, "token", None),
                                                     getattr(args, "pack", None), records_path,
                                                     getattr(args, "insecure", False))


def _register(args: argparse.Namespace, record: ProvisioningRecord, records_path: Path,
              settings: fleet_registration.DeviceSettings, mac: str, step: Step,
              board: Board) -> fleet_registration.DeviceCredentials | None:
    """The registration step: online, from a credential pack, or none (see fleet_registration).

    Online, the credentials the board already holds are offered to the fleet to be kept (a rerun then
    changes nothing); --new-credentials never offers them, so the fleet rotates them."""
    if args.dry_run:
        record.fleet_registration = "dry run: not registered"
        step.skip("dry run: not registered (a dry run never asks the fleet)")
        return None
    options = _fleet_options(args, records_path)
    facts = fleet_registration.device_facts(record.device_id or "", mac, settings, record.image_sha256 or "",
                                            record.technician)
    held, none_held = None, "--new-credentials"
    if options.url is not None and not getattr(args, "new_credentials", False):
        held = fleet_registration.held_credentials(board.read_file_if_exists(CONFIG_PATH), record.device_id or "")
        none_held = "no credentials on the board to keep"
    registration = fleet_registration.register(options, facts, held, none_held)
    record.fleet_registration = registration.outcome
    if registration.credentials is None:
        step.skip(fleet_registration.NO_FLEET)
    else:
        step.detail = registration.outcome
    return registration.credentials


def _copy(board: Board, files, record: ProvisioningRecord, progress: Progress) -> None:
    made: set[str] = set()
    for number, item in enumerate(files, 1):
        progress.status(f"copy {number}/{len(files)}: {item.device_path}")
        folder = item.device_path.rsplit("/", 1)[0]
        if folder and folder not in made:
            board.makedirs(folder)
            made.add(folder)
        board.write_file(item.device_path, item.data)
        record.files_copied += 1
        record.bytes_copied += len(item.data)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _names(paths: list[str] | tuple[str, ...], limit: int = 4) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
