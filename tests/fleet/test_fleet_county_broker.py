"""The county broker with the fleet's files and settings, on a real Mosquitto: each edge acts for its own center.

The county broker used to take anyone: the demo and every deployment doc ran it without accounts, so an edge (or
anyone who reached the broker) could publish events, births and health under any center and read every center's
broker files and commands. The fleet now writes its passwd and acl (python -m fleet county-broker-files): each
edge writes only under its own center and reads only its own center's downlink; the fleet's accounts read every
center and alone write the downlink; client ids are bound to user names.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from fleet_testkit import CENTER, OTHER_CENTER, PAD, add_user, wait_for
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr
from sqlmodel import Session, col, select

from edge_agent.config import load_config
from fleet.app import create_app
from fleet.audit import AuditEntry
from fleet.auth.principal import CLI_USER
from fleet.devconfig.keys import KeyBox
from fleet.ingest import Ingest, subscriptions
from fleet.models import TicketEvent
from fleet.registration import county_cli, service
from fleet.registration.county_broker import COUNTY_BROKER_SETTINGS, county_files, edge_topic_names
from fleet.registration.models import EdgeCountyAccount
from fleet.registration.mosquitto_hash import verify_password
from protocol import messages, signing, topics
from tests.edge.test_broker_accounts import RunningAgent
from tests.support.centers import write_edge_config
from tools.mosquitto import free_port

pytestmark = pytest.mark.broker
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
BOX = KeyBox(b"k" * 32)
FLEET = "fleet-ingest-1"


class Client:
    """An MQTT v5 client (as the ingest and the edge's uplink are) that keeps what it receives."""

    def __init__(self, port: int, username: str | None, password: str | None, client_id: str = "") -> None:
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self.refused: str | None = None
        self.granted: list[bool] = []
        self._lock = threading.Lock()
        self._answered = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "t-" + uuid.uuid4().hex[:8],
                                  protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_args: setattr(self, "disconnects", self.disconnects + 1)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(self._answered.is_set, f"an answer to CONNECT of {username}")

    def _on_connect(self, _client, _userdata, _flags, reason, _properties) -> None:
        self.refused = str(reason) if reason.is_failure else None
        self._answered.set()

    def _on_message(self, _client, _userdata, message) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        self.granted = [not code.is_failure for code in reason_codes]
        self._subscribed.set()

    @property
    def accepted(self) -> bool:
        return self.refused is None

    def subscribe(self, *filters: str) -> list[bool]:
        self._subscribed.clear()
        self.client.subscribe([(f, 1) for f in filters])
        wait_for(self._subscribed.is_set, f"SUBACK for {filters}")
        return self.granted

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def topics(self) -> list[str]:
        with self._lock:
            return [topic for topic, _ in self.received]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def county(engine, broker_factory, tmp_path):
    """Two centers' edges and one fleet account; the county broker with the fleet's files of now."""
    with Session(engine) as session:
        edges = {code: service.issue_edge_credentials(session, BOX, CLI_USER, code, NOW)
                 for code in (CENTER, OTHER_CENTER)}
        fleet_password = service.issue_fleet_account(session, CLI_USER, FLEET, NOW)
        session.commit()
    files, passwd, acl = county_cli.write_county_files(engine, tmp_path / "county-broker")
    assert (files.edges, files.fleet_accounts) == (2, 1)
    broker = broker_factory("county", password_file=passwd, acl_file=acl, settings=COUNTY_BROKER_SETTINGS)
    return broker, edges, fleet_password


def event(center: str, number: int) -> tuple[str, bytes]:
    payload = messages.make("ticket_event", event_id=f"{center}-{number}", kind="issued", ticket=f"A{number:03d}",
                            service="A", ts=1_795_400_000 + number)
    return topics.build(topics.TICKET_EVENT, center=center), messages.encode("ticket_event", payload)


def test_each_edge_writes_and_reads_only_its_own_center_and_only_the_fleet_writes_the_downlink(county) -> None:
    broker, edges, fleet_password = county
    mine, theirs = edges[CENTER], edges[OTHER_CENTER]
    fleet = Client(broker.port, FLEET, fleet_password)
    edge = Client(broker.port, mine.county_username, mine.county_password, client_id=f"edge-{CENTER}")
    other = Client(broker.port, theirs.county_username, theirs.county_password)
    try:
        assert fleet.accepted and edge.accepted and other.accepted
        # Mosquitto 2.0 grants every subscription and checks the acl on each message it would deliver: what
        # each party receives below is what it may read. The ingest subscribes as it does (streams shared) ...
        fleet.subscribe(*subscriptions("fleet-ingest"))
        # ... each edge as its uplink does, and this one to another center's downlink and everyone's too.
        edge.subscribe(*[topics.subscription(name, center=CENTER) for name in edge_topic_names()[1]])
        edge.subscribe(topics.build(topics.BROKER_ACCOUNTS, center=OTHER_CENTER), topics.subscription(topics.EVENT_ACK),
                       "#")
        other.subscribe(*[topics.subscription(name, center=OTHER_CENTER) for name in edge_topic_names()[1]])

        # The edge publishes under another center, and as the fleet under its own: the broker drops all of it.
        edge.publish(*event(OTHER_CENTER, 1))
        edge.publish(topics.build(topics.EDGE_HEALTH, center=OTHER_CENTER), b'{"forged": true}', retain=True)
        edge.publish(topics.build(topics.EVENT_ACK, center=OTHER_CENTER), b'{"forged": true}')
        edge.publish(topics.build(topics.EVENT_ACK, center=CENTER), b'{"forged": true}')
        edge.publish(topics.build(topics.BROKER_ACCOUNTS, center=CENTER), b'{"forged": true}', retain=True)
        edge.publish(topics.build(topics.DEVICE_COMMAND, center=CENTER, device=PAD), b'{"forged": true}')
        # The fleet's command and broker files for the other center: only that center's edge gets them.
        theirs_command = topics.build(topics.DEVICE_COMMAND, center=OTHER_CENTER, device=PAD)
        fleet.publish(theirs_command, b'{"signed": "with the device key"}')
        accounts = signing.make_signed("broker_accounts", bytes.fromhex(theirs.edge_key_hex), OTHER_CENTER,
                                       version=1, passwd="", acl="", issued_at=1, devices=[])
        fleet.publish(topics.build(topics.BROKER_ACCOUNTS, center=OTHER_CENTER),
                      messages.encode("broker_accounts", accounts), retain=True)
        # Then what each may do, in order after all the above on the same connections.
        edge.publish(*event(CENTER, 2))
        ack = signing.make_signed("event_ack", bytes.fromhex(mine.edge_key_hex), CENTER, event_ids=[f"{CENTER}-2"])
        fleet.publish(topics.build(topics.EVENT_ACK, center=CENTER), messages.encode("event_ack", ack))
        own_event, own_ack = event(CENTER, 2)[0], topics.build(topics.EVENT_ACK, center=CENTER)
        wait_for(lambda: own_event in fleet.topics() and own_ack in edge.topics(), "the edge's event and its ack")
        theirs_files = topics.build(topics.BROKER_ACCOUNTS, center=OTHER_CENTER)
        wait_for(lambda: {theirs_command, theirs_files} <= set(other.topics()),
                 "the other center's command and broker files at the other center's edge")
        assert fleet.topics() == [own_event]  # nothing the edge published under the other center
        # Not its own forged ack, files or command, nor the other center's (one subscription or more matched).
        assert set(edge.topics()) == {own_ack}
        assert sorted(other.topics()) == sorted([theirs_command, theirs_files])  # no forged ack
    finally:
        for client in (fleet, edge, other):
            client.close()


def test_no_account_takes_over_an_edges_connection_and_strangers_are_refused(county) -> None:
    broker, edges, fleet_password = county
    mine, theirs = edges[CENTER], edges[OTHER_CENTER]
    edge = Client(broker.port, mine.county_username, mine.county_password, client_id=f"edge-{CENTER}")
    try:
        assert edge.accepted
        # Another center's edge and a fleet worker connect with this edge's (predictable) client id.
        for username, password in ((theirs.county_username, theirs.county_password), (FLEET, fleet_password)):
            intruder = Client(broker.port, username, password, client_id=f"edge-{CENTER}")
            try:
                assert intruder.accepted
                intruder.publish(topics.build(topics.EDGE_PRESENCE, center=OTHER_CENTER))  # a round trip: it is on
            finally:
                intruder.close()
        edge.publish(*event(CENTER, 1))  # and the edge is still on, never kicked off
        assert edge.disconnects == 0
        for username, password in ((None, None), (mine.county_username, mine.password),  # the center broker's
                                   (mine.county_username, "wrong"), (f"edge-{CENTER}x", mine.county_password)):
            stranger = Client(broker.port, username, password)
            try:
                assert not stranger.accepted, username
            finally:
                stranger.close()
    finally:
        edge.close()


def test_the_acl_comes_from_the_topic_registry(engine) -> None:
    with Session(engine) as session:
        service.issue_edge_credentials(session, BOX, CLI_USER, CENTER, NOW)
        service.issue_fleet_account(session, CLI_USER, FLEET, NOW)
        files = county_files(session)
    lines = files.acl.splitlines()
    written, read = edge_topic_names()
    assert set(read) == {topics.DEVICE_CONFIG_DESIRED, topics.DEVICE_COMMAND, topics.EVENT_ACK,
                         topics.BROKER_ACCOUNTS, topics.CENTER_CONFIG, topics.FIRMWARE_DESIRED, topics.FIRMWARE_BUNDLE}
    assert topics.CENTER_CONFIG_REPORTED in written
    assert {topics.TICKET_EVENT, topics.RATING_EVENT, topics.EDGE_PRESENCE, topics.EDGE_HEALTH,
            topics.DEVICE_PRESENCE} <= set(written)
    edge_section = lines[lines.index(f"user edge-{CENTER}"):]
    assert f"topic write {topics.subscription(topics.TICKET_EVENT, center=CENTER)}" in edge_section
    assert f"topic read {topics.subscription(topics.BROKER_ACCOUNTS, center=CENTER)}" in edge_section
    assert all(f"/{CENTER}/" in line or line.startswith(("user", "#")) or not line for line in edge_section)
    assert f"topic write {topics.subscription(topics.BROKER_ACCOUNTS)}" in lines  # the fleet, for every center
    assert "%c" not in files.acl and "pattern" not in files.acl
    assert files.passwd.startswith(f"{FLEET}:$7$") and f"edge-{CENTER}:$7$" in files.passwd


def test_the_cli_issues_a_fleet_account_and_writes_the_files(engine, fleet_settings, tmp_path, capsys) -> None:
    url = ["--database-url", fleet_settings.database_url]
    assert county_cli.run([county_cli.ACCOUNT, "edge-445202101001", *url], fleet_settings) == 1  # not fleet-...
    assert "fleet-<name>" in capsys.readouterr().err
    assert county_cli.run([county_cli.ACCOUNT, FLEET, *url], fleet_settings) == 0
    username, password = capsys.readouterr().out.splitlines()[0].split()
    assert username == FLEET and len(password) >= 32
    out = tmp_path / "files"
    assert county_cli.run([county_cli.FILES, "--out", str(out), *url], fleet_settings) == 0
    assert "0 edge account(s), 1 fleet account(s)" in capsys.readouterr().out
    assert (out / "passwd").read_text().startswith(f"{FLEET}:$7$") and password not in (out / "passwd").read_text()
    assert (out / "passwd").stat().st_mode & 0o077 == 0 and (out / "acl").stat().st_mode & 0o077 == 0


def test_an_edge_agent_and_the_ingest_work_through_their_county_accounts(county, engine, fleet_settings,
                                                                         broker_factory, tmp_path) -> None:
    """The real uplink and ingest on the county broker with the fleet's files: events up, signed acks down."""
    broker, edges, fleet_password = county
    mine = edges[CENTER]
    center = broker_factory("center")
    path = write_edge_config(tmp_path / "edge", center.port, broker.port, free_port(), printer="none")
    county_section = f"[brokers.county]\nport = {broker.port}\n"
    path.write_text(path.read_text(encoding="utf-8").replace(county_section, (
        f'{county_section}username = "{mine.county_username}"\npassword = "{mine.county_password}"\n'
        f'edge_key = "{mine.edge_key_hex}"\n')), encoding="utf-8")
    settings = fleet_settings.model_copy(update={
        "ingest_enabled": True, "broker_port": broker.port, "broker_username": FLEET,
        "broker_password": SecretStr(fleet_password), "mqtt_client_id": FLEET})
    ingest = Ingest(settings, engine, box=BOX)
    ingest.start()
    running = RunningAgent(load_config(path))
    try:
        wait_for(lambda: ingest.connected and running.agent.uplink.connected.is_set(), "both on the county broker")
        number = asyncio.run_coroutine_threadsafe(running.agent.take_ticket("A"), running.loop).result(10)["number"]
        wait_for(lambda: running.agent.store.outbox_size() == 0 and running.agent.awaiting.count() == 0,
                 "the issued event forwarded, stored by the fleet and acknowledged", timeout=30)
        with Session(engine) as session:
            assert [e.ticket for e in session.exec(select(TicketEvent))] == [number]
        assert running.agent.uplink.health()["refused_acks"] == 0
        # The ingest's probe comes back through the acl: it can judge heartbeat silence (fleet.ingest).
        wait_for(lambda: ingest.caught_up_at is not None, "the ingest's probe back through the county broker")
    finally:
        running.stop()
        ingest.stop()


def test_edge_credentials_are_answered_once_and_kept_only_hashed_and_sealed(fleet_settings) -> None:
    app = create_app(fleet_settings, clock=lambda: NOW)
    admin = {"Authorization": f"Bearer {add_user(app.state.engine)}"}
    town = {"Authorization": f"Bearer {add_user(app.state.engine, 'town', 'town_operator', OTHER_CENTER[:9])}"}
    with TestClient(app) as client:
        assert client.post(f"/api/centers/{CENTER}/edge-credentials", headers=town).status_code == 404  # not theirs
        first = client.post(f"/api/centers/{CENTER}/edge-credentials", headers=admin).json()
        second = client.post(f"/api/centers/{CENTER}/edge-credentials", headers=admin).json()
    assert first["username"] == first["county_username"] == f"edge-{CENTER}"
    assert len(bytes.fromhex(first["edge_key"])) == 32
    for name in ("password", "county_password", "edge_key"):  # new credentials rotate all three
        assert first[name] != second[name]
    with Session(app.state.engine) as session:
        row = session.get(EdgeCountyAccount, CENTER)
        assert verify_password(second["county_password"], row.password_hash)
        assert second["edge_key"] not in row.sealed_key and second["county_password"] not in row.password_hash
        assert service.edge_key(session, app.state.key_box, CENTER) == bytes.fromhex(second["edge_key"])
        details = [entry.detail or "" for entry in session.exec(
            select(AuditEntry).where(AuditEntry.action == "edge.credentials").order_by(col(AuditEntry.id))).all()]
    assert len(details) == 2 and row.key_fingerprint in details[-1]  # a fingerprint, never a secret
    for secret in (first[name] for name in ("password", "county_password", "edge_key")):
        assert not any(secret in detail for detail in details)
