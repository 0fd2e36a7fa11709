"""Over-the-air bundles: their size on the wire and on flash, and the heap a board's download takes (printed,
never asserted; tests/firmware/test_fw_ota.py and cases/test_case_ota.py hold the behaviour).

- the bundle of this tree as the fleet builds it (.mpy files) and as source: files, bytes on a board's flash
  (two slots hold two of them), the firmware_bundle message on the county broker (retained: one per center),
  the chunks a board asks its edge for;
- MicroPython (unix port, when installed): the heap's growth through a download of a 138 KB file and how long
  the board-side work takes per chunk (hashing, appending, JSON and base64 as the runtime does them).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protocol import messages  # noqa: E402
from provisioning.errors import ProvisionError  # noqa: E402
from provisioning.ota_bundle import build_bundle, bundle_message  # noqa: E402

KB = 1024
CENTERS = 300  # a county's centers: one retained firmware_bundle each on the county broker

HEAP_PROBE = """
import sys, gc
sys.path.insert(0, %(cases)r)
import case_support
case_support._root[0] = %(scratch)r
import test_case_ota as T
from firmware.lib import ota_download
big = b"".join(b"%%06d some module text to fill a large file\\n" %% n for n in range(3000))
manifest, files = T.bundle(files={"firmware/lib/huge.py": big})
del big
up = T.updater(T.scratch_dir("ota"))
up.consider(T.order(manifest))
edge = T.Edge(manifest, files)
seen = []
async def measured(sha, path, offset, length):
    gc.collect()
    seen.append(gc.mem_alloc())
    return await edge.fetch(sha, path, offset, length)
import time
start = time.ticks_ms()
T.run(up.download(measured))
took = time.ticks_diff(time.ticks_ms(), start)
print(max(seen) - min(seen), len(seen), took)
"""


def main() -> None:
    for compiled in (True, False):
        try:
            started = time.perf_counter()
            bundle = build_bundle("bench", compiled=compiled, created_at=0)
            built_s = time.perf_counter() - started
        except ProvisionError as exc:
            print(f"bundle ({'mpy' if compiled else 'source'}) skipped: {exc}")
            continue
        size = sum(len(data) for _, data in bundle.files)
        message = messages.encode("firmware_bundle", bundle_message(bundle, bytes(32), "445202101001", 0))
        chunks = sum(-(-len(data) // 2048) for _, data in bundle.files)
        print(f"bundle as {'.mpy (as the fleet builds it)' if compiled else 'source'}: {len(bundle.files)} files, "
              f"{size / KB:.1f} KB on flash per slot, zlib {len(bundle.data) / KB:.1f} KB, firmware_bundle message "
              f"{len(message) / KB:.1f} KB (x {CENTERS} centers retained on the county broker: "
              f"{len(message) * CENTERS / KB / KB:.1f} MB), {chunks} chunks of 2 KB per board; "
              f"built in {built_s:.2f} s")
    if importlib.util.find_spec("micropython_unix") is None:
        print("download heap skipped: MicroPython unix port not installed")
        return
    with tempfile.TemporaryDirectory() as scratch:
        code = HEAP_PROBE % {"cases": str(ROOT / "tests" / "firmware" / "cases"), "scratch": scratch}
        result = subprocess.run([sys.executable, "-c", "import micropython_unix; micropython_unix.main()", "-c", code],
                                cwd=scratch, env={**os.environ, "MICROPYPATH": f"{ROOT}:.frozen"},
                                capture_output=True, text=True, timeout=120)
    try:
        growth, fetches, took_ms = (int(x) for x in result.stdout.split())
    except ValueError:
        print(f"download heap: the probe failed: {result.stdout}{result.stderr}")
        return
    print(f"download of a 138 KB file under MicroPython (unix port): heap growth {growth / KB:.1f} KB over "
          f"{fetches} fetches, {took_ms / fetches:.2f} ms of board-side work per chunk on this machine "
          "(fetch answered at once)")


if __name__ == "__main__":
    main()
