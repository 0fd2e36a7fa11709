"""The rating pad's button LEDs: one output per button, lit while its press counts.

The driver receives its pins (anything with value(v)), left to right in
button order; `from_board()` builds the real pins.
"""


class Leds:
    def __init__(self, pins, lit=1):
        """pins: one per button, left to right; lit: the pin level that lights an LED."""
        self.pins = pins
        self.lit = lit
        self.states = [False] * len(pins)
        self.show(self.states)

    def show(self, states):
        """states: one bool per LED, same order as the pins."""
        for i in range(len(self.pins)):
            on = bool(states[i]) if i < len(states) else False
            self.states[i] = on
            self.pins[i].value(self.lit if on else 1 - self.lit)


def from_board(gpios, lit=1):
    """Leds on these GPIO numbers (left to right, see firmware.lib.boards.led_pins), or None if none."""
    from machine import Pin

    if not gpios:
        return None
    return Leds([Pin(gpio, Pin.OUT) for gpio in gpios], lit)
