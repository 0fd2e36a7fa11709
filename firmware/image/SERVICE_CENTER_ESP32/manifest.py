# What the production image freezes into flash (firmware/README.md, "The production image"), in
# MicroPython's manifest language (tools/manifestfile.py of the pinned release). Frozen modules run from
# flash: their bytecode takes no heap, which is the point (bench/firmware_heap.py).
#
# The manifest runs with this folder as its working directory; REPO is the repository's root.
# tests/firmware/test_fw_image.py checks that it freezes exactly the modules provisioning would otherwise
# copy as .mpy files (provisioning/image.py).
# include() and package() are given to a manifest by MicroPython's build:
# ruff: noqa: F821

import os

REPO = "../../.."
SKIP_DIRS = ("sim", "image", "__pycache__")  # the CPython simulator, this image's own folder
CPYTHON_ONLY = ("lib/framebuf_compat.py",)  # MicroPython has framebuf in C


def device_files(package_dir):
    """The .py files of firmware/ that run on a board, relative to it; main.py stays the board's /main.py."""
    found = []
    for folder, dirs, files in os.walk(os.path.join(REPO, package_dir)):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), os.path.join(REPO, package_dir))
            if name.endswith(".py") and name != "main.py" and rel not in CPYTHON_ONLY:
                found.append(rel.replace(os.sep, "/"))
    return found


# The port's own frozen modules (asyncio among them: the firmware runs on it), as ESP32_GENERIC has them.
include("$(PORT_DIR)/boards/manifest.py")

package("protocol", base_path=REPO)
package("firmware", files=device_files("firmware"), base_path=REPO)
