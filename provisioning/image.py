"""The firmware image of one role: every file that goes on the board, compiled, with its device path.

Layout on the board (firmware/README.md, "On the device"):

    /main.py                       firmware/<role>/main.py, as source (MicroPython runs main.py, not .mpy)
    /board.json                    hardware/boards/<board>.json
    /lib/protocol/*.mpy            protocol/*.py
    /lib/firmware/__init__.mpy
    /lib/firmware/lib/*.mpy        firmware/lib/*.py, and its data files (default_font.bin)
    /lib/firmware/drivers/*.mpy    firmware/drivers/*.py
    /lib/firmware/<role>/*.mpy     the role's package (but main.py)
    /font.bin                      firmware/fonts/board_font.bin: all of GB2312 and the firmware's texts, read
                                   before the small default font (firmware/lib/font.py); with --center-config
                                   the same plus the center's own names (tools/make_font.py --board)

On a board running the production image (firmware/image/: protocol/ and firmware/ frozen into flash,
provisioning/supported_images.py) only what is not frozen goes on the board: /main.py, /board.json and
the font as /font.bin (a frozen module has no folder for data files beside it); anything left under
/lib/protocol and /lib/firmware from a stock image is removed, as it would never be imported.

Files are compiled with mpy-cross as portable bytecode (no -march: the firmware has no native code, so
one image runs on every ESP32 variant) into a cache keyed by the source's hash, so a rerun compiles
nothing. The image hash is the sha256 over the sorted (path, sha256) pairs: the same sources give the
same hash on every laptop.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from firmware.lib import font
from provisioning.errors import ProvisionError

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / "build" / "provisioning" / "mpy-cache"
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = {".pyc", ".md"}
# Files that run on CPython only (firmware/README.md, "Layout"): never shipped to a board.
CPYTHON_ONLY = {"firmware/lib/framebuf_compat.py"}
MANAGED_DIRS = ("/lib/protocol", "/lib/firmware")  # everything under these belongs to the image
COMPILE_WORKERS = 2
FONT_PATH = "/font.bin"  # firmware/lib/font.py: a center's own font at /font.bin wins over the default


@dataclass(frozen=True)
class ImageFile:
    device_path: str  # /lib/firmware/lib/mqtt.mpy
    source: str  # firmware/lib/mqtt.py (relative to the repository)
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Image:
    role: str
    board: str
    files: tuple[ImageFile, ...]

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for item in sorted(self.files, key=lambda f: f.device_path):
            digest.update(f"{item.device_path}\0{item.sha256}\n".encode())
        return digest.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(item.data) for item in self.files)

    def by_path(self) -> dict[str, ImageFile]:
        return {item.device_path: item for item in self.files}


def _mpy_cross() -> str:
    from tools.compile_firmware import MpyCrossMissing, find_mpy_cross

    try:
        return find_mpy_cross()
    except MpyCrossMissing as exc:
        raise ProvisionError(str(exc)) from None


def _mpy_cross_version(mpy_cross: str) -> str:
    result = subprocess.run([mpy_cross, "--version"], capture_output=True, text=True, timeout=30)
    return result.stdout.strip() or result.stderr.strip()


def compile_source(mpy_cross: str, version: str, repo: Path, rel: str, cache_dir: Path) -> bytes:
    """The .mpy of repo/rel, from the cache when the same source was compiled by the same mpy-cross."""
    from tools.compile_firmware import compiler_message

    source = (repo / rel).read_bytes()
    key = hashlib.sha256(f"{version}\0{rel}\0".encode() + source).hexdigest()
    cached = cache_dir / f"{key}.mpy"
    if cached.exists():
        return cached.read_bytes()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"{key}.{os.getpid()}.{threading.get_ident()}.part"  # no clash between runs
    result = subprocess.run([mpy_cross, "-o", str(partial), "-s", rel, str(repo / rel)],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        line, message = compiler_message(result.stderr, result.stdout)
        where = f"{rel}:{line}" if line else rel
        raise ProvisionError(f"mpy-cross cannot compile {where}: {message}")
    partial.replace(cached)
    return cached.read_bytes()


def _package_files(repo: Path, folder: str, skip: set[str] = frozenset()) -> list[str]:
    """Relative paths of the files of a package folder, recursively, without caches and docs."""
    root = repo / folder
    if not root.is_dir():
        raise ProvisionError(f"{folder}/ is missing from {repo}")
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part in SKIP_DIRS for part in path.parts):
            continue
        rel = path.relative_to(repo).as_posix()
        if path.suffix in SKIP_SUFFIXES or rel in CPYTHON_ONLY or rel in skip:
            continue
        found.append(rel)
    return found


DEFAULT_FONT = "firmware/lib/default_font.bin"
# Every board gets it: a new staff name or service shows without a visit (tools/make_font.py, --board).
BOARD_FONT = Path(font.board_font_path()).resolve().relative_to(REPO).as_posix()


def plan_sources(role: str, board: str | None, repo: Path = REPO,
                 frozen: bool = False) -> list[tuple[str, str, bool]]:
    """[(device path, source relative to repo, compile?)] of the image of `role`; `frozen`: for a board
    whose MicroPython image has protocol/ and firmware/ frozen in."""
    main = f"firmware/{role}/main.py"
    entries = [("/main.py", main, False)]
    if board is not None:
        entries.append(("/board.json", f"hardware/boards/{board}.json", False))
    entries.append((FONT_PATH, BOARD_FONT, False))
    if frozen:
        return entries
    entries.append(("/lib/firmware/__init__.mpy", "firmware/__init__.py", True))
    for folder in ("protocol", "firmware/lib", "firmware/drivers", f"firmware/{role}"):
        for rel in _package_files(repo, folder, skip={main}):
            device = "/lib/" + rel
            if rel.endswith(".py"):
                entries.append((device[:-3] + ".mpy", rel, True))
            else:
                entries.append((device, rel, False))
    return entries


def build_image(role: str, board: str | None, repo: Path = REPO, cache_dir: Path = CACHE_DIR,
                frozen: bool = False) -> Image:
    """Compile the image of `role` (with the definition of `board`, if any); `frozen`: see plan_sources."""
    entries = plan_sources(role, board, repo, frozen)
    for _, rel, _ in entries:
        if not (repo / rel).is_file():
            raise ProvisionError(f"{rel} is missing from {repo}")
    mpy_cross = _mpy_cross()
    version = _mpy_cross_version(mpy_cross)

    def load(entry: tuple[str, str, bool]) -> ImageFile:
        device, rel, compiled = entry
        data = compile_source(mpy_cross, version, repo, rel, cache_dir) if compiled else (repo / rel).read_bytes()
        return ImageFile(device, rel, data)

    with ThreadPoolExecutor(max_workers=COMPILE_WORKERS) as pool:
        files = tuple(pool.map(load, entries))
    return Image(role, board or "", files)




def with_center_font(image: Image, center_config: Path) -> Image:
    """The image with its /font.bin made for this center: the board font (all of GB2312 and the firmware's texts)
    plus the center's own names, for a name with a character beyond GB2312 (tools/make_font.py).
    """
    from tools import make_font

    try:
        data, missing = make_font.make_font(make_font.default_texts(center_config, board=True))
    except (make_font.FontBuildError, OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ProvisionError(f"--center-config {center_config}: cannot build the center's font: {exc}") from None
    if missing:
        raise ProvisionError(f"--center-config {center_config}: the font has no glyph for "
                             + " ".join(f"{chr(code)} (U+{code:04X})" for code in missing))
    others = tuple(item for item in image.files if item.device_path != FONT_PATH)  # the board font it replaces
    return Image(image.role, image.board, others + (ImageFile(FONT_PATH, str(center_config), data),))
