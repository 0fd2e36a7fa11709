"""GET /metrics: Prometheus text, scoped like the API, with the ingest's message counts."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from fleet_testkit import CENTER, DISPLAY, OTHER_CENTER, PAD, add_user, wait_for
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from fleet.app import create_app
from fleet.ingest import handle_message
from fleet.models import Device
from protocol import topics


def metrics(client: TestClient, token: str) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def birth(engine, center: str, device: str | None, role: str, state: str = "online") -> None:
    payload = {"v": 1, "state": state, "session": 1, "role": role, "board": "b", "fw": "1", "contract": 1}
    topic = (topics.build(topics.DEVICE_PRESENCE, center=center, device=device) if device
             else topics.build(topics.EDGE_PRESENCE, center=center))
    handle_message(engine, topic, json.dumps(payload).encode())


def test_devices_and_centers_by_state_within_the_scope(fleet_settings) -> None:
    app = create_app(fleet_settings)
    engine = app.state.engine
    birth(engine, CENTER, None, "edge_agent")
    birth(engine, CENTER, DISPLAY, "queue_display")
    birth(engine, CENTER, PAD, "rating_pad")
    birth(engine, CENTER, PAD, "rating_pad", state="offline")
    birth(engine, OTHER_CENTER, None, "edge_agent", state="offline")
    with Session(engine) as session:  # known to the fleet, never seen online (e.g. registered, not yet connected)
        session.add(Device(device_id="dev-0200000000aa", center_code=CENTER, role="rating_pad", window=7))
        session.commit()
    admin = add_user(engine)
    town = add_user(engine, "town", "town_operator", OTHER_CENTER[:9])
    with TestClient(app) as client:
        county = metrics(client, admin)
        assert county[("fleet_devices", (("role", "queue_display"), ("status", "online")))] == 1
        assert county[("fleet_devices", (("role", "rating_pad"), ("status", "offline")))] == 1
        assert county[("fleet_devices", (("role", "rating_pad"), ("status", "awaiting")))] == 1
        assert county[("fleet_centers", (("edge", "online"),))] == 1
        assert county[("fleet_centers", (("edge", "offline"),))] == 1
        scoped = metrics(client, town)
        assert not any(name == "fleet_devices" for name, _ in scoped)
        assert scoped[("fleet_centers", (("edge", "online"),))] == 0
        assert scoped[("fleet_centers", (("edge", "offline"),))] == 1
        assert client.get("/metrics").status_code == 401


@pytest.mark.broker
def test_ingest_message_counts_by_topic_and_outcome(fleet_settings, county_broker, edge_factory) -> None:
    settings = fleet_settings.model_copy(update={"ingest_enabled": True, "broker_port": county_broker.port})
    app = create_app(settings)
    token = add_user(app.state.engine)
    with TestClient(app) as client:
        wait_for(lambda: app.state.ingest.connected, "the ingest to subscribe")
        edge = edge_factory(county_broker.port)
        edge.edge_birth()
        edge.ticket("t-1", 1_700_000_000)
        edge.ticket("t-1", 1_700_000_000)  # delivered twice: stored once
        edge.raw(topics.build(topics.TICKET_EVENT, center=CENTER), b"{not json")

        def counted() -> dict:
            values = metrics(client, token)
            ingested = {labels: v for (name, labels), v in values.items() if name == "fleet_ingest_messages_total"}
            return ingested if sum(ingested.values()) >= 4 else {}

        ingested = wait_for(counted, "the four messages to be counted")
        assert ingested == {
            (("outcome", "applied"), ("topic", "edge_presence")): 1,
            (("outcome", "stored"), ("topic", "ticket_event")): 1,
            (("outcome", "duplicate"), ("topic", "ticket_event")): 1,
            (("outcome", "dropped"), ("topic", "ticket_event")): 1,
        }
