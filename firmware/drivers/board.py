"""Board-level helpers for main.py."""

import asyncio


def run_forever(main_coro):
    """Run the device's main coroutine.

    A crash is not handled here: it reaches the boot guard of main.py, which
    prints it, pauses and resets the board, exactly as for a crash while
    booting, so a display on a wall comes back by itself instead of freezing.
    """
    asyncio.run(main_coro)
