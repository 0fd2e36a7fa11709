"""Signed commands end to end: real Mosquitto, the real runtime; each id runs at most once, across reboots."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fw_helpers import CENTER, DEVICE_KEY, Recorder, make_device, run, until

from protocol import identity, messages, signing, topics

pytestmark = pytest.mark.broker

MAC = "02:00:00:00:00:08"
DEVICE = identity.device_id_from_mac(MAC)
COMMAND = topics.build(topics.DEVICE_COMMAND, center=CENTER, device=DEVICE)
ACK = topics.build(topics.DEVICE_COMMAND_ACK, center=CENTER, device=DEVICE)


def command(command_id: str, name: str, args: dict | None = None, key: bytes = DEVICE_KEY, *, boot: str,
            valid_s: int = messages.COMMAND_VALID_S) -> bytes:
    """Signed as the fleet signs it: for the device's current `boot` (from its birth), issued now."""
    payload = signing.make_signed("command", key, DEVICE, command_id=command_id, command=name, args=args,
                                  boot=boot, issued_at=int(time.time()), valid_s=valid_s)
    return messages.encode("command", payload)


def births(recorder: Recorder, presence: str) -> list[dict]:
    decoded = [messages.decode("presence", raw) for raw in recorder.payloads(presence)]
    return [birth for birth in decoded if birth["state"] == messages.ONLINE]


def acks(recorder: Recorder) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for raw in recorder.payloads(ACK):
        ack = messages.decode("command_ack", raw)
        out.setdefault(ack["command_id"], []).append(ack)
    return out


def test_commands_run_once_and_are_acknowledged(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        fleet = Recorder(center_broker.port, ACK)
        device = make_device(center_broker.port, tmp_path, role="queue_display", mac=MAC)
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up, what="device up")

        fleet.publish(COMMAND, command("c-1", "identify", {"seconds": 5}, boot=device.presence.boot))
        await until(lambda: "c-1" in acks(fleet), what="identify acked")
        assert acks(fleet)["c-1"] == [{"v": 1, "command_id": "c-1", "status": "done"}]
        await until(lambda: device.panel.lines == ["设备识别", DEVICE], what="the identify screen")
        await until(lambda: device.panel.lines == ["", ""], what="the blink")

        boot = device.presence.boot  # what the device's birth says, as the fleet reads it
        fleet.publish(COMMAND, command("c-2", "brightness", {"level": 15}, boot=boot))
        fleet.publish(COMMAND, command("c-1", "identify", {"seconds": 5}, boot=boot))  # again: never twice
        fleet.publish(COMMAND, command("c-3", "brightness", {"level": 15}, key=bytes(32), boot=boot))
        fleet.publish(COMMAND, command("c-4", "brightness", {"level": 300}, boot=boot))
        fleet.publish(COMMAND, command("c-5", "reboot", boot=boot))  # this runtime was given no reset
        await until(lambda: all(c in acks(fleet) for c in ("c-2", "c-3", "c-4", "c-5")), what="four acks")
        got = acks(fleet)
        assert got["c-2"][0]["status"] == "done" and device.panel.brightness == 15
        assert got["c-1"][1] == {"v": 1, "command_id": "c-1", "status": "rejected", "error": "command c-1 already run"}
        assert got["c-3"][0]["error"] == "signature does not verify"
        assert got["c-4"][0] == {"v": 1, "command_id": "c-4", "status": "rejected",
                                 "error": "args.level must be an integer 0..100, got 300"}
        assert got["c-5"][0] == {"v": 1, "command_id": "c-5", "status": "failed",
                                 "error": "this device cannot reboot itself"}
        await device.stop()
        await task

        rebooted = make_device(center_broker.port, tmp_path, role="queue_display", mac=MAC)
        task = asyncio.create_task(rebooted.run())
        await until(lambda: rebooted.client.up, what="up after reboot")
        # Replayed after the reboot, even signed for the new boot: the id is on flash.
        fleet.publish(COMMAND, command("c-2", "brightness", {"level": 99}, boot=rebooted.presence.boot))
        await until(lambda: len(acks(fleet)["c-2"]) == 2, what="replay answered")
        assert acks(fleet)["c-2"][1]["status"] == "rejected" and rebooted.panel.brightness == 100
        await rebooted.stop()
        await task
        fleet.close()

    run(scenario())


def test_reboot_acks_first_then_goes_offline_cleanly_then_resets(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        presence = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DEVICE)
        fleet = Recorder(center_broker.port, ACK, presence)
        resets: list[bool] = []
        device = make_device(center_broker.port, tmp_path, role="queue_display", mac=MAC,
                             reset=lambda: resets.append(device.client.up))
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up, what="device up")
        fleet.publish(COMMAND, command("c-9", "reboot", boot=device.presence.boot))
        await until(lambda: resets, what="the reset")
        assert resets == [False]  # disconnected before the reset
        await until(lambda: "c-9" in acks(fleet) and len(fleet.payloads(presence)) >= 2, what="ack and offline")
        assert acks(fleet)["c-9"] == [{"v": 1, "command_id": "c-9", "status": "done"}]
        order = [(t, messages.decode("presence", p)["state"] if t == presence else "ack") for t, p, _ in fleet.messages]
        assert [state for _, state in order] == ["online", "ack", "offline"]  # the ack went out before the offline
        await asyncio.wait_for(task, 5)
        fleet.close()

    run(scenario())


def test_a_simulated_device_obeys_commands_signed_with_its_sim_key(center_broker, tmp_path: Path) -> None:
    from firmware.sim import SimulatedCenter, sim_key

    async def scenario() -> None:
        center = SimulatedCenter(CENTER, "127.0.0.1", center_broker.port, [2], tmp_path, log=None,
                                 backoff_min_s=0.05, backoff_max_s=0.3)
        await center.start()
        await center.wait_online()
        pad = center.pad(2)
        key = sim_key(CENTER, "rating_pad", 2)
        ack_topic = topics.build(topics.DEVICE_COMMAND_ACK, center=CENTER, device=pad.device_id)
        fleet = Recorder(center_broker.port, ack_topic)
        command_topic = topics.build(topics.DEVICE_COMMAND, center=CENTER, device=pad.device_id)
        for command_id, name, args in (("s-1", "brightness", {"level": 30}), ("s-2", "reboot", None)):
            payload = signing.make_signed("command", key, pad.device_id, command_id=command_id, command=name,
                                          args=args, boot=pad.runtime.presence.boot, issued_at=int(time.time()),
                                          valid_s=messages.COMMAND_VALID_S)
            fleet.publish(command_topic, messages.encode("command", payload))
        await until(lambda: pad.reboots == 1, what="the simulated reboot")
        await until(lambda: pad.online and pad.runtime.session == 2, what="back online with a new session")
        assert pad.panel.brightness == 30
        await until(lambda: len(fleet.payloads(ack_topic)) == 2, what="both acks")
        assert [messages.decode("command_ack", p)["status"] for p in fleet.payloads(ack_topic)] == ["done", "done"]
        await center.stop()
        fleet.close()

    run(scenario())


def test_a_pads_self_test_waits_for_every_button_and_sends_no_rating(center_broker, tmp_path: Path) -> None:
    rating = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=DEVICE)

    async def scenario() -> None:
        fleet = Recorder(center_broker.port, ACK, rating)
        device = make_device(center_broker.port, tmp_path, role="rating_pad", mac=MAC)
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up, what="device up")

        fleet.publish(COMMAND, command("s-1", "self_test", {"seconds": 60}, boot=device.presence.boot))
        await until(lambda: device.panel.lines == ["按键自检", "请按 5 4 3 2 1"], what="the self-test screen")
        for score in (5, 4, 3, 2):
            assert device.press(score) is False  # a test press, not a rating
        await until(lambda: device.panel.lines == ["按键自检", "请按 1"], what="one button left")
        assert "s-1" not in acks(fleet)  # not acknowledged before the last button
        device.press(1)
        await until(lambda: "s-1" in acks(fleet), what="self-test acked")
        assert acks(fleet)["s-1"] == [{"v": 1, "command_id": "s-1", "status": "done"}]
        assert device.button_check is None and device.panel.lines != ["按键自检", "请按 1"]

        fleet.publish(COMMAND, command("s-2", "self_test", {"seconds": 1}, boot=device.presence.boot))
        await until(lambda: device.button_check is not None, what="second self-test running")
        device.press(3)
        await until(lambda: "s-2" in acks(fleet), what="timed-out self-test acked")
        assert acks(fleet)["s-2"] == [{"v": 1, "command_id": "s-2", "status": "failed",
                                       "error": "buttons not pressed: 5, 4, 2, 1"}]
        assert fleet.payloads(rating) == []  # no test press became a rating
        await device.stop()
        await task
        fleet.close()

    run(scenario())


def test_a_displays_self_test_is_its_test_pattern(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        fleet = Recorder(center_broker.port, ACK)
        device = make_device(center_broker.port, tmp_path, role="queue_display", mac=MAC)
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up, what="device up")
        fleet.publish(COMMAND, command("s-3", "self_test", {"seconds": 5}, boot=device.presence.boot))
        await until(lambda: "s-3" in acks(fleet), what="self-test acked")
        assert acks(fleet)["s-3"][0]["status"] == "done"
        await until(lambda: device.panel.lines == ["■■■■■■■■■■", "■■■■■■■■■■"], what="the test pattern")
        await device.stop()
        await task
        fleet.close()

    run(scenario())


def test_an_old_signed_reboot_is_refused_after_the_board_was_reprovisioned(center_broker, tmp_path: Path) -> None:
    """Re-provisioning writes the flash anew (the command ids run are gone) and may keep the device key: the
    captured bytes of an old signed reboot then verified and ran again. A command names the boot it is for."""
    presence = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DEVICE)

    async def scenario() -> None:
        fleet = Recorder(center_broker.port, ACK, presence)
        resets: list[str] = []
        device = make_device(center_broker.port, tmp_path / "first", role="queue_display", mac=MAC,
                             reset=lambda: resets.append("first"))
        task = asyncio.create_task(device.run())
        first_boot = (await until(lambda: births(fleet, presence), what="the first birth"))[-1]["boot"]
        captured = command("c-old", "reboot", boot=first_boot)
        fleet.publish(COMMAND, captured)
        await until(lambda: resets == ["first"], what="the reboot")
        await asyncio.wait_for(task, 5)

        (tmp_path / "reprovisioned").mkdir()
        again = make_device(center_broker.port, tmp_path / "reprovisioned", role="queue_display", mac=MAC,
                            reset=lambda: resets.append("reprovisioned"))
        task = asyncio.create_task(again.run())
        new_boot = (await until(lambda: [b for b in births(fleet, presence) if b["boot"] != first_boot],
                                what="the birth of the new boot"))[-1]["boot"]
        fleet.publish(COMMAND, captured)  # the old bytes, replayed
        await until(lambda: len(acks(fleet).get("c-old", [])) == 2, what="the replay answered")
        refused = acks(fleet)["c-old"][1]
        assert refused["status"] == "rejected" and "earlier boot" in refused["error"], refused
        assert resets == ["first"]

        fleet.publish(COMMAND, command("c-new", "reboot", boot=new_boot))  # a fresh one runs
        await until(lambda: "c-new" in acks(fleet), what="the fresh reboot acknowledged")
        assert acks(fleet)["c-new"] == [{"v": 1, "command_id": "c-new", "status": "done"}]
        assert resets == ["first", "reprovisioned"]  # acknowledged before the reset (see the test above)
        await asyncio.wait_for(task, 5)
        fleet.close()

    run(scenario())
