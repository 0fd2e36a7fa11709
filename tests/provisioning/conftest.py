"""Fixtures for the provisioning tests: virtual ESP32 boards (real MicroPython, WebAssembly port) on ptys."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioning.main import main
from provisioning.testing.virtual_board import VirtualBoard

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
CENTER = "445202101001"


@pytest.fixture
def board_factory() -> Iterator:
    started: list[VirtualBoard] = []

    def start(**options) -> VirtualBoard:
        board = VirtualBoard(**options).start()
        started.append(board)
        return board

    yield start
    for board in started:
        board.close()


@pytest.fixture
def board(board_factory) -> VirtualBoard:
    return board_factory()


@dataclass
class Run:
    status: int
    out: str
    err: str


@pytest.fixture
def provision(tmp_path: Path):
    """Run `provision` in this process (the same main() as the command line); records go to tmp_path."""
    records = tmp_path / "records.jsonl"

    def run(*argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        args = list(argv)
        if args and args[0] == "device" and "--records" not in args:
            args += ["--records", str(records)]
        status = main(args, out=out, err=err)
        return Run(status, out.getvalue(), err.getvalue())

    run.records = records
    run.read_records = lambda: [json.loads(line) for line in records.read_text().splitlines()]
    return run


def _device_args(port: str, *extra: str, role: str = "rating_pad", window: int = 3,
                 broker: str = "192.168.10.2:1883", check: bool = False) -> list[str]:
    """Without `check`, --no-check: the board is reset but nobody waits for its birth (no broker there)."""
    return ["device", "--port", port, "--role", role, "--center", CENTER, "--window", str(window),
            "--broker", broker, "--wifi-ssid", "center-devices", "--wifi-password", "s3cret",
            "--answer-timeout", "5", *extra, *(() if check else ("--no-check",))]


@pytest.fixture
def device_args():
    """`provision device` arguments for a rating pad at window 3 of the sample center, on `port`."""
    return _device_args
