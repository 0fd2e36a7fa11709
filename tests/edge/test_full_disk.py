"""The edge's data directory on a real, small filesystem that fills up and is freed again (issue 19).

While it is full the agent cannot store anything, so it refuses what needs storing; once it is freed,
everything it kept reaches the county without a restart, and it was never silent about it.
"""

from __future__ import annotations

import json
import threading

import httpx
import paho.mqtt.client as mqtt
import pytest

from protocol import topics
from tests.support.centers import write_edge_config
from tests.support.disk import SmallDisk
from tests.support.processes import Program
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker


class CountySubscriber:
    """What the fleet's ingest would receive: ticket events, on a persistent session."""

    def __init__(self, port: int) -> None:
        self.numbers: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="county-full-disk", clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(topics.subscription(topics.TICKET_EVENT), qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()  # reconnects by itself after the broker's restart

    def _on_message(self, _client, _userdata, message) -> None:
        payload = json.loads(message.payload)
        if payload.get("kind") == "issued":
            with self.lock:
                self.numbers.add(payload["ticket"])

    def has(self, numbers: list[str]) -> bool:
        with self.lock:
            return set(numbers) <= self.numbers

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def data_disk(tmp_path):
    disk = SmallDisk(tmp_path / "edge" / "data", size_mb=4).mount()
    yield disk
    disk.unmount()


def health(base: str) -> dict:
    return httpx.get(f"{base}/api/health", timeout=10).json()


def test_a_full_disk_does_not_stop_the_uplink_for_good(tmp_path, broker_factory, data_disk):
    """The fault run's defect: after a full disk, tickets were issued again but never forwarded, silently."""
    center = broker_factory("center")
    county = broker_factory("county", persistent=True)
    subscriber = CountySubscriber(county.port)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_edge_config(tmp_path / "edge", center.port, county.port, port, printer="none")
    agent = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log", f"{base}/api/health")
    agent.start()
    issued: list[str] = []

    def take_ticket() -> httpx.Response:
        response = httpx.post(f"{base}/api/tickets", json={"service": "A"}, timeout=10)
        if response.status_code == 200:
            issued.append(response.json()["number"])
        return response

    try:
        take_ticket().raise_for_status()
        wait_until(lambda: subscriber.has(issued), 30, "the first ticket at the county")

        # The county is away for a while: tickets wait in the outbox on the edge's disk ...
        county.stop()
        for _ in range(3):
            take_ticket().raise_for_status()
        # ... and then the disk fills up (the voice cache, logs, a runaway file).
        data_disk.fill()
        refused = take_ticket()
        assert refused.status_code >= 500, "a ticket cannot be issued on a full disk"

        # The county comes back while the disk is full: the uplink must neither die nor hide its trouble.
        county.start()
        wait_until(lambda: health(base)["county_uplink"]["forward_failures"] >= 1, 60,
                   "the uplink to report that it could not record what it forwarded")
        assert "full" in health(base)["county_uplink"]["last_forward_error"]

        # The disk is freed; no restart: what was kept reaches the county, and new tickets follow.
        data_disk.free()
        wait_until(lambda: subscriber.has(issued), 60, "the tickets kept during the fault at the county")
        take_ticket().raise_for_status()
        wait_until(lambda: subscriber.has(issued) and health(base)["county_uplink"]["outbox"] == 0, 60,
                   "a ticket issued after the fault at the county, the outbox empty")
        assert agent.process.poll() is None
    finally:
        agent.stop()
        subscriber.close()
