"""Millisecond ticks on both runtimes, wrapping as they do on the ESP32.

MicroPython has time.ticks_ms/ticks_diff/ticks_add: a counter that wraps
at TICKS_PERIOD (2**30 ms, about 12.4 days, on the ESP32 and every 32-bit
port: the range of a small int). ticks_diff(end, start) is only right while
the two ticks are less than TICKS_PERIOD / 2 (about 6.2 days) apart; it
answers in [-TICKS_PERIOD / 2, TICKS_PERIOD / 2). So:

- always compare ticks with ticks_diff(), never with '-' or '<';
- never keep a tick to compare with "now" for longer than that: a
  reference that can get older (the last press of a button idle for a
  week, the moment a link went down) is forgotten, latched or moved
  forward while it is still young, or the comparison silently flips sign.

CPython has none of this, so the stand-in below (the simulator, the tests)
wraps exactly like the ESP32 port: the same period, the same ticks_diff
range, and ticks_add refusing a delta that ticks_diff could not give back
(OverflowError, as MicroPython 1.27 does). Tests start it near the wrap
with start_at().
"""

import time

try:
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
    start_at = None  # a board's ticks start at boot; only the stand-in can be moved
except AttributeError:
    # CPython only (the simulator, the tests): the MicroPython stubs have no monotonic.
    _PERIOD = 1 << 30
    _HALF = _PERIOD >> 1
    _t0 = [time.monotonic(), 0]  # type: ignore[attr-defined]  # (monotonic at the start, ticks then)

    def ticks_ms():
        elapsed = int((time.monotonic() - _t0[0]) * 1000)  # type: ignore[attr-defined]
        return (_t0[1] + elapsed) % _PERIOD

    def ticks_diff(end, start):
        # The distance from start forward to end, taken into [-_HALF, _HALF).
        forward = (end - start) % _PERIOD
        return forward - _PERIOD if forward >= _HALF else forward

    def ticks_add(ticks, delta):
        # A delta outside (-_HALF, _HALF) has no answer ticks_diff could give back.
        if delta <= -_HALF or delta >= _HALF:
            raise OverflowError("ticks interval overflow")
        return (ticks + delta) % _PERIOD

    def start_at(ticks):  # type: ignore[misc]
        """Make ticks_ms() read `ticks` now (tests: start a little before the wrap)."""
        _t0[0] = time.monotonic()  # type: ignore[attr-defined]
        _t0[1] = ticks % _PERIOD


# The wrap of this runtime's counter: 2**30 on the ESP32 and the stand-in, larger on 64-bit unix builds.
TICKS_PERIOD = ticks_add(0, -1) + 1  # type: ignore[type-var]  # ticks are plain ints


def elapsed_ms(since):
    """Milliseconds from the tick `since` until now."""
    return ticks_diff(ticks_ms(), since)
