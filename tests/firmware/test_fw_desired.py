"""Signed desired configuration end to end: real Mosquitto, the real runtime, state on a 'flash' folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fw_helpers import CENTER, DEVICE_KEY, Recorder, make_device, run, until

from protocol import identity, messages, signing, topics

pytestmark = pytest.mark.broker

MAC = "02:00:00:00:00:07"
DEVICE = identity.device_id_from_mac(MAC)
DESIRED = topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER, device=DEVICE)
REPORTED = topics.build(topics.DEVICE_CONFIG_REPORTED, center=CENTER, device=DEVICE)
REQUEST = topics.build(topics.RATING_REQUEST, center=CENTER, window=3)


def desired(version: int, config: dict, key: bytes = DEVICE_KEY, device: str = DEVICE) -> bytes:
    payload = signing.make_signed("desired_config", key, device, version=version, config=config,
                                  issued_by="county-admin")
    return messages.encode("desired_config", payload)


def reports(recorder: Recorder) -> list[dict]:
    return [messages.decode("reported_config", p) for p in recorder.payloads(REPORTED)]


def test_config_is_verified_applied_reported_and_survives_a_reboot(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        fleet = Recorder(center_broker.port, REPORTED)
        fleet.publish(DESIRED, desired(3, {"prompt_text": "请您评价本次服务", "rating_timeout_s": 20,
                                           "brightness": 40}), retain=True)
        device = make_device(center_broker.port, tmp_path)
        task = asyncio.create_task(device.run())
        await until(lambda: reports(fleet), what="a report")
        assert reports(fleet)[0] == {"v": 1, "version": 3, "status": "applied", "in_force": 3}
        assert device.panel.brightness == 40
        request = messages.make("rating_request", request_id="rq-1", window=3, state="open", ticket="A001",
                                timeout_s=60)
        fleet.publish(REQUEST, messages.encode("rating_request", request), retain=True)
        await until(lambda: device.panel.lines[-1:] == ["请您评价本次服务"], what="the configured prompt")
        assert device.app.timeout_s() == 20

        fleet.publish(DESIRED, desired(4, {"brightness": 90}, key=bytes(32)), retain=True)  # not our key
        await until(lambda: len(reports(fleet)) >= 2, what="the rejection")
        assert reports(fleet)[1] == {"v": 1, "version": 4, "status": "rejected", "in_force": 3,
                                     "error": "signature does not verify"}
        fleet.publish(DESIRED, desired(5, {"idle_text": "只有显示屏有"}), retain=True)
        fleet.publish(DESIRED, desired(2, {"brightness": 10}), retain=True)
        await until(lambda: len(reports(fleet)) >= 4, what="two more reports")
        assert "unknown key 'idle_text'" in reports(fleet)[2]["error"]
        assert reports(fleet)[3]["error"] == "version 2 is older than version 3 in force"
        assert [r["in_force"] for r in reports(fleet)] == [3, 3, 3, 3]
        # Retained: a late subscriber (the fleet after a restart) gets the rejection, and from it what runs.
        late = Recorder(center_broker.port, REPORTED)
        await until(lambda: late.payloads(REPORTED), what="the retained report")
        retained_report = messages.decode("reported_config", late.payloads(REPORTED)[-1])
        assert retained_report["status"] == "rejected" and retained_report["in_force"] == 3
        late.close()
        assert device.panel.brightness == 40 and device.desired.version == 3
        assert "rejected" in device.last_error

        await device.stop()
        await task
        rebooted = make_device(center_broker.port, tmp_path)  # the same flash
        assert rebooted.desired.version == 3 and rebooted.panel.brightness == 40  # in force before connecting
        assert rebooted.app.prompt_text == "请您评价本次服务"
        fleet.publish(DESIRED, desired(6, {"thanks_text": "多谢"}), retain=True)
        task = asyncio.create_task(rebooted.run())
        await until(lambda: any(r["version"] == 6 for r in reports(fleet)), what="version 6 applied")
        assert reports(fleet)[-1] == {"v": 1, "version": 6, "status": "applied", "in_force": 6}
        assert rebooted.app.thanks_text == "多谢" and rebooted.app.prompt_text == "请您评价本次服务"  # merged
        retained = Recorder(center_broker.port, REPORTED)
        await until(lambda: retained.payloads(REPORTED), what="the retained report")
        assert messages.decode("reported_config", retained.payloads(REPORTED)[-1])["version"] == 6
        await rebooted.stop()
        await task
        for recorder in (fleet, retained):
            recorder.close()

    run(scenario())


def test_a_device_without_a_key_rejects_everything_and_junk_is_answered(center_broker, tmp_path: Path) -> None:
    async def scenario() -> None:
        fleet = Recorder(center_broker.port, REPORTED)
        device = make_device(center_broker.port, tmp_path, key=None)
        task = asyncio.create_task(device.run())
        await until(lambda: device.client.up, what="device up")
        fleet.publish(DESIRED, desired(1, {"brightness": 10}))
        fleet.publish(DESIRED, b"{not json")
        fleet.publish(DESIRED, b'{"v": 1, "version": 9, "config": {}}')
        await until(lambda: len(reports(fleet)) >= 2, what="two reports")
        assert reports(fleet)[0]["error"] == "no device key provisioned" and reports(fleet)[0]["in_force"] == 0
        assert reports(fleet)[1]["version"] == 9 and "sig" in reports(fleet)[1]["error"]
        assert device.dropped == 1 and device.client.up and device.client.reconnects == 0
        await device.stop()
        await task
        fleet.close()

    run(scenario())
