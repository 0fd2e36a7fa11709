"""30 simulated days of a center's firmware on a real Mosquitto, with a driven clock that wraps at 2^30 ms.

Two windows (a rating pad and a queue display each, the real firmware), presses every working hour, pads'
network outages of hours and a display's of a week, broker restarts and power cuts right after a press
(tests/support/center_soak.py says what happens when). Prints what was simulated and how long it took;
fails (exit 1) if a press was lost or a loop stalled. `--days` for a shorter run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.center_soak import CenterSoak  # noqa: E402
from tools.mosquitto import MosquittoBroker  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--windows", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="center-soak-") as scratch:
        broker = MosquittoBroker(Path(scratch) / "broker", "center").start()
        try:
            soak = CenterSoak(broker, Path(scratch) / "devices", days=args.days, windows=args.windows)
            try:
                figures = asyncio.run(soak.run())
            except AssertionError as exc:
                print(f"center soak FAILED: {exc}")
                for line in soak.figures.lines():
                    print("  " + line)
                return 1
        finally:
            broker.stop()
    print("center soak (firmware twins, driven wrapping clock, real Mosquitto): no press lost, no loop stalled")
    for line in figures.lines():
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
