"""Every firmware test runs on a clock that wraps a few seconds after it starts.

The CPython stand-in of firmware.lib.clock wraps at 2**30 ms like the ESP32's ticks; a board reaches the
wrap after 12.4 days, a test would never. Starting each test WRAP_IN_MS before the wrap means the MQTT
client, the runtime's loops and the apps all live through one, as a board does every 12.4 days.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware.lib import clock

WRAP_IN_MS = 3000


@pytest.fixture(autouse=True)
def ticks_near_the_wrap() -> Iterator[None]:
    assert clock.start_at is not None  # the CPython stand-in
    clock.start_at(clock.TICKS_PERIOD - WRAP_IN_MS)
    yield
    clock.start_at(0)
