"""The county uplink against real Mosquitto: nothing is lost while the county is unreachable."""

import asyncio
import json
import signal
import threading

import paho.mqtt.client as mqtt
import pytest

from edge_agent.agent import EdgeAgent
from edge_agent.config import load_config
from protocol import topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.processes import Program
from tests.support.waiting import wait_until
from tools.mosquitto import free_port


class CountySubscriber:
    """A persistent-session subscriber, as the fleet's ingest is: the broker queues for it while it is away."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="county-test", clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(topics.subscription(topics.TICKET_EVENT), qos=1)

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            self.received.append((message.topic, json.loads(message.payload), message.retain))

    def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, what="subscriber connected")

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def ticket_numbers(self) -> list[str]:
        with self.lock:
            return [payload["ticket"] for topic, payload, _ in self.received if payload.get("kind") == "issued"]


@pytest.mark.broker
def test_events_issued_while_the_county_is_down_all_arrive_in_order(tmp_path, broker_factory):
    center = broker_factory("center")
    county = broker_factory("county", persistent=True)
    subscriber = CountySubscriber(county.port)
    subscriber.connect()
    subscriber.disconnect()  # its session (and subscription) stays on the broker
    county.stop()

    config = load_config(write_edge_config(tmp_path / "edge", center.port, county.port, free_port(), printer="none"))
    loop = asyncio.new_event_loop()
    agent = EdgeAgent(config)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coro_or_fn):
        if asyncio.iscoroutine(coro_or_fn):
            return asyncio.run_coroutine_threadsafe(coro_or_fn, loop).result(10)
        return asyncio.run_coroutine_threadsafe(asyncio.to_thread(coro_or_fn), loop).result(10)

    try:
        call(agent.start())
        numbers = [call(agent.take_ticket("A"))["number"] for _ in range(20)]
        assert agent.store.outbox_size() >= 20  # kept on disk while the county is unreachable
        assert not agent.uplink.connected.is_set()

        county.start()
        wait_until(lambda: agent.store.outbox_size() == 0, 30, "outbox drained after the county came back")
        subscriber.connect()
        wait_until(lambda: len(subscriber.ticket_numbers()) >= 20, 15, "all issued events at the county")
        assert subscriber.ticket_numbers() == numbers
        assert numbers[0] == "A001" and numbers[-1] == "A020"
    finally:
        subscriber.disconnect()
        call(agent.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.mark.broker
def test_a_killed_edge_leaves_its_will_and_a_restart_has_a_higher_session(tmp_path, broker_factory):
    center = broker_factory("center")
    county = broker_factory("county")
    http_port = free_port()
    config_path = write_edge_config(tmp_path / "edge", center.port, county.port, http_port, printer="none")
    seen: list[dict] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda c, u, m: seen.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", county.port)
    watcher.subscribe(topics.build(topics.EDGE_PRESENCE, center=CENTER_CODE), qos=1)
    watcher.loop_start()
    agent = Program(["-m", "edge_agent", "--config", str(config_path)], tmp_path / "edge.log",
                    f"http://127.0.0.1:{http_port}/api/health")
    try:
        agent.start()
        wait_until(lambda: any(p["state"] == "online" for p in seen), what="the edge's birth")
        agent.stop(signal.SIGKILL)  # a power cut: no clean disconnect, so the broker publishes the will
        wait_until(lambda: any(p["state"] == "offline" for p in seen), what="the edge's will")
        first_birth = next(p for p in seen if p["state"] == "online")
        will = next(p for p in seen if p["state"] == "offline")
        assert first_birth["role"] == "edge_agent" and first_birth["contract"] == 1
        assert will["session"] == first_birth["session"]

        agent.start()
        wait_until(lambda: [p for p in seen if p["state"] == "online"][1:], what="the second birth")
        second_birth = [p for p in seen if p["state"] == "online"][1]
        assert second_birth["session"] > will["session"]
    finally:
        agent.stop()
        watcher.loop_stop()
        watcher.disconnect()
