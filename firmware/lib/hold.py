"""The provisioning hold: a file that keeps main.py from starting the firmware and its watchdog.

The ESP32's hardware watchdog (machine.WDT, 30 s) cannot be stopped once started, and it survives
Ctrl-C and a soft reset: a board whose firmware is interrupted over USB resets itself 30 s later,
in the middle of whatever provisioning copies. So provisioning writes HOLD_FILE over the raw REPL,
resets the board (machine.reset(): the only way to stop a running watchdog), and main.py, seeing the
file, returns to the REPL at once: no firmware, no watchdog, for as long as the copy takes.
Provisioning removes the file as its last step, before the reset that starts the new firmware.

A board left with the file (a cable pulled mid-copy) stays at the REPL at every power-on until the
next provisioning run, as one whose /main.py is missing does. Pure (os only), on both runtimes.
"""

import os

HOLD_FILE = "/provisioning.hold"


def requested():
    """True while HOLD_FILE exists."""
    try:
        os.stat(HOLD_FILE)
        return True
    except OSError:
        return False
