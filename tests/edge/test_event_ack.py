"""event_ack from the fleet, signed with the edge's key: only the fleet can make the edge forget an event.

The edge keeps every forwarded ticket and rating event until an event_ack names it (docs/protocol.md). An
unsigned ack could be published by anyone on the county broker, and the edge deleted what it named: events
the fleet never stored were gone. Acks are now signed with the center's edge key (issued with the edge's
credentials); the edge refuses, logs and counts any other, and keeps the events for a re-send.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import Session, select

from edge_agent.adapters.uplink import Uplink
from edge_agent.awaiting_ack import AwaitingAck
from edge_agent.config import ConfigError, load_config
from edge_agent.retained import RetainedCopies
from edge_agent.store import EdgeStore
from fleet.acks import AckBatcher, EdgeKeys
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db
from fleet.devconfig.keys import KeyBox
from fleet.ingest import Ingest
from fleet.models import TicketEvent
from fleet.registration import service
from fleet.settings import Settings
from protocol import messages, signing, topics
from tests.edge.test_broker_accounts import NOW, RunningAgent
from tests.support.aio import run_async
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.mqtt import Recorder
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

BOX = KeyBox(b"k" * 32)
KEY = bytes(range(32))  # an edge key
OTHER_CENTER = "445202102003"


@pytest.fixture
def fleet(tmp_path: Path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


def edge_with_key(tmp_path: Path, center_port: int, county_port: int, key_hex: str):
    path = write_edge_config(tmp_path / "edge", center_port, county_port, free_port(), printer="none")
    county = f"[brokers.county]\nport = {county_port}\n"
    text = path.read_text(encoding="utf-8").replace(county, f'{county}edge_key = "{key_hex}"\n')
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def ack(event_ids: list[str], key: bytes, center: str = CENTER_CODE) -> bytes:
    return messages.encode("event_ack", signing.make_signed("event_ack", key, center, event_ids=event_ids))


@pytest.mark.broker
def test_a_forged_ack_deletes_nothing_and_the_fleets_signed_ack_does(tmp_path, fleet, broker_factory):
    center, county = broker_factory("center"), broker_factory("county")
    with Session(fleet) as session:
        issued = service.issue_edge_credentials(session, BOX, CLI_USER, CENTER_CODE, NOW)
        session.commit()
    running = RunningAgent(edge_with_key(tmp_path, center.port, county.port, issued.edge_key_hex))
    forger = Recorder(county.port, client_id="forger")
    ingest: Ingest | None = None
    try:
        agent = running.agent
        wait_until(agent.uplink.connected.is_set, what="the edge on the county broker")
        asyncio.run_coroutine_threadsafe(agent.take_ticket("A"), running.loop).result(10)
        wait_until(lambda: agent.awaiting.count() == 1, what="the issued event forwarded, awaiting the fleet's ack")
        [event] = agent.awaiting.due(time.time() + 3600)

        # Nobody stored it, yet acks name it: one signed with a key of the forger's own, one signed with this
        # center's key but for another center (the signature covers the center's code), one without a signature.
        ack_topic = topics.build(topics.EVENT_ACK, center=CENTER_CODE)
        forger.publish(ack_topic, ack([event.event_id], bytes(32)))
        forger.publish(ack_topic, ack([event.event_id], bytes.fromhex(issued.edge_key_hex), OTHER_CENTER))
        forger.publish(ack_topic, messages.encode("event_ack", {"v": 1, "event_ids": [event.event_id],
                                                                "sig": "00" * 32}))
        wait_until(lambda: agent.uplink.health()["refused_acks"] == 3, what="the three forged acks refused")
        assert agent.awaiting.count() == 1
        health = agent.uplink.health()
        assert health["awaiting_ack"] == 1 and health["acks_problem"] == ""

        # The fleet stores the event (re-sent after the ack time-out) and signs its ack: now it is forgotten.
        settings = Settings(data_dir=tmp_path / "fleet", database_url=str(fleet.url), ingest_enabled=True,
                            broker_port=county.port, mqtt_client_id="fleet-" + uuid.uuid4().hex[:8])
        ingest = Ingest(settings, fleet, box=BOX)
        ingest.start()
        wait_until(lambda: agent.awaiting.count() == 0, 30, "the event acknowledged by the fleet")
        with Session(fleet) as session:
            assert [e.event_id for e in session.exec(select(TicketEvent))] == [event.event_id]
        assert agent.uplink.health()["refused_acks"] == 3
    finally:
        if ingest is not None:
            ingest.stop()
        forger.close()
        running.stop()


def test_without_an_edge_key_no_ack_is_taken_and_health_says_why(tmp_path):
    config = load_config(write_edge_config(tmp_path / "edge", 1883, 1884, 8080, printer="none"))
    assert config.edge_key is None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = EdgeStore(config.data_dir / "edge.sqlite3")
    awaiting = AwaitingAck(config.data_dir / "edge.sqlite3")
    retained = RetainedCopies(config.data_dir / "edge.sqlite3")
    uplink = Uplink(config, store, retained, awaiting)
    try:
        awaiting.sent("e-1", topics.build(topics.TICKET_EVENT, center=CENTER_CODE), b"{}", 1.0)
        message = SimpleNamespace(topic=topics.build(topics.EVENT_ACK, center=CENTER_CODE), payload=ack(["e-1"], KEY))
        run_async(uplink.on_message(message))
        health = uplink.health()
        assert health["refused_acks"] == 1 and "brokers.county.edge_key is not configured" in health["acks_problem"]
        assert awaiting.count() == 1
    finally:
        awaiting.close()
        retained.close()
        store.close()


def test_the_fleet_signs_each_centers_acks_with_its_edge_key_and_sends_none_without_one(fleet):
    with Session(fleet) as session:
        issued = service.issue_edge_credentials(session, BOX, CLI_USER, CENTER_CODE, NOW)
        session.commit()
    sent: list[tuple[str, dict]] = []
    acks = AckBatcher(lambda topic, raw: sent.append((topic, messages.decode("event_ack", raw))), EdgeKeys(fleet, BOX))
    acks.add(CENTER_CODE, "e-1")
    acks.add(OTHER_CENTER, "e-2")  # no edge credentials issued for it
    acks.flush()
    assert [topic for topic, _ in sent] == [topics.build(topics.EVENT_ACK, center=CENTER_CODE)]
    assert sent[0][1]["event_ids"] == ["e-1"]
    assert signing.verify_for_edge(bytes.fromhex(issued.edge_key_hex), CENTER_CODE, sent[0][1])
    assert acks.unsigned == 1 and acks.sent == 1


def test_one_flush_for_many_centers_reads_their_edge_keys_in_one_query(fleet):
    """After an outage a flush names hundreds of centers; a query each took most of the ack thread's time."""
    from sqlalchemy import event

    centers = [f"445202101{n:03d}" for n in range(1, 31)]
    issued = {}
    with Session(fleet) as session:
        for center in centers[:-1]:  # the last one has no edge credentials
            issued[center] = service.issue_edge_credentials(session, BOX, CLI_USER, center, NOW).edge_key_hex
        session.commit()
    queries: list[str] = []
    event.listen(fleet, "before_cursor_execute", lambda _c, _cu, statement, *_a: queries.append(statement))
    sent: list[tuple[str, dict]] = []
    acks = AckBatcher(lambda topic, raw: sent.append((topic, messages.decode("event_ack", raw))), EdgeKeys(fleet, BOX))
    for center in centers:
        acks.add(center, f"{center}-e-1")
    acks.flush()
    assert len([q for q in queries if "edge_county_account" in q]) == 1
    assert sorted(topics.parse(topic)[1]["center"] for topic, _ in sent) == centers[:-1]
    for topic, payload in sent:
        center = topics.parse(topic)[1]["center"]
        assert payload["event_ids"] == [f"{center}-e-1"]
        assert signing.verify_for_edge(bytes.fromhex(issued[center]), center, payload)
    assert acks.unsigned == 1


def test_an_edge_key_that_is_not_the_fleets_hex_is_a_config_error_with_its_path(tmp_path):
    path = write_edge_config(tmp_path / "edge", 1883, 1884, 8080, printer="none")
    for wrong in ('"not hex"', '"00ff"', "42"):
        text = path.read_text(encoding="utf-8").replace("[brokers.county]\nport = 1884\n",
                                                        f"[brokers.county]\nport = 1884\nedge_key = {wrong}\n")
        bad = tmp_path / "bad.toml"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match="brokers.county.edge_key: must be the hex key"):
            load_config(bad)
    assert load_config(path).edge_key is None
