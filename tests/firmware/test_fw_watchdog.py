"""The runtime feeds the (simulated) hardware watchdog only while its loops make progress.

The deadlines are measured on the firmware's clock, which these tests drive
(DrivenClock): a deadline passes when the test moves the clock past it, not
because a loaded machine ran a loop late. "Not fed" is checked on feeder
rounds that ran (FeedRounds), never after a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fw_helpers import DrivenClock, FeedRounds, make_device, run, until

from firmware.lib import runtime as runtime_module
from firmware.sim.hardware import SimWatchdog

pytestmark = pytest.mark.broker


async def step(ticks: DrivenClock, device: Any, ms: int, also: Callable[[], bool] = lambda: True) -> None:
    """Move the clock by `ms`, wait for a tick at the new time (its uptime counts the step) and for `also`,
    then for a feed after them."""
    uptime_ms = device.uptime_ms
    ticks.advance(ms)
    await until(lambda: device.uptime_ms >= uptime_ms + ms and also(), what="progress at the new time")
    fed = device.watchdog.driver.feeds
    await until(lambda: device.watchdog.driver.feeds > fed, what="a feed after it")


def test_a_stalled_main_loop_stops_feeding(center_broker, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runtime_module, "WATCHDOG_FEED_MS", 50)  # feeder rounds, in real time
    ticks = DrivenClock(monkeypatch)
    logged: list[str] = []

    async def scenario() -> None:
        wdt = SimWatchdog()
        device = make_device(center_broker.port, tmp_path, role="queue_display", watchdog=wdt, tick_ms=20,
                             log=logged.append)
        rounds = FeedRounds(device.watchdog)
        deadline_ms = device.watchdog.monitor.deadlines_ms["tick"]
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up and wdt.feeds >= 3, what="fed while running")

        # A ticking loop keeps it fed however long it runs: the clock moves half a deadline at a time, and
        # the ticker counts each step in its uptime before the next step.
        for _ in range(3):
            await step(ticks, device, deadline_ms // 2)

        broke: list[int] = []

        def broken_tick(now_ms: int) -> None:
            broke.append(now_ms)
            raise RuntimeError("a bug in the display logic")

        device.app.tick = broken_tick  # the ticker task dies: the loop makes no more progress
        await until(lambda: broke, what="the ticker dies")
        fed = wdt.feeds
        await until(lambda: wdt.feeds > fed, what="still fed within the deadline")
        ticks.advance(deadline_ms + 1)
        await until(lambda: any("no progress from tick" in line for line in logged), what="feeding stops")
        assert device.watchdog.starved == ["tick"]
        stopped_at = wdt.feeds
        # Several feeder rounds ran, and none fed: a real WDT would now reset the board.
        assert await rounds.next(3) == [False, False, False]
        assert wdt.feeds == stopped_at
        assert device.client.up  # the link alone does not keep the board alive
        await device.stop()
        await task

    run(scenario())


def test_a_link_task_that_makes_no_progress_stops_feeding(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runtime_module, "WATCHDOG_FEED_MS", 50)
    ticks = DrivenClock(monkeypatch)

    async def scenario() -> None:
        from tools.mosquitto import free_port

        wdt = SimWatchdog()
        device = make_device(free_port(), tmp_path, role="queue_display", watchdog=wdt, tick_ms=20,
                             backoff_min_s=0.05, backoff_max_s=0.1)
        rounds = FeedRounds(device.watchdog)
        deadline_ms = 600
        device.watchdog.monitor.deadlines_ms["link"] = deadline_ms
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.last_error and wdt.feeds, what="a failed attempt and a feed")
        # No broker: the client keeps trying, and every attempt is progress. The clock moves past the link
        # deadline in steps, each followed by an attempt and a tick at the new time, then a feed.
        for _ in range(4):
            await step(ticks, device, deadline_ms // 2,
                       also=lambda: device.client.progress_ms == ticks.now_ms)  # an attempt began
        assert device.client.connects == 0 and device.watchdog.starved is None

        stuck: list[bool] = []

        async def hangs() -> None:
            stuck.append(True)
            await asyncio.Event().wait()  # e.g. a socket call that never returns

        device.client.connect_timeout_s = 3600
        device.client._open = hangs  # the next attempt never comes back
        await until(lambda: stuck, what="an attempt that hangs")
        ticks.advance(deadline_ms + 1)
        await until(lambda: device.watchdog.starved == ["link"], what="feeding stops")
        stopped_at = wdt.feeds
        assert await rounds.next(3) == [False, False, False]
        assert wdt.feeds == stopped_at
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(scenario())
