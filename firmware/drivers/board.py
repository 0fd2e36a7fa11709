"""Board-level helpers: run the device, and reboot rather than hang on a crash."""

import asyncio
import sys
import time

import machine

RESET_DELAY_S = 5


def run_forever(main_coro):
    """Run the device's main coroutine; on any crash print it and reset the board.

    The runtime already survives network and broker trouble; this catches
    bugs, so a display on a wall comes back by itself instead of freezing.
    """
    try:
        asyncio.run(main_coro)
    except KeyboardInterrupt:  # Ctrl-C on the serial console: stay in the REPL
        raise
    except Exception as exc:
        try:
            sys.print_exception(exc)
        except AttributeError:
            print("main: crashed:", exc)
        time.sleep(RESET_DELAY_S)
        machine.reset()
