"""SimulatedCenter end to end against a real Mosquitto: the real firmware on simulated hardware."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest
from fw_helpers import CENTER, KEEPALIVE_S, AcknowledgingEdge, run, until

from firmware.sim import SimulatedCenter, load_credentials, sim_devices, sim_key, sim_mac
from firmware.sim.__main__ import parse_windows
from firmware.sim.hardware import SIM_HEAP_BYTES, SIM_HEAP_USED_BYTES
from protocol import identity, messages, topics


def make_center(port: int, state_dir: Path, windows: list[int] | None = None) -> SimulatedCenter:
    return SimulatedCenter(CENTER, "127.0.0.1", port, windows or [1, 2, 3], state_dir, health_interval_s=30,
                           keepalive_s=KEEPALIVE_S, backoff_min_s=0.05, backoff_max_s=0.5, log=None)


def test_device_ids_are_stable_and_locally_administered(tmp_path: Path) -> None:
    first = make_center(1883, tmp_path / "a")
    second = make_center(1883, tmp_path / "b")
    assert [d.device_id for d in first.devices] == [d.device_id for d in second.devices]
    assert len({d.device_id for d in first.devices}) == 6
    for device in first.devices:
        mac = device.mac
        assert mac == sim_mac(CENTER, device.role, device.window)
        assert int(mac.split(":")[0], 16) == 0x02
        assert device.device_id == identity.device_id_from_mac(mac)
        assert (device.state_dir / "config.json").exists()
    assert {(d.role, d.window) for d in first.devices} == {
        (role, w) for role in messages.DEVICE_ROLES for w in (1, 2, 3)
    }
    assert first.display(3).role == messages.ROLE_QUEUE_DISPLAY
    assert first.pad(3).role == messages.ROLE_RATING_PAD
    with pytest.raises(TypeError):
        first.display(3).press(5)


def test_devices_given_credentials_hold_them_as_a_provisioned_board(tmp_path: Path) -> None:
    """What registration issued goes into the device's config.json (broker account, device key), as provisioning
    writes it; a device given none keeps its derived key."""
    ids = [device_id for device_id, _role, _window, _mac in sim_devices(CENTER, [1, 2])]
    display_id = ids[0]
    issued = {"broker_username": display_id, "broker_password": "pw-from-the-fleet", "device_key": "ab" * 32}
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({display_id: issued}))
    center = SimulatedCenter(CENTER, "127.0.0.1", 1883, [1, 2], tmp_path / "state", log=None,
                             credentials=load_credentials(path))
    assert [d.device_id for d in center.devices] == ids
    display, pad = center.display(1), center.pad(1)
    assert display.device_id == display_id
    config = display.runtime.config
    assert (config.username, config.password, config.device_key) == (display_id, "pw-from-the-fleet",
                                                                     bytes.fromhex("ab" * 32))
    assert pad.runtime.config.device_key == sim_key(CENTER, messages.ROLE_RATING_PAD, 1)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="credentials file"):
        load_credentials(path)


def test_simulated_heartbeats_carry_the_free_heap_a_board_reports(tmp_path: Path) -> None:
    """CPython has no gc.mem_free: the simulator gives each device its board's figure, so the fleet's chart of
    free memory has values (it showed — for every simulated device)."""
    center = make_center(1883, tmp_path)
    for device in center.devices:
        health = messages.decode("health", device.runtime._health())
        assert health["free_heap"] == SIM_HEAP_BYTES - SIM_HEAP_USED_BYTES[device.role] > 0


def test_parse_windows() -> None:
    assert parse_windows("3") == [1, 2, 3]
    assert parse_windows("1,3,5") == [1, 3, 5]
    assert parse_windows("2-4") == [2, 3, 4]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_windows("three")


@pytest.mark.broker
def test_display_and_pad_end_to_end(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        center = make_center(center_broker.port, tmp_path)
        pad = center.pad(3)
        rating_topic = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=pad.device_id)
        observer = AcknowledgingEdge(center_broker.port, rating_topic,  # acknowledges ratings, as the edge does
                                     topics.subscription(topics.DEVICE_PRESENCE, center=CENTER))
        await center.start()
        try:
            await center.wait_online()
            assert center.display(3).lines == ["3号窗口", "欢迎光临"]

            call = messages.make("window_display", window=3, state="serving", ticket="A001",
                                 text="请A001号到3号窗口", call_seq=1)
            observer.publish(topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=3),
                             messages.encode("window_display", call), retain=True)
            await until(lambda: center.display(3).lines == ["A001", "请A001号到3号窗口"], what="display 3")
            assert center.display(2).lines == ["2号窗口", "欢迎光临"]

            assert pad.press(5) is False  # nothing to rate yet
            request_topic = topics.build(topics.RATING_REQUEST, center=CENTER, window=3)
            request = messages.make("rating_request", request_id="req-1", window=3, state="open", ticket="A001",
                                    staff_no="1024", staff_name="张三", timeout_s=60)
            observer.publish(request_topic, messages.encode("rating_request", request), retain=True)
            await until(lambda: "请对本次服务进行评价" in pad.lines, what="pad opens")
            assert pad.lines == ["张三 工号1024", "请对本次服务进行评价"]
            assert pad.press(5) is True
            assert pad.press(5) is False  # one rating per ticket
            assert pad.lines[0] == "谢谢您的评价"
            await until(lambda: observer.payloads(rating_topic), what="rating_submitted")
            rating = messages.decode("rating_submitted", observer.payloads(rating_topic)[0])
            assert (rating["request_id"], rating["ticket"], rating["window"]) == ("req-1", "A001", 3)
            assert rating["score"] == 5
            assert rating["rating_id"].startswith(pad.device_id)
            await until(lambda: len(pad.runtime.outbox) == 0, what="the rating acknowledged")

            # Abrupt death of the pad: its will arrives, it comes back, the old request stays rated.
            presence_topic = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=pad.device_id)
            center.abort(pad.device_id)
            await until(lambda: any(messages.decode("presence", p)["state"] == "offline"
                                    for p in observer.payloads(presence_topic)), what="will of the pad")
            await until(lambda: pad.online and pad.client.reconnects == 1, what="pad back")
            assert not pad.app.is_open
            # The next rating leaves the pad's outbox behind anything still in it: the first went only once.
            request = messages.make("rating_request", request_id="req-2", window=3, state="open", ticket="A002",
                                    timeout_s=60)
            observer.publish(request_topic, messages.encode("rating_request", request), retain=True)
            await until(lambda: pad.app.is_open, what="pad opens for A002")
            assert pad.press(4) is True
            await until(lambda: len(observer.payloads(rating_topic)) >= 2, what="the second rating")
            assert [messages.decode("rating_submitted", p)["request_id"]
                    for p in observer.payloads(rating_topic)] == ["req-1", "req-2"]

            state = center.state()
            assert [w["window"] for w in state["windows"]] == [1, 2, 3]
            assert state["windows"][2]["display"]["lines"] == ["A001", "请A001号到3号窗口"]
        finally:
            await center.stop()
        # Graceful stop: every device said offline.
        for device in center.devices:
            topic = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=device.device_id)
            await until(lambda t=topic: messages.decode("presence", observer.payloads(t)[-1])["state"] == "offline",
                        what=f"offline of {device.device_id}")
        observer.close()

    run(scenario())


@pytest.mark.broker
def test_sessions_survive_a_simulator_restart(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        for expected in (1, 2):
            center = make_center(center_broker.port, tmp_path, windows=[5])
            await center.start()
            await center.wait_online()
            assert {d.runtime.session for d in center.devices} == {expected}
            await center.stop()
            await asyncio.sleep(0)

    run(scenario())
