"""Five push buttons to ground (internal pull-ups), polled and debounced.

The driver receives its pins (anything with value()), like the LEDs;
`from_board()` builds the real ones. poll(now_ms) is one pass over the
pins with the time given, so tests drive it with any ticks; run() polls
every POLL_S.
"""

import asyncio

from firmware.lib import clock

POLL_S = 0.02
DEBOUNCE_MS = 250  # a second edge on the same button within this is bounce


class Buttons:
    def __init__(self, pins_by_score, on_press):
        """pins_by_score: ((score, pin), ...), pins read 0 while pressed; on_press(score) per press."""
        self.on_press = on_press
        self._scores = [score for score, _ in pins_by_score]
        self._pins = [pin for _, pin in pins_by_score]
        self._level = [1] * len(self._pins)
        # Tick of each button's last press while it can still bounce, else None. Forgotten once older than
        # DEBOUNCE_MS: kept for good, a press idle for over 2**29 ms (half the ticks period) would look
        # like one in the future, and every later press like bounce, for up to another 6.2 days.
        self._last = [None] * len(self._pins)

    def poll(self, now_ms):
        for i in range(len(self._pins)):
            last = self._last[i]
            if last is not None and not 0 <= clock.ticks_diff(now_ms, last) <= DEBOUNCE_MS:
                self._last[i] = last = None
            level = self._pins[i].value()
            if level == self._level[i]:
                continue
            self._level[i] = level
            if level == 0 and last is None:
                self._last[i] = now_ms
                try:
                    self.on_press(self._scores[i])
                except Exception as exc:
                    print("buttons: press failed:", exc)

    async def run(self):
        while True:
            self.poll(clock.ticks_ms())
            await asyncio.sleep(POLL_S)


def from_board(pins_by_score, on_press):
    """Buttons on ((score, GPIO), ...) (firmware.lib.boards.button_pins), with the internal pull-ups."""
    from machine import Pin

    return Buttons([(score, Pin(gpio, Pin.IN, Pin.PULL_UP)) for score, gpio in pins_by_score], on_press)
