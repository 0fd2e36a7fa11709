"""The agent between the county and the center's devices: configuration and commands down,
reported state up, and bad input dropped without harm. Real brokers, the real agent program."""

from __future__ import annotations

import json

import pytest

from protocol import messages, signing, topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.mqtt import Recorder
from tests.support.processes import Program
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

DEVICE = "dev-a4cf12ab34cd"
STRANGER = "dev-0000000000ff"
KEY = bytes(range(32))


@pytest.fixture
def center(tmp_path, broker_factory):
    county_broker = broker_factory("county")
    center_broker = broker_factory("center")
    http_port = free_port()
    config = write_edge_config(tmp_path / "edge", center_broker.port, county_broker.port, http_port, printer="none")
    agent = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log",
                    f"http://127.0.0.1:{http_port}/api/health").start()
    county = Recorder(county_broker.port, topics.ROOT + "/#")
    devices = Recorder(center_broker.port, topics.subscription(topics.DEVICE_CONFIG_DESIRED, center=CENTER_CODE),
                       topics.subscription(topics.DEVICE_COMMAND, center=CENTER_CODE))
    wait_until(lambda: county.on(topics.build(topics.EDGE_PRESENCE, center=CENTER_CODE)), what="the edge's birth")
    yield {"agent": agent, "county": county, "devices": devices, "center_broker": center_broker,
           "health": f"http://127.0.0.1:{http_port}/api/health"}
    county.close()
    devices.close()
    agent.stop()


def birth(device_id: str, window: int = 3) -> bytes:
    return messages.encode("presence", messages.make(
        "presence", state="online", session=1, role="rating_pad", board="sim", fw="0.1.0", contract=1, window=window))


def test_desired_config_and_commands_reach_the_centers_devices(center):
    county, devices = center["county"], center["devices"]
    desired_topic = topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER_CODE, device=DEVICE)
    command_topic = topics.build(topics.DEVICE_COMMAND, center=CENTER_CODE, device=DEVICE)
    desired = signing.make_signed("desired_config", KEY, DEVICE, version=4, config={"rating_timeout_s": 45})
    command = signing.make_signed("command", KEY, DEVICE, command_id="c-1", command="identify")

    county.publish(desired_topic, messages.encode("desired_config", desired), retain=True)
    county.publish(command_topic, messages.encode("command", command))
    wait_until(lambda: devices.on(desired_topic) and devices.on(command_topic), what="both relayed to the center")
    relayed = json.loads(devices.on(desired_topic)[-1])
    assert relayed == desired and signing.verify(KEY, DEVICE, relayed)  # relayed unchanged: still verifies

    # A device that connects later gets the desired configuration: it is retained on the center broker.
    late = Recorder(center["center_broker"].port, desired_topic)
    try:
        wait_until(lambda: late.on(desired_topic), what="the retained desired config for a late device")
    finally:
        late.close()


def test_the_agent_puts_desired_config_back_after_the_center_broker_lost_it(center):
    county = center["county"]
    desired_topic = topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER_CODE, device=DEVICE)
    desired = signing.make_signed("desired_config", KEY, DEVICE, version=5, config={"brightness": 30})
    county.publish(desired_topic, messages.encode("desired_config", desired), retain=True)
    wait_until(lambda: center["devices"].on(desired_topic), what="the desired config relayed")

    center["center_broker"].restart()  # no persistence: every retained message on it is gone
    late = Recorder(center["center_broker"].port, desired_topic)
    try:
        wait_until(lambda: late.on(desired_topic), 20, "the agent to republish the desired config")
        assert json.loads(late.on(desired_topic)[-1])["version"] == 5
    finally:
        late.close()


def test_reported_state_goes_up_only_for_known_devices(center):
    county = center["county"]
    device_side = Recorder(center["center_broker"].port)
    try:
        device_side.publish(topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=DEVICE), birth(DEVICE),
                            retain=True)
        reported_topic = topics.build(topics.DEVICE_CONFIG_REPORTED, center=CENTER_CODE, device=DEVICE)
        ack_topic = topics.build(topics.DEVICE_COMMAND_ACK, center=CENTER_CODE, device=DEVICE)
        stranger_topic = topics.build(topics.DEVICE_CONFIG_REPORTED, center=CENTER_CODE, device=STRANGER)
        wait_until(lambda: county.on(topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=DEVICE)),
                   what="the device's birth relayed to the county")
        reported = messages.encode("reported_config", messages.make("reported_config", version=4, status="applied"))
        device_side.publish(stranger_topic, reported, retain=True)  # never announced itself: dropped
        device_side.publish(reported_topic, reported, retain=True)
        device_side.publish(ack_topic, messages.encode("command_ack", messages.make(
            "command_ack", command_id="c-1", status="done")))
        wait_until(lambda: county.on(reported_topic) and county.on(ack_topic), what="reported state at the county")
        assert county.on(stranger_topic) == []
        # Retained at the county too: the fleet learns what each device runs even after a restart.
        late = Recorder(county.client._port, reported_topic)
        try:
            wait_until(lambda: late.on(reported_topic), what="the reported config retained at the county")
        finally:
            late.close()
    finally:
        device_side.close()


def test_bad_input_is_dropped_and_the_agent_keeps_working(center):
    county, agent = center["county"], center["agent"]
    device_side = Recorder(center["center_broker"].port)
    try:
        device_side.publish(topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=DEVICE), birth(DEVICE),
                            retain=True)
        health_topic = topics.build(topics.DEVICE_HEALTH, center=CENTER_CODE, device=DEVICE)
        device_side.publish(health_topic, b"not json")
        device_side.publish(health_topic, json.dumps({"v": 1, "session": "one"}).encode())  # wrong field type
        device_side.publish(health_topic, b"{" + b" " * (messages.MAX_PAYLOAD_BYTES + 10) + b"}")  # huge
        device_side.publish(topics.ROOT + "/" + CENTER_CODE + "/device/not-a-device/health", b"{}")
        county.publish(topics.build(topics.DEVICE_COMMAND, center=CENTER_CODE, device=DEVICE), b"[1, 2]")
        good = messages.encode("health", messages.make("health", session=1, uptime_s=5.0))
        device_side.publish(health_topic, good)
        wait_until(lambda: county.on(health_topic), what="the good health message relayed after the bad ones")
        assert county.on(health_topic) == [good]
        assert center["devices"].on(topics.build(topics.DEVICE_COMMAND, center=CENTER_CODE, device=DEVICE)) == []
        log = agent.log()
        for reason in ("payload is not JSON", "field 'session' must be int", "bytes is more than any device message",
                       "device id must look like", "command: payload must be a JSON object"):
            assert reason in log
        assert agent.process.poll() is None  # still running
    finally:
        device_side.close()


def test_the_center_reports_whether_it_can_serve_residents(center):
    county = center["county"]
    health_topic = topics.build(topics.EDGE_HEALTH, center=CENTER_CODE)
    wait_until(lambda: county.on(health_topic), what="the center's health summary")
    summary = messages.decode("edge_health", county.on(health_topic)[-1])
    assert summary["ready"] is False  # no display or pad has connected yet
    assert "3号窗口评价器离线" in summary["reasons"] and "1号窗口排队显示屏离线" in summary["reasons"]
    assert summary["components"]["center_broker"] == {"ok": True, "state": "connected"}

    # Once window 3's pad is online, it is no longer among the reasons.
    device_side = Recorder(center["center_broker"].port)
    try:
        device_side.publish(topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=DEVICE), birth(DEVICE),
                            retain=True)
        wait_until(lambda: "3号窗口评价器离线" not in messages.decode("edge_health", county.on(health_topic)[-1])[
            "reasons"], what="a new summary without window 3's pad")
    finally:
        device_side.close()
