"""Python's `time.sleep` for processes run under libfaketime with the monotonic clock left real.

`make test-clock` runs the suite under Debian's faketime (libfaketime 0.9.10) with
FAKETIME_DONT_FAKE_MONOTONIC=1 and this directory on PYTHONPATH, so every Python
process it starts (pytest, its xdist workers, the fleet and edge programs) loads this
file at start-up. Why both:

- With the monotonic clock faked, Python's timed lock waits (threading.Event.wait,
  queue.get with a timeout: `sem_clockwait` on CLOCK_MONOTONIC, which libfaketime does
  not intercept) wait until the real monotonic clock reaches a faked deadline decades
  ahead: every thread with a timeout hangs (wolfcw/libfaketime#390).
- With it left real, `time.sleep` on Python 3.11+ (`clock_nanosleep` with TIMER_ABSTIME
  on CLOCK_MONOTONIC) gets its real deadline shifted by the fake offset and fails with
  EINVAL (wolfcw/libfaketime#426, fixed after 0.9.10).

So the monotonic clock stays real and `time.sleep` waits in `select`, which libfaketime
passes through. Outside libfaketime this file is never on the path.
"""

import select
import time

_monotonic = time.monotonic


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = _monotonic() + seconds
    while (left := deadline - _monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
