"""A center's firmware through simulated days across the 2^30 ms wrap of the ticks (tests/support/center_soak.py).

Two windows, each a rating pad and a queue display running the real firmware on a real Mosquitto; the clock
is driven (2-hour steps, the first wrap within the first hour), never slept. Presses every working hour,
a power cut right after a press every day, a pad's network out for hours, the broker restarted right after
a press: every press reaches the edge with its score and reason, every outbox empties, no loop stalls.
The 30-day run is `make bench` (bench/center_soak.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.aio import run_async
from tests.support.center_soak import CenterSoak

pytestmark = pytest.mark.broker

DAYS = 3


def test_three_days_of_a_center_across_the_wrap_lose_no_press_and_stall_no_loop(center_broker,
                                                                                 tmp_path: Path) -> None:
    soak = CenterSoak(center_broker, tmp_path / "devices", days=DAYS, windows=2)
    figures = run_async(soak.run(), 300)
    kinds = {press.how for press in figures.presses}
    assert kinds == {"normal", "power_cut", "outage", "broker_restart"}, kinds
    assert figures.wraps >= 1 and figures.steps >= DAYS * 12
    assert figures.power_cuts == DAYS and figures.broker_restarts >= 1 and figures.outages >= 1
    assert len(figures.presses) == DAYS * 4 * 2
    assert any(press.reason is not None for press in figures.presses)
    assert not figures.stalls
