"""The center broker's accounts, from the fleet to the center's Mosquitto, over real brokers.

The fleet registers a device and publishes the center's files on the county broker; the edge agent
installs them and reloads the center broker (SIGHUP to its pid file), and only then does the device's
new password work there. A malformed message keeps the files in place; so do files that would lock the
edge out of its own broker, an older version (shown in health) and a pid file naming another program.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlmodel import Session

from edge_agent.adapters.broker_accounts import (
    MAX_HASH_ITERATIONS,
    STATE_FILE,
    BrokerAccounts,
    signal_reload,
    verify_mosquitto_password,
)
from edge_agent.agent import EdgeAgent
from edge_agent.config import ConfigError, load_config
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db
from fleet.devconfig.keys import KeyBox
from fleet.ingest import APPLIED, handle_message
from fleet.registration import delivery, service
from fleet.registration.broker_files import CENTER_BROKER_SETTINGS, broker_files, write_broker_files
from fleet.registration.models import BrokerAccountsState
from fleet.registration.mosquitto_hash import hash_password
from protocol import CONTRACT_VERSION, messages, signing, topics
from tests.support.aio import run_async
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.mqtt import Recorder
from tests.support.waiting import wait_until
from tools.mosquitto import free_port

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PAD = "dev-a4cf12ab34cd"
BOX = KeyBox(b"k" * 32)  # the fleet's device-key box, as the app keeps it


class MqttClient:
    """A paho client; `accepted` says whether the broker took its CONNECT."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None,
                 client_id: str | None = None) -> None:
        self.results: list = []
        self.received: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "t-" + uuid.uuid4().hex[:8])
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.results.append(reason)
        self.client.on_message = lambda _c, _u, message: self.received.append((message.topic, message.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(lambda: self.results, what=f"an answer to CONNECT of {username}")

    @property
    def accepted(self) -> bool:
        return not self.results[0].is_failure

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class CountyPublisher(MqttClient):
    """The fleet's Publisher (fleet.devconfig.publisher) on the county broker, as the ingest's client is."""

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:  # type: ignore[override]
        return super().publish(topic, payload, retain)


def connects(port: int, username: str, password: str, client_id: str) -> bool:
    client = MqttClient(port, username, password, client_id)
    try:
        return client.accepted
    finally:
        client.close()


class RunningAgent:
    def __init__(self, config) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.agent = EdgeAgent(config)
        asyncio.run_coroutine_threadsafe(self.agent.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.agent.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def fleet(tmp_path: Path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


def facts() -> service.DeviceFacts:
    return service.DeviceFacts(device_id=PAD, center=CENTER_CODE, window=3, role=messages.ROLE_RATING_PAD,
                               board="esp32-devkitc", mac=PAD[4:], image_sha256="ab" * 32, provisioned_by="李工")


def start_center(tmp_path: Path, fleet, broker_factory) -> tuple[object, Path, service.EdgeIssued]:
    """A center broker with the fleet's files of now (the edge account only), installed by hand once."""
    with Session(fleet) as session:
        issued = service.issue_edge_credentials(session, BOX, CLI_USER, CENTER_CODE, NOW)
        session.commit()
        files_dir = tmp_path / "center-broker"
        write_broker_files(broker_files(session, CENTER_CODE), files_dir)
    broker = broker_factory("center", password_file=files_dir / "passwd", acl_file=files_dir / "acl",
                            pid_file=files_dir / "mosquitto.pid", settings=CENTER_BROKER_SETTINGS)
    return broker, files_dir, issued


def edge_config(tmp_path: Path, center, county, files_dir: Path, issued: service.EdgeIssued,
                edge_password: str | None = None, edge_key_hex: str | None = None):
    """The edge's config with the credentials `issued` (or another center password or edge key, as a config
    not updated yet has)."""
    path = write_edge_config(tmp_path / "edge", center.port, county.port, free_port(), printer="none", extra=f"""
[center_broker]
password_file = "{files_dir / 'passwd'}"
acl_file = "{files_dir / 'acl'}"
pid_file = "{files_dir / 'mosquitto.pid'}"
""")
    text = path.read_text(encoding="utf-8").replace(
        f"[brokers.center]\nport = {center.port}\n",
        f'[brokers.center]\nport = {center.port}\nusername = "{issued.username}"\n'
        f'password = "{edge_password or issued.password}"\n').replace(
        f"[brokers.county]\nport = {county.port}\n",
        f'[brokers.county]\nport = {county.port}\nedge_key = "{edge_key_hex or issued.edge_key_hex}"\n')
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.mark.broker
def test_a_registered_device_can_connect_once_the_edge_installed_the_fleets_files(tmp_path, fleet, broker_factory):
    center, files_dir, edge = start_center(tmp_path, fleet, broker_factory)
    county = broker_factory("county")
    config = edge_config(tmp_path, center, county, files_dir, edge)
    running = RunningAgent(config)
    publisher = CountyPublisher(county.port)
    county_watcher = MqttClient(county.port)
    county_watcher.client.subscribe(topics.subscription(topics.DEVICE_PRESENCE, center=CENTER_CODE), qos=1)
    try:
        agent = running.agent
        wait_until(lambda: agent.uplink.connected.is_set() and agent.center_link.connected.is_set(),
                   what="the edge connected to both brokers (its own account on the center broker)")
        with Session(fleet) as session:
            issued = service.register_device(session, BOX, CLI_USER, facts(), NOW)
            session.commit()
        assert not connects(center.port, PAD, issued.broker_password, PAD)  # nothing delivered yet

        with Session(fleet) as session:
            assert delivery.publish_center(session, publisher, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
            session.commit()
        # Version and state are two fields the agent's thread sets one after the other (the reload between them):
        # wait for both, not for the version alone.
        wait_until(lambda: (h := agent.broker_accounts.health())["version"] == 1 and h["state"] == "installed",
                   what="the edge installed v1")
        health = agent.broker_accounts.health()
        assert health["state"] == "installed" and health["ok"] and health["installed_at"] is not None
        assert f"{PAD}:$7$" in (files_dir / "passwd").read_text() and "/%u/" in (files_dir / "acl").read_text()
        assert (files_dir / "passwd").stat().st_mode & 0o777 == 0o600
        assert issued.broker_password not in (files_dir / "passwd").read_text()

        wait_until(lambda: connects(center.port, PAD, issued.broker_password, PAD),
                   what="the device's new credentials accepted after the reload")
        device = MqttClient(center.port, PAD, issued.broker_password, PAD)
        try:
            birth = messages.make("presence", state=messages.ONLINE, session=1, role=messages.ROLE_RATING_PAD,
                                  board="esp32-devkitc", fw="1.0.0", contract=CONTRACT_VERSION, window=3)
            presence_topic = topics.build(topics.DEVICE_PRESENCE, center=CENTER_CODE, device=PAD)
            device.publish(presence_topic, messages.encode("presence", birth), retain=True)
            wait_until(lambda: any(t == presence_topic and json.loads(p)["state"] == "online"
                                   for t, p in county_watcher.received),
                       what="the device's birth relayed by the edge to the county")
        finally:
            device.close()

        # Nothing changed: the retained copy is current, and a re-publish of v1 changes nothing at the edge.
        with Session(fleet) as session:
            assert delivery.publish_center(session, publisher, BOX, CENTER_CODE, NOW) == delivery.CURRENT
    finally:
        county_watcher.close()
        publisher.close()
        running.stop()


def installed_files(files_dir: Path) -> tuple[bytes, bytes]:
    return (files_dir / "passwd").read_bytes(), (files_dir / "acl").read_bytes()


def accounts_message(version: int, passwd: str, acl: str, devices: list | None = None, *, key: bytes,
                     center: str = CENTER_CODE) -> bytes:
    """A broker_accounts message signed with the edge key `key`, as the fleet signs it (or a forger with a key of
    their own)."""
    return messages.encode("broker_accounts", signing.make_signed(
        "broker_accounts", key, center, version=version, passwd=passwd, acl=acl, issued_at=1,
        devices=devices or []))


def register_and_publish(fleet, publisher, device: service.DeviceFacts | None = None) -> None:
    with Session(fleet) as session:
        service.register_device(session, BOX, CLI_USER, device or facts(), NOW)
        session.commit()
        assert delivery.publish_center(session, publisher, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
        session.commit()


@dataclass
class EdgeOnCounty:
    """A center (its Mosquitto and files), its running edge agent connected to a county broker, and a
    client on the county broker publishing as the fleet does."""

    agent: EdgeAgent
    fleet_client: CountyPublisher
    center: object
    county: object
    files_dir: Path
    issued: service.EdgeIssued

    @property
    def edge_user(self) -> str:
        return self.issued.username

    @property
    def edge_password(self) -> str:
        return self.issued.password

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.issued.edge_key_hex)


@contextmanager
def edge_on_county(tmp_path, fleet, broker_factory) -> Iterator[EdgeOnCounty]:
    center, files_dir, issued = start_center(tmp_path, fleet, broker_factory)
    county = broker_factory("county")
    running = RunningAgent(edge_config(tmp_path, center, county, files_dir, issued))
    fleet_client = CountyPublisher(county.port)
    try:
        wait_until(running.agent.uplink.connected.is_set, what="the edge connected to the county")
        yield EdgeOnCounty(running.agent, fleet_client, center, county, files_dir, issued)
    finally:
        fleet_client.close()
        running.stop()


@pytest.mark.broker
def test_a_malformed_message_keeps_the_files_in_place(tmp_path, fleet, broker_factory):
    topic = topics.build(topics.BROKER_ACCOUNTS, center=CENTER_CODE)
    with edge_on_county(tmp_path, fleet, broker_factory) as edge:
        agent, fleet_client, files_dir, edge_user = edge.agent, edge.fleet_client, edge.files_dir, edge.edge_user
        register_and_publish(fleet, fleet_client)
        # Version and state are two fields the agent's thread sets one after the other (the reload between them):
        # wait for both, not for the version alone.
        wait_until(lambda: (h := agent.broker_accounts.health())["version"] == 1 and h["state"] == "installed",
                   what="the edge installed v1")
        installed = installed_files(files_dir)

        bad = [
            b"not json",
            json.dumps({"v": 1, "version": 5, "passwd": f"{edge_user}:secret\n", "acl": "",
                        "issued_at": 1}).encode(),  # a password, not a hash
            json.dumps({"v": 1, "version": 7, "passwd": installed[0].decode(), "acl": "rm -rf /\n",
                        "issued_at": 1}).encode(),
        ]
        again = accounts_message(1, installed[0].decode(), installed[1].decode(), key=edge.key)  # a re-publish
        for raw in [*bad, again, b"{}"]:  # in order on one connection: the last one shows all were handled
            fleet_client.publish(topic, raw, 1, True)
        wait_until(lambda: agent.broker_accounts.health()["ignored"] == len(bad) + 1, what="every bad message ignored")
        health = agent.broker_accounts.health()
        assert health["version"] == 1 and health["state"] == "installed" and health["ok"] and not health["problem"]
        assert "missing field 'v'" in health["last_error"]  # the last one, {}
        assert installed_files(files_dir) == installed
        assert agent.center_link.connected.is_set()


@pytest.mark.broker
def test_forged_files_with_the_edges_own_password_line_are_refused_and_block_nothing(tmp_path, fleet, broker_factory):
    """Anyone who can read the retained message has the edge's own password line: copying it into files of one's
    own (a user of one's own, `pattern readwrite #`, version 999999) got them installed, and every later real
    version was ignored as older. Only what the fleet signed with the edge's key is installed now."""
    topic = topics.build(topics.BROKER_ACCOUNTS, center=CENTER_CODE)
    with edge_on_county(tmp_path, fleet, broker_factory) as edge:
        agent, fleet_client, files_dir, edge_user = edge.agent, edge.fleet_client, edge.files_dir, edge.edge_user
        register_and_publish(fleet, fleet_client)
        # Version and state are two fields the agent's thread sets one after the other (the reload between them):
        # wait for both, not for the version alone.
        wait_until(lambda: (h := agent.broker_accounts.health())["version"] == 1 and h["state"] == "installed",
                   what="the edge installed v1")
        installed = installed_files(files_dir)

        reader = MqttClient(edge.county.port)  # any account that may read the topic
        try:
            reader.client.subscribe(topic, qos=1)
            wait_until(lambda: reader.received, what="the retained broker_accounts")
            real = messages.decode("broker_accounts", reader.received[-1][1])
        finally:
            reader.close()
        own_line = next(line for line in real["passwd"].splitlines() if line.startswith(f"{edge_user}:"))
        intruder = f"intruder:{hash_password('intruder')}"
        passwd, acl = f"{own_line}\n{intruder}\n", "pattern readwrite #\n"
        forged = [accounts_message(999999, passwd, acl, key=bytes(32)),  # a key of the forger's own
                  accounts_message(999999, passwd, acl, key=edge.key, center="445202102003"),  # another center's
                  messages.encode("broker_accounts", dict(real, version=999999, passwd=passwd, acl=acl))]  # its sig
        for raw in forged:
            fleet_client.publish(topic, raw, 1, True)
        wait_until(lambda: agent.broker_accounts.health()["refused"] == len(forged), what="the forged files refused")
        health = agent.broker_accounts.health()
        assert health["version"] == 1 and not health["ok"] and "v999999 refused" in health["problem"]
        assert "does not verify with brokers.county.edge_key" in health["problem"]
        assert agent.health_summary()["components"]["broker_accounts"]["refused"] == len(forged)
        assert installed_files(files_dir) == installed
        assert not connects(edge.center.port, "intruder", "intruder", "intruder")

        # The fleet's next version is installed: the forged 999999 held nothing back.
        other = service.DeviceFacts(device_id="dev-a4cf12ab34ce", center=CENTER_CODE, window=3,
                                    role=messages.ROLE_QUEUE_DISPLAY, board="esp32-devkitc", mac="a4cf12ab34ce",
                                    image_sha256="ab" * 32, provisioned_by="李工")
        register_and_publish(fleet, fleet_client, other)
        wait_until(lambda: agent.broker_accounts.health()["version"] == 2, what="the edge installed the fleet's v2")
        health = agent.broker_accounts.health()
        assert health["ok"] and not health["problem"] and "intruder" not in (files_dir / "passwd").read_text()


@pytest.mark.broker
def test_the_fleet_moves_its_counter_past_the_version_its_edge_reports(tmp_path, fleet, broker_factory):
    """The fleet's database restored from a backup: its counter is behind the edge's, whose health says so; the
    fleet reads that (edge_health on the county broker) and its next version is installed."""
    with edge_on_county(tmp_path, fleet, broker_factory) as edge:
        agent, fleet_client = edge.agent, edge.fleet_client
        edge_health = topics.build(topics.EDGE_HEALTH, center=CENTER_CODE)
        county = Recorder(edge.county.port, edge_health)
        try:
            register_and_publish(fleet, fleet_client)
            with Session(fleet) as session:
                service.issue_pack(session, BOX, CLI_USER, CENTER_CODE, 1, NOW)
                session.commit()
                assert delivery.publish_center(session, fleet_client, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
                session.commit()
            wait_until(lambda: agent.broker_accounts.health()["version"] == 2, what="the edge installed v2")

            with Session(fleet) as session:  # the restore: the counter back at v1 (its files as they are now)
                state = session.get(BrokerAccountsState, CENTER_CODE)
                state.version, state.published_version = 1, 0
                session.add(state)
                session.commit()
                assert delivery.publish_center(session, fleet_client, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
                session.commit()
            wait_until(lambda: agent.broker_accounts.health()["stale"], what="the edge ignores the fleet's v2")

            def stale_report() -> bytes | None:
                for raw in reversed(county.on(edge_health)):
                    if json.loads(raw)["components"]["broker_accounts"]["stale"]:
                        return raw
                return None

            report = wait_until(stale_report, what="the edge's health saying so, at the county")
            assert handle_message(fleet, edge_health, report, NOW) == APPLIED
            with Session(fleet) as session:
                assert session.get(BrokerAccountsState, CENTER_CODE).version == 3
                assert delivery.publish_center(session, fleet_client, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
                session.commit()
            wait_until(lambda: agent.broker_accounts.health()["version"] == 3, what="the edge installed v3")
            assert agent.broker_accounts.health()["ok"] and not agent.broker_accounts.health()["stale"]
            # The report that started it, read again, changes nothing: the edge is no longer ahead.
            assert handle_message(fleet, edge_health, report, NOW) == APPLIED
            with Session(fleet) as session:
                assert session.get(BrokerAccountsState, CENTER_CODE).version == 3
        finally:
            county.close()


@pytest.mark.broker
def test_a_rotated_edge_password_is_installed_only_once_the_edges_config_has_it(tmp_path, fleet, broker_factory):
    center, files_dir, old = start_center(tmp_path, fleet, broker_factory)
    edge_user, old_password = old.username, old.password
    county = broker_factory("county")
    running = RunningAgent(edge_config(tmp_path, center, county, files_dir, old))
    publisher = CountyPublisher(county.port)
    try:
        agent = running.agent
        wait_until(lambda: agent.uplink.connected.is_set() and agent.center_link.connected.is_set(),
                   what="the edge connected to both brokers")
        register_and_publish(fleet, publisher)
        # Version and state are two fields the agent's thread sets one after the other (the reload between them):
        # wait for both, not for the version alone.
        wait_until(lambda: (h := agent.broker_accounts.health())["version"] == 1 and h["state"] == "installed",
                   what="the edge installed v1")
        installed = installed_files(files_dir)

        # The fleet issues new edge credentials; the edge's config still holds the old ones.
        with Session(fleet) as session:
            new = service.issue_edge_credentials(session, BOX, CLI_USER, CENTER_CODE, NOW)
            session.commit()
            assert delivery.publish_center(session, publisher, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
            session.commit()
        wait_until(lambda: agent.broker_accounts.health()["refused"] == 1, what="v2 refused: signed with the new key")
        health = agent.broker_accounts.health()
        assert not health["ok"] and health["version"] == 1 and health["state"] == "installed"
        assert "v2 refused" in health["problem"] and "brokers.county.edge_key" in health["problem"]
        assert installed_files(files_dir) == installed
    finally:
        running.stop()

    # County IT puts only the new edge key in the config: v2 verifies, but would lock the edge out.
    running = RunningAgent(edge_config(tmp_path, center, county, files_dir, new, edge_password=old_password))
    try:
        agent = running.agent
        wait_until(lambda: agent.broker_accounts.health()["ignored"] == 1, what="v2 refused")
        health = agent.broker_accounts.health()
        assert not health["ok"] and health["version"] == 1 and health["state"] == "installed"
        assert health["refused"] == 0  # it verified
        assert "v2 refused" in health["problem"] and "brokers.center.password" in health["problem"]
        assert health["problem"] == health["last_error"]
        assert agent.health_summary()["components"]["broker_accounts"]["ok"] is False
        assert installed_files(files_dir) == installed
        wait_until(agent.center_link.connected.is_set, what="the edge on its broker with its old password")
        assert connects(center.port, edge_user, old_password, "t-old-password")  # the broker kept the old files
        assert not connects(center.port, edge_user, new.password, "t-new-password")
    finally:
        running.stop()

    # ... and then the whole answer: the retained v2 is installed.
    running = RunningAgent(edge_config(tmp_path, center, county, files_dir, new))
    try:
        agent = running.agent
        wait_until(lambda: agent.broker_accounts.health()["version"] == 2, what="the edge installed v2")
        health = agent.broker_accounts.health()
        assert health["ok"] and health["state"] == "installed" and not health["problem"]
        wait_until(agent.center_link.connected.is_set, what="the edge on its broker with its new password")
        assert not connects(center.port, edge_user, old_password, "t-old-password")
    finally:
        publisher.close()
        running.stop()


@pytest.mark.broker
def test_files_without_the_edges_own_account_are_refused(tmp_path, fleet, broker_factory):
    with edge_on_county(tmp_path, fleet, broker_factory) as edge:
        agent, fleet_client, files_dir, edge_user = edge.agent, edge.fleet_client, edge.files_dir, edge.edge_user
        installed = installed_files(files_dir)
        others = "\n".join(line for line in installed[0].decode().splitlines() if not line.startswith(edge_user))
        fleet_client.publish(topics.build(topics.BROKER_ACCOUNTS, center=CENTER_CODE),
                             accounts_message(1, others, installed[1].decode(), key=edge.key), 1, True)
        wait_until(lambda: agent.broker_accounts.health()["ignored"] == 1, what="v1 refused")
        health = agent.broker_accounts.health()
        assert not health["ok"] and health["state"] == "waiting" and health["version"] == 0
        assert f"no line for the edge agent's own user {edge_user}" in health["problem"]
        assert installed_files(files_dir) == installed
        assert connects(edge.center.port, edge_user, edge.edge_password, "t-edge-password")


@pytest.mark.broker
def test_an_older_version_is_ignored_and_shown_in_health(tmp_path, fleet, broker_factory):
    topic = topics.build(topics.BROKER_ACCOUNTS, center=CENTER_CODE)
    with edge_on_county(tmp_path, fleet, broker_factory) as edge:
        agent, fleet_client, files_dir = edge.agent, edge.fleet_client, edge.files_dir
        register_and_publish(fleet, fleet_client)
        with Session(fleet) as session:
            service.issue_pack(session, BOX, CLI_USER, CENTER_CODE, 2, NOW)
            session.commit()
            assert delivery.publish_center(session, fleet_client, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
            session.commit()
        wait_until(lambda: agent.broker_accounts.health()["version"] == 2, what="the edge installed v2")
        installed = installed_files(files_dir)
        passwd, acl = installed[0].decode(), installed[1].decode()

        # The fleet's database was restored: its counter is back at 1, with files that would be valid.
        fleet_client.publish(topic, accounts_message(1, passwd, "", key=edge.key), 1, True)
        wait_until(lambda: agent.broker_accounts.health()["ignored"] == 1, what="v1 ignored")
        health = agent.broker_accounts.health()
        assert not health["ok"] and health["version"] == 2 and health["state"] == "installed"
        assert "version 1 from the fleet is older than the installed version 2" in health["problem"]
        assert "database was restored" in health["problem"] and STATE_FILE in health["problem"]
        assert agent.health_summary()["components"]["broker_accounts"]["ok"] is False
        assert installed_files(files_dir) == installed

        # The installed number with other content is the same trouble; the installed files themselves are not.
        fleet_client.publish(topic, accounts_message(2, passwd, "", key=edge.key), 1, True)
        wait_until(lambda: agent.broker_accounts.health()["ignored"] == 2, what="a different v2 ignored")
        assert "differs from the installed files of version 2" in agent.broker_accounts.health()["problem"]
        fleet_client.publish(topic, accounts_message(2, passwd, acl, key=edge.key), 1, True)
        wait_until(lambda: agent.broker_accounts.health()["ok"], what="the fleet back in step with the edge")
        health = agent.broker_accounts.health()
        assert health["ignored"] == 2 and health["version"] == 2 and not health["problem"]
        assert installed_files(files_dir) == installed


@pytest.mark.broker
def test_a_pid_file_naming_another_program_is_not_signalled(tmp_path, fleet, broker_factory):
    other = subprocess.Popen(["sleep", "300"])  # SIGHUP would end it
    try:
        with edge_on_county(tmp_path, fleet, broker_factory) as edge:
            agent, publisher, files_dir, center = edge.agent, edge.fleet_client, edge.files_dir, edge.center
            # Mosquitto restarted elsewhere: its pid file names another program now.
            (files_dir / "mosquitto.pid").write_text(f"{other.pid}\n", encoding="ascii")
            register_and_publish(fleet, publisher)
            wait_until(lambda: agent.broker_accounts.health()["state"] == "failed" or other.poll() is not None,
                       what="v1 handled")
            health = agent.broker_accounts.health()
            assert other.poll() is None, "the process in the stale pid file was signalled"
            assert health["state"] == "failed" and not health["ok"] and health["version"] == 1
            assert f"process {other.pid}" in health["problem"] and "'sleep', not Mosquitto" in health["problem"]
            assert f"{PAD}:$7$" in (files_dir / "passwd").read_text()  # written: Mosquitto reads it when restarted
            assert center.process.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_signal_goes_only_to_a_process_named_mosquitto(tmp_path):
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "comm").write_text("python3\n")
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text("4242\n")
    with pytest.raises(OSError, match="'python3', not Mosquitto"):
        signal_reload(pid_file, proc)
    pid_file.write_text("4243\n")
    with pytest.raises(OSError, match="no process 4243"):
        signal_reload(pid_file, proc)


def test_without_the_edges_center_user_no_files_are_installed(tmp_path):
    files_dir = tmp_path / "center-broker"
    files_dir.mkdir()
    path = write_edge_config(tmp_path / "edge", 1883, 1884, 8080, printer="none", extra=f"""
[center_broker]
password_file = "{files_dir / 'passwd'}"
acl_file = "{files_dir / 'acl'}"
pid_file = "{files_dir / 'mosquitto.pid'}"
""")
    accounts = BrokerAccounts(load_config(path))
    run_async(accounts.start())
    health = accounts.health()
    assert not health["ok"] and "brokers.center.username is not" in health["problem"]
    passwd = f"edge-{CENTER_CODE}:{hash_password('secret')}\n"
    assert not accounts.receive(accounts_message(1, passwd, "", key=bytes(32)))
    health = accounts.health()
    assert not health["ok"] and health["ignored"] == 1 and "brokers.center.username is not" in health["problem"]
    assert not (files_dir / "passwd").exists() and not (files_dir / "acl").exists()


def test_the_edge_verifies_passwords_as_the_fleet_hashes_them():
    stored = hash_password("the edge's password")
    assert verify_mosquitto_password("the edge's password", stored)
    assert not verify_mosquitto_password("another password", stored)
    assert verify_mosquitto_password("x", hash_password("x", iterations=101))
    _, _, iterations, salt, digest = stored.split("$")
    for broken in [stored.replace("$7$", "$6$"), f"$7$abc${salt}${digest}", f"$7$0${salt}${digest}",
                   f"$7${MAX_HASH_ITERATIONS + 1}${salt}${digest}", f"$7${iterations}$!!${digest}",
                   f"$7${iterations}${salt}$", "", "x$7$1$a$b"]:
        assert not verify_mosquitto_password("the edge's password", broken), broken


def test_center_broker_paths_are_checked_with_their_names(tmp_path):
    path = write_edge_config(tmp_path / "edge", 1883, 1884, 8080, printer="none", extra="""
[center_broker]
password_file = "no-such-dir/passwd"
acl_file = "acl"
""")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "center_broker.password_file: the directory" in text and "no-such-dir" in text
    assert "center_broker.pid_file: a file path is required" in text


@pytest.mark.broker
def test_the_fleet_makes_a_new_version_only_when_the_files_change_and_publishes_what_waits(
        tmp_path, fleet, broker_factory):
    county = broker_factory("county")
    with Session(fleet) as session:
        service.register_device(session, BOX, CLI_USER, facts(), NOW)
        session.commit()
        # Without edge credentials there is no key to sign with, and nothing the edge would install.
        assert delivery.publish_center(session, None, BOX, CENTER_CODE, NOW) == delivery.NO_KEY
        edge = service.issue_edge_credentials(session, BOX, CLI_USER, CENTER_CODE, NOW)
        session.commit()
        assert delivery.publish_center(session, None, BOX, CENTER_CODE, NOW) == delivery.NO_BROKER  # no county link
        assert delivery.publish_center(session, None, BOX, CENTER_CODE, NOW) == delivery.NO_BROKER
        session.commit()
    publisher = CountyPublisher(county.port)
    try:
        job = delivery.broker_accounts_job
        assert job(fleet, publisher, BOX, NOW, 300).outcomes == {delivery.PUBLISHED: [CENTER_CODE]}
        with Session(fleet) as session:
            service.issue_pack(session, BOX, CLI_USER, CENTER_CODE, 2, NOW)
            session.commit()
        assert job(fleet, publisher, BOX, NOW, 300).outcomes == {delivery.PUBLISHED: [CENTER_CODE]}
        assert job(fleet, publisher, BOX, NOW, 300).outcomes == {delivery.CURRENT: [CENTER_CODE]}
        late = MqttClient(county.port)  # an edge connecting later gets the retained latest version
        try:
            late.client.subscribe(topics.build(topics.BROKER_ACCOUNTS, center=CENTER_CODE), qos=1)
            wait_until(lambda: late.received, what="the retained broker_accounts")
            message = messages.decode("broker_accounts", late.received[-1][1])
            # v1 never went out (no key), v2 with the edge's account, v3 with the pack
            assert message["version"] == 3 and "p1-1:$7$" in message["passwd"] and "user p1-1\n" in message["acl"]
            assert signing.verify_for_edge(bytes.fromhex(edge.edge_key_hex), CENTER_CODE, message)
        finally:
            late.close()
    finally:
        publisher.close()


# The acl is the same for any number of devices (%u patterns); the passwd grows by one hash line a
# device, 132 bytes of the message, and the list of registered devices by about 38. With the edge's account
# and no pack slots, 84 devices fit the 16384 bytes an edge accepts (42 windows with a display and a rating
# pad each); the 85th does not. (86 before the over-the-air update topics added five acl lines.)
DEVICES_THAT_FIT = 84


def test_files_too_big_for_one_message_are_not_published(fleet):
    def register(number: int) -> None:
        mac = "a4cf12%06x" % number
        device = service.DeviceFacts(device_id="dev-" + mac, center=CENTER_CODE, window=number // 2 + 1,
                                     role=messages.DEVICE_ROLES[number % 2], board=None, mac=mac,
                                     image_sha256="ab" * 32, provisioned_by="李工")
        service.register_device(session, BOX, CLI_USER, device, NOW)

    with Session(fleet) as session:
        service.issue_edge_credentials(session, BOX, CLI_USER, CENTER_CODE, NOW)
        for number in range(80):  # a county-level center: 40 windows
            register(number)
        assert delivery.publish_center(session, None, BOX, CENTER_CODE, NOW) == delivery.NO_BROKER  # fits; no link
        for number in range(80, DEVICES_THAT_FIT):
            register(number)
        assert delivery.publish_center(session, None, BOX, CENTER_CODE, NOW) == delivery.NO_BROKER
        register(DEVICES_THAT_FIT)
        assert delivery.publish_center(session, None, BOX, CENTER_CODE, NOW) == delivery.TOO_BIG
