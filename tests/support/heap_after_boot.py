"""The heap a device uses after boot, on MicroPython's 32-bit WebAssembly port: `make bench` prints it and
tests/firmware/test_fw_heap.py holds it under a budget.

The board's files are the role's provisioning image (provisioning.image: the .mpy files, main.py, the
board definition) plus a config.json, laid out as on a board; heap_after_boot.mjs runs the real main.py's
main() on them with stand-ins for `machine` and `network` until the event loop would start. Modules loaded
from .mpy keep their bytecode on the heap, as on a board running a stock MicroPython image; in the
production image (firmware/image/) they are frozen into flash instead.
"""

from __future__ import annotations

import ast
import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from provisioning.image import build_image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("heap_after_boot.mjs")
WASM_PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
HEAP_BYTES = 4 * 1024 * 1024  # room enough to measure; what a board has is the budget's business
BOARDS = {"queue_display": "esp32-devkitc-max7219", "rating_pad": "esp32-devkitc-ssd1306"}


@dataclass(frozen=True)
class HeapAfterBoot:
    role: str
    heap_bytes: int
    baseline: int  # the interpreter alone
    after_imports: int  # with every module main() imports
    after_boot: int  # and the panel driver, font, app and runtime main() builds

    @property
    def modules(self) -> int:
        return self.after_imports - self.baseline

    @property
    def objects(self) -> int:
        return self.after_boot - self.after_imports

    @property
    def firmware(self) -> int:
        """What the firmware takes: modules and objects, without the interpreter's own."""
        return self.after_boot - self.baseline


def available() -> str | None:
    """Why the measurement cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not WASM_PACKAGE.exists():
        return f"{WASM_PACKAGE} is missing: run npm install"
    return None


def main_imports(role: str) -> list[str]:
    """The modules the role's main.py imports in main(), in order (its imports, not a copy of them)."""
    tree = ast.parse((ROOT / "firmware" / role / "main.py").read_text(encoding="utf-8"))
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    names: list[str] = []
    for node in ast.walk(main):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                name = candidate if _is_module(candidate) else node.module
                if name not in names:
                    names.append(name)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names if alias.name not in names)
    return names


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def board_files(role: str) -> dict[str, bytes]:
    """The role's provisioning image and a config.json, by path on the board."""
    board = BOARDS[role]
    files = {item.device_path: item.data for item in build_image(role, board).files}
    files["/config.json"] = json.dumps({
        "center": "445202101001", "window": 3, "role": role, "board": board,
        "broker": {"host": "192.168.10.2", "port": 1883, "username": "dev-020000000042", "password": "p" * 43},
        "wifi": {"ssid": "center-devices", "password": "s3cret"}, "device_key": "0" * 64,
    }).encode()
    return files


def measure(role: str, heap_bytes: int = HEAP_BYTES) -> HeapAfterBoot:
    request = {"files": {path: base64.b64encode(data).decode() for path, data in board_files(role).items()},
               "modules": main_imports(role), "heap_bytes": heap_bytes}
    result = subprocess.run(["node", str(SCRIPT)], input=json.dumps(request), capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"heap_after_boot.mjs failed for {role}: {result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["started"] != 1:
        raise RuntimeError(f"{role}: main() did not reach the event loop: {figures['log']}")
    return HeapAfterBoot(role, figures["heap_bytes"], figures["baseline"], figures["after_imports"],
                         figures["after_boot"])
