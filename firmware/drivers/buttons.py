"""Five push buttons to ground (internal pull-ups), polled and debounced."""

import asyncio
import time

from machine import Pin

POLL_S = 0.02
DEBOUNCE_MS = 250  # a second edge on the same button within this is bounce


class Buttons:
    def __init__(self, pins_by_score, on_press):
        """pins_by_score: ((score, gpio), ...); on_press(score) is called per press."""
        self.on_press = on_press
        self._scores = [score for score, _ in pins_by_score]
        self._pins = [Pin(gpio, Pin.IN, Pin.PULL_UP) for _, gpio in pins_by_score]
        self._level = [1] * len(self._pins)
        self._last = [0] * len(self._pins)

    async def run(self):
        count = len(self._pins)
        while True:
            for i in range(count):
                level = self._pins[i].value()
                if level != self._level[i]:
                    self._level[i] = level
                    now = time.ticks_ms()
                    if level == 0 and time.ticks_diff(now, self._last[i]) > DEBOUNCE_MS:
                        self._last[i] = now  # type: ignore[call-overload]  # ticks are plain ints
                        try:
                            self.on_press(self._scores[i])
                        except Exception as exc:
                            print("buttons: press failed:", exc)
            await asyncio.sleep(POLL_S)
