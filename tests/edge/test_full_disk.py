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

from fleet.alerts.rules import health_conditions
from protocol import topics
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.disk import SmallDisk
from tests.support.mqtt import Recorder
from tests.support.processes import Program
from tests.support.staff import signed_in
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

KIOSK_REFUSAL = "暂时无法取号，请联系工作人员"


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
        assert (refused.status_code, refused.json()["detail"]) == (503, KIOSK_REFUSAL)

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


def test_while_the_disk_is_full_requests_get_a_clear_503_and_health_and_the_fleet_name_the_disk(
        tmp_path, broker_factory, data_disk):
    """The fault run's 500s: 32 ticket requests and 48 下一位 calls failed with no word of why."""
    center = broker_factory("center")
    county = broker_factory("county")
    edge_health = Recorder(county.port, topics.build(topics.EDGE_HEALTH, center=CENTER_CODE))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # A 4 MB disk: the floor under which it warns of low space is set below what it has free.
    config = write_edge_config(tmp_path / "edge", center.port, county.port, port, printer="none",
                               storage="min_free_mb = 1")
    agent = Program(["-m", "edge_agent", "--config", str(config)], tmp_path / "edge.log", f"{base}/api/health")
    agent.start()

    def storage_at_county() -> dict:
        payloads = edge_health.on(topics.build(topics.EDGE_HEALTH, center=CENTER_CODE))
        return json.loads(payloads[-1])["components"]["storage"] if payloads else {}

    try:
        caller = signed_in(base, 3)
        httpx.post(f"{base}/api/tickets", json={"service": "A"}).raise_for_status()
        storage = health(base)["storage"]
        assert (storage["ok"], storage["state"], storage["write_failures"]) == (True, "ok", 0)
        assert storage["free_bytes"] > 1024 * 1024

        data_disk.fill()
        ticket = httpx.post(f"{base}/api/tickets", json={"service": "A"})
        assert (ticket.status_code, ticket.json()["detail"]) == (503, KIOSK_REFUSAL)
        called = caller.press("next")
        assert called.status_code == 503
        assert "暂时无法" in called.json()["detail"] and "存储空间已满" in called.json()["detail"]

        now = health(base)
        assert now["storage"]["ok"] is False and now["storage"]["state"] == "disk_full"
        assert now["storage"]["free_bytes"] == 0 and now["storage"]["write_failures"] >= 2
        assert now["storage"]["last_write_failure_at"] > 0
        assert now["readiness"]["ok"] is False
        assert any("存储空间已满" in reason for reason in now["readiness"]["reasons"])

        # The county hears it, and its alert rule names the disk.
        full = wait_until(lambda: storage_at_county().get("write_failures", 0) >= 2 and storage_at_county(), 30,
                          "the county to hear of the failed writes")
        assert (full["ok"], full["state"], full["free_bytes"]) == (False, "disk_full", 0)
        alerts = health_conditions(CENTER_CODE, {"components": {"storage": full}})
        assert [(a.rule, a.message, a.severity) for a in alerts] == [("storage", "边缘网关存储空间已满", "critical")]

        # Freed: it serves again, and says so, without a restart.
        data_disk.free()
        wait_until(lambda: health(base)["storage"]["state"] == "ok", 30, "storage health to recover")
        assert not any("存储" in reason for reason in health(base)["readiness"]["reasons"])
        assert httpx.post(f"{base}/api/tickets", json={"service": "A"}).json()["number"] == "A002"
        assert caller.press("next").json()["ticket"] == "A001"
        wait_until(lambda: storage_at_county().get("state") == "ok", 30, "the county to hear the disk is fine")
        assert agent.process.poll() is None
    finally:
        agent.stop()
        edge_health.close()
