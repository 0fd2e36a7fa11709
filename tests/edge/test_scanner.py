"""The barcode/QR scanner adapter: lines from a pseudo-terminal, as a USB-serial scanner sends them."""

from __future__ import annotations

import os
import tty
from collections.abc import Iterator

import pytest

from edge_agent.adapters.scanner import (
    MAX_CODE_BYTES,
    BarcodeScanner,
    LineSplitter,
    ScannerConfig,
    parse_scanner_config,
)
from tests.support.loop import LoopThread
from tests.support.waiting import wait_until


class ScannerPty:
    """The scanner's side of the cable: whatever is written here arrives at the agent's port."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    with LoopThread() as loop:
        yield loop


def test_lines_are_split_on_any_terminator_and_decoded():
    splitter = LineSplitter()
    assert splitter.feed(b"ABC-123\r\nhttps://x.cn/q?a=1\n") == ["ABC-123", "https://x.cn/q?a=1"]
    assert splitter.feed(b"half") == []
    assert splitter.feed(b" done\r") == ["half done"]
    assert splitter.feed(b"\n\r\n") == []  # the LF of CR LF and empty lines are not codes
    assert splitter.feed("预约号 12".encode() + b"\r\n") == ["预约号 12"]
    assert splitter.feed("预约号 12".encode("gb18030") + b"\r\n") == ["预约号 12"]


def test_an_overlong_line_is_dropped_and_the_next_one_kept():
    splitter = LineSplitter()
    assert splitter.feed(b"x" * (MAX_CODE_BYTES + 10)) == []
    assert splitter.feed(b"tail\r\nNEXT\r\n") == ["NEXT"]
    assert splitter.overlong == 1


def test_scanned_codes_reach_the_callback_and_the_port_is_reopened(loop, tmp_path, caplog):
    codes: list[str] = []
    scanner_side = ScannerPty()
    scanner = BarcodeScanner(ScannerConfig(scanner_side.path), codes.append)
    scanner.reopen_after_s = 0.1
    loop.run(scanner.start())
    try:
        wait_until(lambda: scanner.health()["ok"], what="the port open")
        scanner_side.send(b"A-0001\r\n")
        scanner_side.send("身份证号 440524188001010014".encode() + b"\r\n")
        wait_until(lambda: len(codes) == 2, what="two codes")
        assert codes == ["A-0001", "身份证号 440524188001010014"]
        assert "440524188001010014" not in caplog.text  # codes are never logged
        assert scanner.health()["codes"] == 2
        scanner_side.unplug()
        wait_until(lambda: scanner.health()["state"] == "offline", what="offline after unplugging")
        assert scanner.health()["ok"] is False
    finally:
        loop.run(scanner.stop())
    assert scanner.health() == {**scanner.health(), "ok": False, "state": "stopped"}


def test_a_missing_port_is_offline_not_fatal(loop, tmp_path):
    scanner = BarcodeScanner(ScannerConfig(str(tmp_path / "ttyACM7")), print)
    loop.run(scanner.start())
    try:
        wait_until(lambda: scanner.health()["state"] == "offline", what="offline")
        assert "cannot open" in scanner.health()["last_error"]
    finally:
        loop.run(scanner.stop())


def test_config_problems_are_reported_with_their_path():
    problems: list[str] = []
    assert parse_scanner_config({"port": "", "baud": "fast"}, "peripherals.scanner", problems) is None
    assert problems == ["peripherals.scanner.port: the scanner's serial device is required, e.g. /dev/ttyACM0",
                        "peripherals.scanner.baud: must be one of 9600, 19200, 38400, 57600, 115200, got 'fast'"]
    assert parse_scanner_config({"port": "/dev/ttyACM0", "baud": 115200}, "s", []) == ScannerConfig(
        "/dev/ttyACM0", 115200)
