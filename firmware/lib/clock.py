"""Millisecond ticks on both runtimes.

MicroPython has time.ticks_ms/ticks_diff/ticks_add (wrapping counters);
CPython does not, so they are built on time.monotonic(). Always compare
ticks with ticks_diff(), never with '-' or '<', so the wrap is handled.
"""

import time

try:
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
except AttributeError:
    # CPython only (the simulator, the tests): the MicroPython stubs have no monotonic.
    _T0 = time.monotonic()  # type: ignore[attr-defined]

    def ticks_ms():
        return int((time.monotonic() - _T0) * 1000)  # type: ignore[attr-defined]

    def ticks_diff(end, start):
        return end - start

    def ticks_add(ticks, delta):
        return ticks + delta


def elapsed_ms(since):
    """Milliseconds from the tick `since` until now."""
    return ticks_diff(ticks_ms(), since)
