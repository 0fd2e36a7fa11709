"""The rating pad's buttons: one press per push, bounce ignored, however long a button was idle.

Ticks start just before the wrap (clock.TICKS_PERIOD), as on a board that has been up 12.4 days.
"""

from firmware.drivers.buttons import DEBOUNCE_MS, Buttons
from firmware.lib import clock

NEAR_WRAP = clock.TICKS_PERIOD - 1000
HALF = clock.TICKS_PERIOD // 2


class FakePin:
    def __init__(self):
        self.level = 1  # pull-up: 1 while released

    def value(self):
        return self.level


def pad():
    pins = [FakePin() for _ in range(5)]
    pressed = []
    buttons = Buttons([(5 - i, pins[i]) for i in range(5)], pressed.append)
    return buttons, pins, pressed


def push(buttons, pin, now_ms, hold_ms=100):
    """Press and release, polling every 20 ms like run()."""
    pin.level = 0
    for dt in range(0, hold_ms, 20):
        buttons.poll(clock.ticks_add(now_ms, dt))
    pin.level = 1
    buttons.poll(clock.ticks_add(now_ms, hold_ms))
    return clock.ticks_add(now_ms, hold_ms)


def test_one_press_per_push_and_bounce_is_ignored_across_the_wrap():
    buttons, pins, pressed = pad()
    t = push(buttons, pins[4], NEAR_WRAP)
    # A bounce 30 ms after the release, after the counter wrapped: not a second press.
    pins[4].level = 0
    buttons.poll(clock.ticks_add(t, 30))
    pins[4].level = 1
    buttons.poll(clock.ticks_add(t, 50))
    assert pressed == [1]
    push(buttons, pins[4], clock.ticks_add(t, DEBOUNCE_MS + 500))
    assert pressed == [1, 1]


def test_a_button_idle_longer_than_half_the_ticks_period_still_counts():
    # 非常不满意 unused for a week: the press after that must count, and the one after it.
    buttons, pins, pressed = pad()
    t = push(buttons, pins[4], NEAR_WRAP)
    assert pressed == [1]
    for idle in (HALF + 5000, HALF + 60000):
        later = (t + idle) % clock.TICKS_PERIOD
        t = push(buttons, pins[4], later)
    assert pressed == [1, 1, 1]


def test_a_button_idle_long_counts_even_when_polls_kept_running():
    buttons, pins, pressed = pad()
    t = push(buttons, pins[0], NEAR_WRAP)
    # Polls go on (a few of them stand for the 20 ms rhythm of days); no edge in between.
    for step in (1000, HALF // 2, HALF - 1000, HALF + 1000):
        buttons.poll((t + step) % clock.TICKS_PERIOD)
    push(buttons, pins[0], (t + HALF + 2000) % clock.TICKS_PERIOD)
    assert pressed == [5, 5]


def test_buttons_are_independent():
    buttons, pins, pressed = pad()
    t = push(buttons, pins[0], NEAR_WRAP)
    push(buttons, pins[1], clock.ticks_add(t, 20))
    assert pressed == [5, 4]
