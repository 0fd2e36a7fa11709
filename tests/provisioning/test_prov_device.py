"""`provision device` against a virtual ESP32 running real MicroPython, through mpremote's SerialTransport."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tty
from pathlib import Path

import pytest

from provisioning.image import build_image
from provisioning.records import ProvisioningRecord, append_record, read_records
from provisioning.testing.virtual_board import VirtualBoard

REPO = Path(__file__).resolve().parents[2]
RATING_PAD_BOARD = "esp32-devkitc-ssd1306"


def copied(out: str) -> int:
    match = re.search(r"^✓ copy: (\d+) files", out, re.MULTILINE)
    assert match, out
    return int(match.group(1))


def writes_since(board: VirtualBoard, start: int) -> int:
    """Files the board opened for writing since program number `start` (the board's own view)."""
    return sum(1 for program in board.programs[start:] if b"'wb')" in program)


def assert_board_holds_image(board: VirtualBoard, role: str = "rating_pad", board_name: str = RATING_PAD_BOARD):
    files = board.files()
    for item in build_image(role, board_name).files:
        assert files.get(item.device_path) == item.data, item.device_path
    assert not [path for path in files if path.endswith(".tmp")]


def assert_nothing_half_written(board: VirtualBoard) -> None:
    """Every image file on the board is complete; none stands half-written under its real name."""
    expected = build_image("rating_pad", RATING_PAD_BOARD).by_path()
    for path, data in board.files().items():
        if path in expected:
            assert data == expected[path].data, f"{path} is half-written"


def test_first_run_copies_the_image_and_a_rerun_copies_nothing(board, provision, device_args):
    first = provision(*device_args(board.port))
    assert first.status == 0, first.err
    image = build_image("rating_pad", RATING_PAD_BOARD)
    assert copied(first.out) == len(image.files) + 1  # and config.json
    assert_board_holds_image(board)
    config = json.loads(board.files()["/config.json"])
    assert config == {
        "center": "445202101001", "window": 3, "role": "rating_pad", "board": RATING_PAD_BOARD,
        "broker": {"host": "192.168.10.2", "port": 1883, "username": None, "password": None},
        "wifi": {"ssid": "center-devices", "password": "s3cret"},
        "health_interval_s": 30, "keepalive_s": 30, "device_key": None,
    }
    assert "- fleet registration: no fleet given" in first.out
    assert "✓ firmware loads: import firmware.rating_pad.app" in first.out
    assert "dev-a4cf12ab34cd is set up for center 445202101001 window 3" in first.out

    programs_before = len(board.programs)
    second = provision(*device_args(board.port))
    assert second.status == 0, second.err
    assert copied(second.out) == 0
    assert f"0 of {len(image.files) + 1} files to copy" in second.out
    assert writes_since(board, programs_before) == 0

    records = provision.read_records()
    assert [r["outcome"] for r in records] == ["ok", "ok"]
    assert {r["image_sha256"] for r in records} == {image.sha256}
    assert records[0]["device_id"] == "dev-a4cf12ab34cd" and records[0]["center"] == "445202101001"
    assert records[0]["technician"] and records[0]["files_copied"] == len(image.files) + 1
    assert records[1]["files_copied"] == 0
    assert "s3cret" not in provision.records.read_text()  # no secrets in the records


def test_every_line_of_progress_is_one_step(board, provision, device_args):
    result = provision(*device_args(board.port, "--technician", "李工"))
    steps = [line.split(":")[0] for line in result.out.splitlines()[:-1]]
    assert steps == ["✓ arguments", "✓ build", "✓ board", "✓ stop firmware", "- fleet registration", "✓ compare",
                     "✓ space", "✓ copy", "✓ firmware loads", "✓ soft reset", "✓ restart", "- online"]
    assert provision.read_records()[0]["technician"] == "李工"


def test_a_rerun_copies_only_what_changed_and_removes_stale_files(board, provision, device_args):
    assert provision(*device_args(board.port)).status == 0
    board.put_file("/lib/firmware/lib/mqtt.mpy", b"an older build")
    board.put_file("/lib/firmware/lib/mqtt.py", b"# would shadow mqtt.mpy")
    board.put_file("/lib/protocol/topics.mpy.tmp", b"left by an interrupted run")
    board.put_file("/config.json.tmp", b"{")
    board.put_file("/state/session", b"7")  # the firmware's own file: not ours to touch

    programs_before = len(board.programs)
    result = provision(*device_args(board.port))
    assert result.status == 0, result.err
    assert copied(result.out) == 2  # mqtt.mpy, and main.py (removed first while the board is updated)
    assert writes_since(board, programs_before) == 2
    assert "✓ remove: 4 files: /main.py, /config.json.tmp, /lib/firmware/lib/mqtt.py," in result.out
    assert_board_holds_image(board)
    files = board.files()
    assert "/lib/firmware/lib/mqtt.py" not in files and "/lib/protocol/topics.mpy.tmp" not in files
    assert files["/state/session"] == b"7"


def test_changing_the_role_replaces_the_role_package(board, provision, device_args):
    assert provision(*device_args(board.port)).status == 0
    result = provision(*device_args(board.port, role="queue_display", window=2))
    assert result.status == 0, result.err
    assert_board_holds_image(board, "queue_display", "esp32-devkitc-max7219")
    files = board.files()
    assert not [path for path in files if path.startswith("/lib/firmware/rating_pad/")]
    assert json.loads(files["/config.json"])["role"] == "queue_display"


def test_dry_run_compares_and_changes_nothing(board, provision, device_args):
    before = board.files()
    result = provision(*device_args(board.port, "--dry-run"))
    assert result.status == 0, result.err
    assert "  would copy /lib/firmware/lib/mqtt.mpy" in result.out
    assert "dry run: dev-a4cf12ab34cd left unchanged" in result.out
    assert board.files() == before
    assert provision.read_records()[0]["outcome"] == "dry-run"


# ----- errors: clear, exit 1, recorded, and nothing left half done -----

def test_wrong_port(provision, device_args):
    result = provision(*device_args("/dev/ttyUSB-nothing-here"))
    assert result.status == 1
    assert result.err == ("provision: no such port /dev/ttyUSB-nothing-here (`provision list` shows the boards "
                          "plugged in)\n")
    record = provision.read_records()[0]
    assert (record["outcome"], record["device_id"]) == ("failed", None)
    assert record["image_sha256"], "the image was built before the board was looked for"


@pytest.mark.parametrize(("change", "message"), [
    ({"--center": "44520210100"}, "--center: center code must be 12 digits"),
    ({"--window": "0"}, "--window: window must be an integer 1..999"),
    ({"--window": "three"}, "argument --window: invalid int value: 'three'"),
    ({"--role": "kiosk"}, "--role must be one of queue_display, rating_pad, got 'kiosk'"),
    ({"--board": "sim"}, "--board sim is the simulator's board"),
    ({"--board": "esp32-devkitc-max7219"}, "board esp32-devkitc-max7219 has no rating_pad"),
    ({"--board": "no-such-board"}, "--board no-such-board: board 'no-such-board' not found"),
    ({"--broker": "tech:pw@192.168.10.2:1883"}, "--broker must not carry a user name or password"),
    ({"--broker": "192.168.10.2:99999"}, "--broker: bad broker URL"),
    ({"--wifi-ssid": None}, "--wifi-ssid is required"),
])
def test_bad_arguments_are_refused_before_the_board_is_touched(board, provision, device_args, change, message):
    args = device_args(board.port)
    for option, value in change.items():
        if option in args:
            at = args.index(option)
            del args[at:at + 2]
        if value is not None:
            args += [option, value]
    result = provision(*args)
    assert result.status == 1
    assert result.err.startswith("provision: ") and message in result.err, result.err
    assert board.received_bytes == 0


def test_several_bad_arguments_are_reported_at_once(board, provision, device_args):
    args = device_args(board.port)
    args[args.index("--center") + 1] = "123"
    args[args.index("--window") + 1] = "1000"
    result = provision(*args)
    assert "--center:" in result.err and "--window:" in result.err


def test_a_missing_option_is_a_clear_error(provision):
    result = provision("device", "--role", "rating_pad")
    assert result.status == 1
    assert result.err.startswith("provision: the following arguments are required: --port, --center, --window")


@pytest.mark.parametrize(("firmware", "answer"), [("silent", "it answered nothing"),
                                                  ("garbage", "it answered b'")])
def test_a_board_not_running_micropython(board_factory, provision, device_args, firmware, answer):
    board = board_factory(firmware=firmware)
    result = provision(*device_args(board.port, "--answer-timeout", "1"))
    assert result.status == 1
    assert result.err.startswith(f"provision: no MicroPython REPL on {board.port}: {answer}")
    assert "is MicroPython flashed on the board" in result.err
    assert provision.read_records()[0]["outcome"] == "failed"


def test_a_full_filesystem_is_found_before_anything_is_copied(board, provision, device_args):
    board.set_free_bytes(20_000)
    result = provision(*device_args(board.port))
    assert result.status == 1
    assert result.err.startswith("provision: dev-a4cf12ab34cd: the board's filesystem is too small for this image:")
    assert "nothing was copied" in result.err
    assert set(board.files()) == {"/boot.py"}


def test_a_filesystem_that_fills_up_during_the_copy_keeps_no_partial_file(board, provision, device_args):
    total = len(build_image("rating_pad", RATING_PAD_BOARD).files) + 1  # and config.json
    board.set_free_bytes(30_000, statvfs_free=10_000_000)  # littlefs only estimates its free space
    result = provision(*device_args(board.port))
    assert result.status == 1
    assert "the board's filesystem is full" in result.err
    assert "the partial file was removed" in result.err and "/main.py is not on the board" in result.err
    files = board.files()
    assert "/main.py" not in files
    assert not [path for path in files if path.endswith(".tmp")]
    assert_nothing_half_written(board)
    record = provision.read_records()[0]
    assert record["outcome"] == "failed" and 0 < record["files_copied"] < total

    board.set_free_bytes(5_000_000)
    again = provision(*device_args(board.port))
    assert again.status == 0, again.err
    assert copied(again.out) == total - record["files_copied"]
    assert_board_holds_image(board)


def test_a_cable_pulled_mid_copy_leaves_no_half_written_file_and_a_rerun_completes(board, provision, device_args):
    image = build_image("rating_pad", RATING_PAD_BOARD)
    board.pull_cable(after_bytes=image.size // 2)  # the copy alone sends more than the image's size
    result = provision(*device_args(board.port))
    assert result.status == 1
    assert result.err.startswith(
        f"provision: dev-a4cf12ab34cd: lost the connection to the board on {board.port} while writing")
    assert "plug it back in and run the same command again" in result.err
    board.wait_unplugged()
    assert "/main.py" not in board.files()
    assert_nothing_half_written(board)
    failed = provision.read_records()[0]
    assert failed["outcome"] == "failed" and failed["device_id"] == "dev-a4cf12ab34cd"

    port = board.plug()
    again = provision(*device_args(port))
    assert again.status == 0, again.err
    assert copied(again.out) == len(image.files) + 1 - failed["files_copied"]
    assert_board_holds_image(board)


def test_the_command_line_entry_point(tmp_path: Path):
    records = tmp_path / "records.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "provisioning", "device", "--port", "/dev/ttyUSB-nothing-here", "--role",
         "rating_pad", "--center", "445202101001", "--window", "3", "--broker", "10.0.0.2:1883",
         "--wifi-ssid", "x", "--records", str(records)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("provision: no such port /dev/ttyUSB-nothing-here")
    assert "✗ board" in result.stdout
    assert json.loads(records.read_text())["outcome"] == "failed"


def test_a_killed_run_is_recorded_as_interrupted(tmp_path: Path):
    """SIGTERM (or a closed terminal's SIGHUP) mid-run: the board is let go and the run still recorded."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    records = tmp_path / "records.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "device", "--port", os.ttyname(slave), "--role", "rating_pad",
         "--center", "445202101001", "--window", "3", "--broker", "10.0.0.2:1883", "--wifi-ssid", "x",
         "--answer-timeout", "120", "--records", str(records)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Bytes on the port: the tool is talking to the "board" (which never answers), its handlers are set.
        ready, _, _ = select.select([master], [], [], 60)
        assert ready and os.read(master, 1024)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        os.close(master)
        os.close(slave)
    assert process.returncode == 1 and "provision: interrupted" in err, (out, err)
    assert json.loads(records.read_text())["outcome"] == "interrupted"


def test_records_that_cannot_be_written_stop_the_run_before_the_board_is_touched(board, provision, device_args,
                                                                                tmp_path: Path):
    before = board.files()
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    result = provision(*device_args(board.port, "--records", str(not_a_folder / "records.jsonl")))
    assert result.status == 1 and "cannot write the provisioning records" in result.err
    assert board.files() == before


def test_a_torn_line_in_the_records_is_skipped(tmp_path: Path):
    path = tmp_path / "records.jsonl"
    append_record(ProvisioningRecord("李工", "/dev/ttyUSB0", "445202101001", 3, "rating_pad", None), path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"technician": "李工", "po')  # the laptop lost power mid-write
    append_record(ProvisioningRecord("王工", "/dev/ttyUSB1", "445202101001", 4, "rating_pad", None), path)
    assert [r["technician"] for r in read_records(path)] == ["李工", "王工"]
