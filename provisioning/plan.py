"""What has to change on a board: the files to copy, the files to remove, and whether they fit.

Pure: from the image, the config.json bytes and what the board holds (path -> sha256, size).

Order of work, so that a run cut short at any point leaves a board that either runs the complete new
image or runs nothing (sits in the REPL until the next run):
1. /main.py is removed first whenever anything changes, so a half-updated board does not boot;
2. stale files are removed (files of an older image, another role, temp files of an interrupted run:
   an old module.py would shadow the new module.mpy, as MicroPython imports .py first);
3. the library files and config.json are copied, each atomically (temp name, then rename);
4. /main.py is written last.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from provisioning.image import MANAGED_DIRS, Image
from provisioning.transport import TMP_SUFFIX, RemoteFile

CONFIG_PATH = "/config.json"
MAIN_PATH = "/main.py"
# An over-the-air update's record of what boots (firmware/lib/otaboot.py: a bundle kept or on trial in
# /state/ota/a or b). The files provisioning copies must be the ones that run, so the record goes; the slots
# stay (the next update wipes or reuses them).
OTA_BOOT_FILES = ("/state/ota/boot.json", "/state/ota/boot.json.tmp")


@dataclass(frozen=True)
class PlannedFile:
    device_path: str
    data: bytes


@dataclass(frozen=True)
class CopyPlan:
    copy: tuple[PlannedFile, ...]  # in the order they are written; /main.py last
    remove: tuple[str, ...]  # in the order they are removed; /main.py first when it is rewritten
    unchanged: int
    total: int  # files in the image plus config.json

    @property
    def bytes_to_copy(self) -> int:
        return sum(len(item.data) for item in self.copy)

    @property
    def nothing_to_do(self) -> bool:
        return not self.copy and not self.remove


def wanted_files(image: Image, config: bytes) -> dict[str, bytes]:
    files = {item.device_path: item.data for item in image.files}
    files[CONFIG_PATH] = config
    return files


def top_level_paths(image: Image) -> list[str]:
    """Files outside the managed folders that the image writes (their temp names are checked too)."""
    paths = [item.device_path for item in image.files if not _managed(item.device_path)] + [CONFIG_PATH]
    return paths + [path + TMP_SUFFIX for path in paths] + list(OTA_BOOT_FILES)


def _managed(path: str) -> bool:
    return any(path == folder or path.startswith(folder + "/") for folder in MANAGED_DIRS)


def make_plan(image: Image, config: bytes, on_board: dict[str, RemoteFile]) -> CopyPlan:
    wanted = wanted_files(image, config)
    changed = [path for path, data in wanted.items()
               if path not in on_board or on_board[path].sha256 != hashlib.sha256(data).hexdigest()]
    stale = sorted(path for path in on_board
                   if path not in wanted and (_managed(path) or path.endswith(TMP_SUFFIX) or path in OTA_BOOT_FILES))
    remove: list[str] = []
    if (changed or stale) and MAIN_PATH in wanted:
        if MAIN_PATH in on_board:
            remove.append(MAIN_PATH)
        if MAIN_PATH not in changed:
            changed.append(MAIN_PATH)  # removed above, so written again at the end
    remove.extend(stale)
    library = sorted(path for path in changed if path not in (MAIN_PATH, CONFIG_PATH))
    order = library + [path for path in (CONFIG_PATH, MAIN_PATH) if path in changed]
    copy = tuple(PlannedFile(path, wanted[path]) for path in order)
    return CopyPlan(copy, tuple(remove), len(wanted) - len(set(changed)), len(wanted))


def _blocks(size: int, block: int) -> int:
    """Bytes a file of `size` takes on a filesystem that allocates whole blocks (at least one)."""
    return max(1, -(-size // block)) * block


def space_needed(plan: CopyPlan, on_board: dict[str, RemoteFile], block_bytes: int) -> int:
    """The most free space the plan needs at any moment, in bytes (whole blocks per file).

    Stale files are removed first; each file is then written beside its old version (temp name, then
    rename), so for a moment both exist.
    """
    block = max(1, block_bytes)
    balance = 0  # free space gained (+) or used (-) so far
    lowest = 0
    for path in plan.remove:
        if path in on_board:
            balance += _blocks(on_board[path].size, block)
    for item in plan.copy:
        balance -= _blocks(len(item.data), block)
        lowest = min(lowest, balance)
        old = on_board.get(item.device_path)
        if old is not None and item.device_path not in plan.remove:
            balance += _blocks(old.size, block)
    return -lowest
