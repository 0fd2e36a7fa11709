"""Heap left after boot on a 32-bit MicroPython (printed, never asserted; tests/firmware/test_fw_heap.py
holds it under a budget).

Each role's provisioning image (its modules as .mpy) runs in MicroPython's WebAssembly port, a 32-bit
port like the ESP32's: the real main.py's main() up to the event loop, with stand-ins for `machine` and
`network` (tests/support/heap_after_boot.py). What is left is computed for the heaps a board has: a
plain ESP32 image leaves about 110-150 KB (Wi-Fi's buffers are outside it), the SPIRAM image on an
ESP32-WROVER-E about 4 MB. In the production image (firmware/image/) the modules are frozen into flash,
which leaves about the objects' share on the heap; that figure needs a board to measure.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import heap_after_boot  # noqa: E402

KB = 1024
HEAPS = (("a plain ESP32, low", 110 * KB), ("a plain ESP32, high", 150 * KB),
         ("ESP32-WROVER-E with PSRAM", 4 * KB * KB))


def main() -> None:
    missing = heap_after_boot.available()
    if missing is not None:
        print(f"heap after boot skipped: {missing}")
        return
    font = ROOT / "firmware" / "lib" / "default_font.bin"
    board_font = ROOT / "firmware" / "fonts" / "board_font.bin"
    glyphs = int.from_bytes(board_font.read_bytes()[4:6], "little")
    print(f"fonts on flash: the board font (/font.bin, all of GB2312) {board_font.stat().st_size:,} bytes, "
          f"{glyphs:,} glyphs, searched on flash (no heap); the fallback default_font.bin {font.stat().st_size:,} "
          "bytes")
    for role in ("queue_display", "rating_pad"):
        figures = heap_after_boot.measure(role)
        print(f"heap after boot, {role}, MicroPython WebAssembly port (32-bit), modules loaded from .mpy:")
        print(f"  firmware {figures.firmware / KB:6.1f} KB = modules {figures.modules / KB:.1f} KB "
              f"+ objects {figures.objects / KB:.1f} KB (interpreter alone {figures.baseline / KB:.1f} KB)")
        for name, heap in HEAPS:
            left = heap - figures.after_boot
            print(f"  left in {name + f' ({heap // KB} KB)':36s} {left / KB:8.1f} KB"
                  + ("   (does not fit)" if left < 0 else ""))
        print(f"  frozen (production image): about the objects, {figures.objects / KB:.1f} KB, plus the modules' "
              "function and class objects; to be measured on a board")


if __name__ == "__main__":
    main()
