"""The board firmware type-checks against the MicroPython ESP32 stubs (mypy + micropython-esp32-stubs).

Settings are [tool.mypy] in pyproject.toml. What depends on where the venv is
comes from here: the stubs' typeshed (micropython-stdlib-stubs, so `time`,
`asyncio`, `os` are MicroPython's, e.g. time.ticks_ms exists and
time.monotonic does not) and a folder of links to the board modules
(`machine`, `network`, ... of micropython-esp32-stubs, which mypy does not find
in site-packages by itself).

Also runnable on its own (`make lint` does): python tests/firmware/test_fw_typecheck.py
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUBS = "micropython-esp32-stubs"
STDLIB_STUBS = "micropython-stdlib-stubs"


def _site(dist: str) -> Path:
    return Path(str(importlib.metadata.distribution(dist).locate_file("")))


def board_stub_dir(target: Path) -> Path:
    """Links to every top-level module of the ESP32 stubs (and their helper package) in `target`."""
    target.mkdir(parents=True, exist_ok=True)
    names = {str(f).split("/")[0] for f in importlib.metadata.distribution(STUBS).files or []}
    names = {n for n in names if n.endswith(".pyi") or (n.isidentifier() and not n.endswith(".dist-info"))}
    names.add("_mpy_shed")
    for name in sorted(names):
        source = _site(STUBS) / name
        if not source.exists():
            source = _site(STDLIB_STUBS) / name
        link = target / name
        if source.exists() and not link.exists():
            link.symlink_to(source)
    return target


def run_mypy(stub_dir: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    typeshed = _site(STDLIB_STUBS)
    missing = f"no typeshed in {STDLIB_STUBS}: pip install -r requirements.txt"
    assert (typeshed / "stdlib" / "VERSIONS").exists(), missing
    env = {**os.environ, "MYPYPATH": str(stub_dir)}
    command = [sys.executable, "-m", "mypy", "--custom-typeshed-dir", str(typeshed), *paths]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_firmware_type_checks_against_the_esp32_stubs(tmp_path: Path) -> None:
    result = run_mypy(board_stub_dir(tmp_path / "stubs"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_the_check_sees_micropython_and_not_cpython(tmp_path: Path) -> None:
    # A check that cannot fail proves nothing: misuses of the board API and CPython-only calls must be caught.
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text(
        "import time\n"
        "import machine\n"
        "def f():\n"
        "    machine.WDT(timeout='30s')\n"  # wrong type for the board's watchdog
        "    return time.monotonic()\n"  # CPython only
        "def g():\n"
        "    return time.ticks_diff(time.ticks_ms(), time.ticks_ms()) + machine.freq()\n",  # fine on a board
        encoding="utf-8",
    )
    result = run_mypy(board_stub_dir(tmp_path / "stubs"), "--config-file", str(ROOT / "pyproject.toml"),
                      str(package / "bad.py"))
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout
    assert any("bad.py:4:" in e for e in errors) and any("monotonic" in e for e in errors)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        completed = run_mypy(board_stub_dir(Path(folder)))
        print((completed.stdout + completed.stderr).strip())
        sys.exit(completed.returncode)
