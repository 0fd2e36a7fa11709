"""Ticks wrap: under MicroPython these are the port's own functions, under CPython the stand-in.

Both must give the same answers, so a test of the firmware on CPython sees the wrap a board sees.
"""

from case_support import raises

from firmware.lib import clock

PERIOD = clock.TICKS_PERIOD
HALF = PERIOD // 2


def test_the_counter_wraps_at_the_period():
    assert PERIOD >= 1 << 30
    assert clock.ticks_add(PERIOD - 1, 1) == 0
    assert clock.ticks_add(0, -1) == PERIOD - 1
    assert clock.ticks_add(PERIOD - 100, 250) == 150
    assert 0 <= clock.ticks_ms() < PERIOD


def test_ticks_diff_spans_the_wrap():
    assert clock.ticks_diff(150, PERIOD - 100) == 250
    assert clock.ticks_diff(PERIOD - 100, 150) == -250
    assert clock.ticks_diff(5, 5) == 0


def test_ticks_diff_answers_in_minus_half_to_half():
    start = PERIOD - 1000
    assert clock.ticks_diff(clock.ticks_add(start, HALF - 1), start) == HALF - 1
    # Half a period or more apart, the answer flips sign: why no tick may be kept that long.
    assert clock.ticks_diff((start + HALF) % PERIOD, start) == -HALF
    assert clock.ticks_diff((start + HALF + 5000) % PERIOD, start) == -HALF + 5000
    assert clock.ticks_diff((start + PERIOD + 7) % PERIOD, start) == 7


def test_ticks_add_refuses_what_ticks_diff_cannot_give_back():
    assert clock.ticks_add(10, HALF - 1) == HALF + 9
    assert clock.ticks_add(10, -(HALF - 1)) == (10 - HALF + 1) % PERIOD
    raises(OverflowError, clock.ticks_add, 10, HALF)
    raises(OverflowError, clock.ticks_add, 10, -HALF)
