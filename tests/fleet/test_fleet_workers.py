"""Several ingest workers on one shared subscription, against real Mosquitto and PostgreSQL.

This is how a province runs the fleet (docs/deployment.md): N workers split
the county brokers' event stream with an MQTT v5 shared subscription and
write to one PostgreSQL. Every event must be stored exactly once, including
events delivered twice and events that arrive while a worker restarts.
"""

from __future__ import annotations

import uuid

import httpx
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy

from protocol import messages, topics
from tests.support.processes import Program
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker

CENTERS = ["445202101001", "445202101002", "445202102001"]


def start_worker(tmp_path, name: str, database_url: str, broker_port: int) -> tuple[Program, str]:
    port = free_port()
    program = Program(["-m", "fleet", "--database-url", database_url, "--broker", f"mqtt://127.0.0.1:{broker_port}",
                       "--port", str(port)], tmp_path / f"{name}.log", f"http://127.0.0.1:{port}/healthz",
                      env={"FLEET_MQTT_CLIENT_ID": f"fleet-ingest-{name}"})  # each worker its own session
    return program.start(), f"http://127.0.0.1:{port}"


def ingest_state(base: str) -> str:
    return httpx.get(f"{base}/healthz", timeout=2).json()["ingest"]


def ticket_event(center: str, n: int) -> tuple[str, bytes]:
    payload = messages.make("ticket_event", event_id=f"{center}-{n:05d}", kind="issued", ticket=f"A{n:03d}",
                            service="A", service_name="社保业务", ts=1_795_400_000 + n)
    return topics.build(topics.TICKET_EVENT, center=center), messages.encode("ticket_event", payload)


def publish_all(port: int, items: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-" + uuid.uuid4().hex[:6])
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for start in range(0, len(items), 500):  # paho's message ids wrap at 65,535: wait in batches
            infos = [client.publish(topic, payload, qos=1) for topic, payload in items[start:start + 500]]
            for info in infos:
                info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def stored(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT center_code, event_id FROM ticketevent"))


def test_two_workers_on_a_shared_subscription_store_every_event_exactly_once(tmp_path, county_broker, postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)
    first, first_url = start_worker(tmp_path, "a", postgres_url, county_broker.port)
    second, second_url = start_worker(tmp_path, "b", postgres_url, county_broker.port)
    try:
        for base in (first_url, second_url):
            wait_until(lambda b=base: ingest_state(b) == "connected", what="both workers subscribed")
        events = [ticket_event(center, n) for center in CENTERS for n in range(1, 201)]
        duplicates = events[::7]  # an edge re-sends what it was not sure about
        publish_all(county_broker.port, events + duplicates)
        wait_until(lambda: len(stored(engine)) >= len(events), 60, "the first events stored")

        # A worker restarts (a rolling deployment). Its persistent session stays in the shared group, so the
        # broker keeps its share of the stream for it, and it stores that share when it is back.
        second.stop()
        later = [ticket_event(center, n) for center in CENTERS for n in range(201, 301)]
        publish_all(county_broker.port, later)
        second.start()
        wait_until(lambda: len(stored(engine)) >= len(events) + len(later), 60, "the later events stored")

        rows = stored(engine)
        assert len(rows) == len(set(rows)) == len(events) + len(later)  # each exactly once
        expected = {(center, f"{center}-{n:05d}") for center in CENTERS for n in range(1, 301)}
        assert set(rows) == expected
    finally:
        first.stop()
        second.stop()
        engine.dispose()
