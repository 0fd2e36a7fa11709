"""The runtime feeds the (simulated) hardware watchdog only while its loops make progress."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from fw_helpers import make_device, run, until

from firmware.lib import runtime as runtime_module
from firmware.sim.hardware import SimWatchdog

pytestmark = pytest.mark.broker


def test_a_stalled_main_loop_stops_feeding(center_broker, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runtime_module, "WATCHDOG_FEED_MS", 50)
    monkeypatch.setattr(runtime_module, "TICK_STALL_MS", 300)
    logged: list[str] = []

    async def scenario() -> None:
        wdt = SimWatchdog()
        device = make_device(center_broker.port, tmp_path, role="queue_display", watchdog=wdt, tick_ms=20,
                             log=logged.append)
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up and wdt.feeds >= 3, what="fed while running")

        def broken_tick(now_ms: int) -> None:
            raise RuntimeError("a bug in the display logic")

        device.app.tick = broken_tick  # the ticker task dies: the loop makes no more progress
        await until(lambda: any("no progress from tick" in line for line in logged), what="feeding stops")
        stopped_at = wdt.feeds
        await asyncio.sleep(0.3)  # several feed periods: a real WDT would now reset the board
        assert wdt.feeds == stopped_at
        assert device.client.up  # the link alone does not keep the board alive
        await device.stop()
        await task

    run(scenario())


def test_a_link_task_that_makes_no_progress_stops_feeding(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runtime_module, "WATCHDOG_FEED_MS", 50)

    async def scenario() -> None:
        from tools.mosquitto import free_port

        wdt = SimWatchdog()
        device = make_device(free_port(), tmp_path, role="queue_display", watchdog=wdt, tick_ms=20,
                             backoff_min_s=0.05, backoff_max_s=0.1)
        device.watchdog.monitor.deadlines_ms["link"] = 600
        task = asyncio.create_task(device.run())
        # No broker: the client keeps trying, and every attempt is progress.
        await until(lambda: device.client.connects == 0 and wdt.feeds >= 20, what="fed past the link deadline")
        assert device.watchdog.starved is None

        async def hangs() -> None:
            await asyncio.Event().wait()  # e.g. a socket call that never returns

        device.client.connect_timeout_s = 3600
        device.client._open = hangs  # the next attempt never comes back
        await until(lambda: device.watchdog.starved == ["link"], what="feeding stops")
        stopped_at = wdt.feeds
        await asyncio.sleep(0.2)
        assert wdt.feeds == stopped_at
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(scenario())
