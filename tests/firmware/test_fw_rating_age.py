"""A rating carries its age (age_ms) at every send, measured on the firmware's clock across its wrap.

The firmware's clock is driven by the test (fw_helpers.DrivenClock) and starts a second before the
ticks wrap (2**30 ms), as on a board that has been up 12.4 days; an outage then lasts longer than half
the ticks period, the span a single ticks_diff cannot measure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fw_helpers import CENTER, FAST, KEEPALIVE_S, DrivenClock, FakeBroker, Recorder, run, until

from firmware.lib import clock, config, mqtt
from firmware.lib.runtime import DeviceRuntime
from firmware.rating_pad.app import RatingPadApp
from firmware.sim.hardware import SimPanel
from protocol import identity, messages, topics
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

MAC = "02:00:00:00:00:07"
DEVICE = identity.device_id_from_mac(MAC)
RATING = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=DEVICE)
REQUEST = topics.build(topics.RATING_REQUEST, center=CENTER, window=3)
QUARTER = clock.TICKS_PERIOD // 4  # 2**28 ms, 3.1 days: the ticker beats many times within it on a board


def pad_runtime(port: int, state_dir: Path) -> DeviceRuntime:
    cfg = config.from_dict({"center": CENTER, "window": 3, "role": messages.ROLE_RATING_PAD, "board": "test",
                            "broker": {"host": "127.0.0.1", "port": port}, "keepalive_s": KEEPALIVE_S, "mac": MAC})
    return DeviceRuntime(cfg, RatingPadApp(3, DEVICE), str(state_dir), panel=SimPanel(), backoff_min_s=0.05,
                         backoff_max_s=0.5, log=None)


async def open_request(runtime: DeviceRuntime, port: int, request_id: str) -> None:
    publisher = Recorder(port)
    request = messages.make("rating_request", request_id=request_id, window=3, state="open", ticket="A009")
    publisher.publish(REQUEST, messages.encode("rating_request", request), retain=True)
    publisher.close()
    await until(lambda: runtime.app.is_open and runtime.app.request["request_id"] == request_id,
                what="request open")


async def outage(runtime: DeviceRuntime) -> None:
    runtime.client.port = free_port()  # the network to the edge is out: nothing listens there
    runtime.client.abort()
    await until(lambda: not runtime.client.up, what="link down")


async def let_time_pass(ticks: DrivenClock, runtime: DeviceRuntime, ms: int) -> None:
    """Move the firmware's clock by ms, in steps the ticker sees (each shorter than half the ticks period)."""
    while ms > 0:
        step = min(ms, QUARTER)
        target = runtime.uptime_ms + step
        ticks.advance(step)
        await until(lambda: runtime.uptime_ms >= target, what="a tick after the clock moved")  # noqa: B023
        ms -= step


def test_a_rating_held_through_a_week_long_outage_across_the_wrap_says_how_old_it_is(
        center_broker, tmp_path: Path, monkeypatch) -> None:
    ticks = DrivenClock(monkeypatch)
    ticks.now_ms = clock.TICKS_PERIOD - 1000

    async def scenario() -> None:
        runtime = pad_runtime(center_broker.port, tmp_path)
        task = asyncio.create_task(runtime.run())
        await open_request(runtime, center_broker.port, "req-1")
        observer = Recorder(center_broker.port, RATING)
        await outage(runtime)
        assert runtime.press(1)  # 非常不满意, pressed a second before the ticks wrap
        held_ms = 3 * QUARTER + 4321  # 9.3 days: more than half the ticks period
        await let_time_pass(ticks, runtime, held_ms)
        assert ticks.now_ms < clock.TICKS_PERIOD - 1000  # the counter wrapped
        runtime.client.port = center_broker.port  # the network is back
        await until(lambda: observer.payloads(RATING), what="the held rating", timeout=15)
        rating = messages.decode("rating_submitted", observer.payloads(RATING)[0])
        assert (rating["request_id"], rating["score"]) == ("req-1", 1)
        assert rating["age_ms"] == held_ms  # the clock stood still otherwise
        await runtime.stop()
        await task
        observer.close()

    run(scenario())


def test_a_rating_from_before_a_reboot_goes_without_an_age(center_broker, tmp_path: Path, monkeypatch) -> None:
    ticks = DrivenClock(monkeypatch)

    async def scenario() -> None:
        runtime = pad_runtime(center_broker.port, tmp_path)
        task = asyncio.create_task(runtime.run())
        await open_request(runtime, center_broker.port, "req-2")
        observer = Recorder(center_broker.port, RATING)
        await outage(runtime)
        assert runtime.press(2)
        runtime.client.abort(stop=True)  # power cut: the rating waits on flash
        await task
        ticks.now_ms = 0  # a new boot: ticks start again
        rebooted = pad_runtime(center_broker.port, tmp_path)
        task = asyncio.create_task(rebooted.run())
        await until(lambda: observer.payloads(RATING), what="the rating from before the reboot", timeout=15)
        rating = messages.decode("rating_submitted", observer.payloads(RATING)[0])
        assert rating["score"] == 2 and "age_ms" not in rating
        await rebooted.stop()
        await task
        observer.close()

    run(scenario())


def test_a_publish_built_at_send_time_is_built_again_for_the_resend() -> None:
    # The first connection never acknowledges: the QoS 1 publish goes again (DUP) on the next one, with a
    # payload made at that moment.
    async def scenario() -> None:
        broker = await FakeBroker(puback=lambda index: index > 0).start()
        client = mqtt.MQTTClient("dev-age", "127.0.0.1", broker.port, log=None, **FAST)
        task = asyncio.create_task(client.run())
        await until(lambda: client.up, what="connected")
        made = []

        def payload() -> bytes:
            made.append(len(made))
            return b"send %d" % made[-1]

        publish = asyncio.create_task(client.publish("t/age", payload, qos=1))
        await until(lambda: broker.connections[0].of_kind(mqtt.PUBLISH), what="first send")
        broker.connections[0].close()
        await publish
        sends = [c.of_kind(mqtt.PUBLISH)[0] for c in broker.connections if c.of_kind(mqtt.PUBLISH)]
        assert [p.publish_fields()[2] for p in sends] == [b"send 0", b"send 1"]
        assert not sends[0].dup and sends[1].dup
        await client.disconnect()
        await task
        await broker.stop()

    run(scenario())
