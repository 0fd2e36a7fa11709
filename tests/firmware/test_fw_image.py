"""The production image's definition (firmware/image/): its manifest freezes exactly the modules a board
would otherwise load as .mpy, and its board folder, data and provisioning agree.

The image itself needs the ESP-IDF and cannot be built on these machines (firmware/README.md); the
manifest is run here as MicroPython's build runs it: Python with include(), package(), module() and
freeze() given, in its own folder.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from protocol import messages
from provisioning.image import plan_sources
from provisioning.supported_images import load

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "firmware" / "image"
SPEC = json.loads((IMAGE / "image.json").read_text(encoding="utf-8"))
BOARD_DIR = IMAGE / SPEC["board"]
BOARDS = {"queue_display": "esp32-devkitc-max7219", "rating_pad": "esp32-devkitc-ssd1306"}


def run_manifest(path: Path) -> tuple[set[str], list[str]]:
    """(frozen module paths, e.g. firmware/lib/mqtt.py; manifests included) of a manifest file."""
    frozen: set[str] = set()
    included: list[str] = []

    def resolve(base: str) -> Path:
        return Path(os.path.abspath(base))

    def package(package_path: str, files: list[str] | None = None, base_path: str = ".", opt: int | None = None):
        root = resolve(base_path)
        if files is None:
            files = [p.relative_to(root / package_path).as_posix() for p in (root / package_path).rglob("*.py")]
        for name in files:
            assert (root / package_path / name).is_file(), f"{package_path}/{name} does not exist"
            frozen.add(f"{package_path}/{name}")

    def module(module_path: str, base_path: str = ".", opt: int | None = None):
        assert (resolve(base_path) / module_path).is_file()
        frozen.add(module_path)

    def unused(*args, **kwargs):
        raise AssertionError(f"the manifest uses a function this check does not model: {args}")

    previous = os.getcwd()
    os.chdir(path.parent)
    try:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"),
             {"include": included.append, "package": package, "module": module, "freeze": unused,
              "require": unused, "metadata": unused})
    finally:
        os.chdir(previous)
    return frozen, included


def test_the_manifest_freezes_what_provisioning_would_copy_as_mpy_for_either_role() -> None:
    frozen, included = run_manifest(BOARD_DIR / "manifest.py")
    copied = {source for role, board in BOARDS.items() for _, source, compiled in plan_sources(role, board)
              if compiled}
    assert frozen == copied
    assert "firmware/lib/framebuf_compat.py" not in frozen and not any(p.startswith("firmware/sim/") for p in frozen)
    assert not any(p.endswith("/main.py") for p in frozen)  # the role's main.py stays the board's /main.py
    assert included == ["$(PORT_DIR)/boards/manifest.py"]  # asyncio and the port's own modules


def test_the_board_folder_is_the_pinned_esp32_generic_spiram_with_our_manifest_and_name() -> None:
    cmake = (BOARD_DIR / "mpconfigboard.cmake").read_text(encoding="utf-8")
    assert "boards/sdkconfig.spiram" in cmake and "set(IDF_TARGET esp32)" in cmake
    assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in cmake
    header = (BOARD_DIR / "mpconfigboard.h").read_text(encoding="utf-8")
    name = re.search(r'MICROPY_HW_BOARD_NAME "([^"]+)"', header).group(1)
    mcu = re.search(r'MICROPY_HW_MCU_NAME "([^"]+)"', header).group(1)
    assert f"{name} with {mcu}" == SPEC["machine"] == load()["machine"]  # what provisioning expects on the board
    assert "SPIRAM" in name
    assert "CONFIG_APP_REPRODUCIBLE_BUILD=y" in (BOARD_DIR / "sdkconfig.board").read_text(encoding="utf-8")


def test_the_image_data_pins_one_release_and_says_what_each_role_needs() -> None:
    version = SPEC["micropython"]["version"]
    assert SPEC["micropython"]["tag"] == f"v{version}" and len(SPEC["micropython"]["commit"]) == 40
    assert SPEC["esp_idf"]["container"] == f"espressif/idf:{SPEC['esp_idf']['version']}"
    assert set(SPEC["roles"]) == set(messages.DEVICE_ROLES)
    for role in SPEC["roles"].values():
        assert isinstance(role["needs_spiram"], bool) and role["why"]
    assert all(stock["version"] == version for stock in SPEC["stock_images"])
    for release in SPEC["releases"]:
        assert re.fullmatch(r"[0-9a-f]{64}", release["sha256"])
    readme = (ROOT / "firmware" / "README.md").read_text(encoding="utf-8")
    for pinned in (SPEC["micropython"]["tag"], SPEC["micropython"]["commit"], SPEC["esp_idf"]["container"],
                   str(SPEC["micropython"]["source_date_epoch"])):
        assert pinned in readme, f"the build recipe in firmware/README.md does not say {pinned}"
