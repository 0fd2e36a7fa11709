"""Voice cache figures (printed, never asserted): its size after 5,000 distinct calls (issue 19).

Every call is put together from pieces rendered once by espeak-ng (edge_agent/voice.py), with the
default settings (chime, two repeats): the cache is the pieces plus the call being played. Before,
every call was its own WAV of about 0.62 MB, kept for ever: 5,000 calls were about 3.1 GB.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent import voice  # noqa: E402

CALLS = 5000
WINDOWS = 12


def main() -> int:
    settings = voice.VoiceSettings()
    if shutil.which(settings.synthesizer) is None:
        print(f"voice cache: {settings.synthesizer} is not installed; skipped")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "voice"
        pieces = voice.PieceCache(directory, settings)
        times = []
        for i in range(CALLS):
            number = f"{'ABCDE'[i // 1000]}{i % 1000:03d}"  # A000..E999: 5,000 distinct numbers
            started = time.perf_counter()
            voice.render_call(number, i % WINDOWS + 1, directory, settings, pieces)
            times.append(time.perf_counter() - started)
        files = [f for f in directory.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        call_size = (directory / voice.CALL_FILE).stat().st_size
    times.sort()
    print(f"voice cache after {CALLS:,} distinct calls ({WINDOWS} windows, chime, {settings.repeat} repeats): "
          f"{len(files)} files, {size / 1e6:.2f} MB ({pieces.rendered} pieces rendered by espeak-ng, "
          f"the call being played {call_size / 1e6:.2f} MB)")
    print(f"  one call put together and written: p50 {statistics.median(times) * 1000:.1f} ms, "
          f"p99 {times[int(len(times) * 0.99)] * 1000:.1f} ms (the first ones render their pieces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
