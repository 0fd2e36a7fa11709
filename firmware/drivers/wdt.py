"""The hardware watchdog (machine.WDT) behind a plain class.

Once started it cannot be stopped, and the board resets unless feed() comes
within `timeout_ms`. The runtime feeds it only while its main loop makes
progress (firmware/lib/watchdog.py). The simulated twin is
firmware.sim.hardware.SimWatchdog.
"""

from machine import WDT

DEFAULT_TIMEOUT_MS = 30000  # longer than any blocking call the firmware makes (a TCP connect, a flash write)


class HardwareWatchdog:
    def __init__(self, timeout_ms=DEFAULT_TIMEOUT_MS):
        self.timeout_ms = timeout_ms
        self._wdt = WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()
