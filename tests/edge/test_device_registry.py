"""A device on the center broker is only what the fleet registered it as, over real brokers.

The fleet sends, with the center broker's accounts, each registered device's id, role and window. The edge
relays and serves only those ids, and takes a device's role and window from its registration: a birth that
says otherwise (a display announcing itself as the rating pad of its window, a pad claiming another window)
is refused and shown in the edge's health, and so cannot rate a window (a score of 1 opens a 差评 case
against that window's staff).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session

from edge_agent.adapters.broker_accounts import BrokerAccounts
from edge_agent.agent import EdgeAgent
from edge_agent.config import load_config
from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db
from fleet.devconfig.keys import KeyBox
from fleet.registration import delivery, service
from fleet.registration.mosquitto_hash import hash_password
from protocol import CONTRACT_VERSION, messages, topics
from tests.edge.test_broker_accounts import (
    NOW,
    CountyPublisher,
    MqttClient,
    RunningAgent,
    accounts_message,
    edge_config,
    start_center,
)
from tests.support.aio import run_async
from tests.support.centers import CENTER_CODE, write_edge_config
from tests.support.mqtt import Recorder
from tests.support.waiting import wait_until

PAD = "dev-a4cf12ab34cd"
DISPLAY = "dev-a4cf12ab34ce"
STRANGER = "dev-0000000000ff"  # never registered
BOX = KeyBox(b"k" * 32)
EDGE_KEY = bytes(range(32))  # an edge key, as the fleet issues one


def facts(device: str, role: str, window: int = 3) -> service.DeviceFacts:
    return service.DeviceFacts(device_id=device, center=CENTER_CODE, window=window, role=role, board="esp32",
                               mac=device[4:], image_sha256="ab" * 32, provisioned_by="李工")


def birth(role: str, window: int, session: int = 1) -> bytes:
    return messages.encode("presence", messages.make("presence", state="online", session=session, role=role,
                                                     board="esp32", fw="1.0.0", contract=CONTRACT_VERSION,
                                                     window=window))


def device_topic(name: str, device: str) -> str:
    return topics.build(name, center=CENTER_CODE, device=device)


@dataclass
class Center:
    agent: EdgeAgent
    running: RunningAgent
    port: int
    county: Recorder
    passwords: dict[str, str]
    slot: str  # an unbound credential-pack slot's user name, and its password in `passwords`

    def on_loop(self, function, *args):
        async def call():
            return function(*args)
        return asyncio.run_coroutine_threadsafe(call(), self.running.loop).result(10)

    def connect(self, username: str, client_id: str | None = None) -> MqttClient:
        client = MqttClient(self.port, username, self.passwords[username], client_id or username)
        assert client.accepted, username
        return client

    def open_rating_request(self, window: int = 3) -> dict:
        queue = self.agent.queue
        self.on_loop(queue.login, window, f"100{window}")
        self.on_loop(queue.issue_ticket, "A")
        self.on_loop(queue.call_next, window)
        self.on_loop(queue.finish, window)
        return self.on_loop(queue.rating_request_payload, window)

    def registry_health(self) -> dict:
        return self.agent.center_link.health()


@pytest.fixture
def fleet(tmp_path: Path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def center(tmp_path: Path, fleet, broker_factory) -> Iterator[Center]:
    broker, files_dir, edge = start_center(tmp_path, fleet, broker_factory)
    county_broker = broker_factory("county")
    passwords = {}
    with Session(fleet) as session:
        for device, role in ((PAD, messages.ROLE_RATING_PAD), (DISPLAY, messages.ROLE_QUEUE_DISPLAY)):
            issued = service.register_device(session, BOX, CLI_USER, facts(device, role), NOW)
            passwords[device] = issued.broker_password
        _pack, [slot] = service.issue_pack(session, BOX, CLI_USER, CENTER_CODE, 1, NOW)
        passwords[slot.username] = slot.password
        session.commit()
    running = RunningAgent(edge_config(tmp_path, broker, county_broker, files_dir, edge))
    county = Recorder(county_broker.port, topics.ROOT + "/#")
    fleet_client = CountyPublisher(county_broker.port)
    try:
        agent = running.agent
        wait_until(lambda: agent.uplink.connected.is_set() and agent.center_link.connected.is_set(),
                   what="the edge on both brokers")
        with Session(fleet) as session:
            assert delivery.publish_center(session, fleet_client, BOX, CENTER_CODE, NOW) == delivery.PUBLISHED
            session.commit()
        wait_until(lambda: agent.broker_accounts.health()["version"] == 1, what="the edge installed v1")
        yield Center(agent, running, broker.port, county, passwords, slot.username)
    finally:
        fleet_client.close()
        county.close()
        running.stop()


@pytest.mark.broker
def test_the_edge_relays_only_devices_registered_to_its_center(center: Center) -> None:
    # A pack slot may act as any device id of the center (until it is bound): it announces a device the
    # fleet never registered here.
    slot = center.connect(center.slot, client_id=STRANGER)
    pad = center.connect(PAD)
    try:
        assert slot.publish(device_topic(topics.DEVICE_PRESENCE, STRANGER), birth(messages.ROLE_RATING_PAD, 3),
                            retain=True)
        assert slot.publish(device_topic(topics.DEVICE_COMMAND_ACK, STRANGER), messages.encode(
            "command_ack", messages.make("command_ack", command_id="c-1", status="done")))
        wait_until(lambda: center.registry_health().get("unregistered_devices", 0) >= 2,
                   what="both messages of the unregistered device dropped by the edge")
        assert STRANGER in center.registry_health()["refused_devices"]

        assert pad.publish(device_topic(topics.DEVICE_PRESENCE, PAD), birth(messages.ROLE_RATING_PAD, 3),
                           retain=True)
        wait_until(lambda: center.county.on(device_topic(topics.DEVICE_PRESENCE, PAD)),
                   what="the registered pad's birth relayed to the county")
        assert center.county.on(device_topic(topics.DEVICE_PRESENCE, STRANGER)) == []
        assert center.county.on(device_topic(topics.DEVICE_COMMAND_ACK, STRANGER)) == []
        assert center.agent.store.device_place(STRANGER) is None
    finally:
        slot.close()
        pad.close()


@pytest.mark.broker
def test_a_display_cannot_become_the_rating_pad_of_its_window(center: Center) -> None:
    request = center.open_rating_request(3)
    display = center.connect(DISPLAY)
    pad = center.connect(PAD)
    try:
        # The display re-announces itself as window 3's rating pad, and the pad claims window 1.
        assert display.publish(device_topic(topics.DEVICE_PRESENCE, DISPLAY), birth(messages.ROLE_RATING_PAD, 3),
                               retain=True)
        assert pad.publish(device_topic(topics.DEVICE_PRESENCE, PAD), birth(messages.ROLE_RATING_PAD, 1, 2),
                           retain=True)
        wait_until(lambda: center.registry_health().get("refused_presence", 0) >= 2, what="both births refused")
        refused = center.registry_health()["refused_devices"]
        assert "queue_display" in refused[DISPLAY] and "rating_pad" in refused[DISPLAY]
        assert "window 3" in refused[PAD] and "window 1" in refused[PAD]
        assert center.agent.store.device_place(DISPLAY) is None

        # Its rating of window 3 (a 差评) is not taken: its birth was refused, so it is no device of this center.
        def forged(rating_id: str) -> bytes:
            return messages.encode("rating_submitted", messages.make(
                "rating_submitted", rating_id=rating_id, request_id=request["request_id"],
                ticket=request["ticket"], window=3, score=1))

        link = center.agent.center_link
        assert display.publish(device_topic(topics.RATING_SUBMITTED, DISPLAY), forged("r-forged-1"))
        wait_until(lambda: link.dropped + link.refused_ratings >= 1, what="the display's rating not taken")

        # Once it is back to what it is, the display is served, and its rating is still refused: it is
        # registered as the display, not as the pad.
        assert display.publish(device_topic(topics.DEVICE_PRESENCE, DISPLAY),
                               birth(messages.ROLE_QUEUE_DISPLAY, 3, 2), retain=True)
        assert display.publish(device_topic(topics.RATING_SUBMITTED, DISPLAY), forged("r-forged-2"))
        wait_until(lambda: link.refused_ratings >= 1, what="the display's second rating refused")

        # The pad's real birth is taken with its registered role and window; it rates its window.
        assert pad.publish(device_topic(topics.DEVICE_PRESENCE, PAD), birth(messages.ROLE_RATING_PAD, 3, 3),
                           retain=True)
        wait_until(lambda: center.agent.store.device_place(PAD) == (messages.ROLE_RATING_PAD, 3)
                   and center.agent.store.device_place(DISPLAY) == (messages.ROLE_QUEUE_DISPLAY, 3),
                   what="the real births stored")
        real = messages.encode("rating_submitted", messages.make(
            "rating_submitted", rating_id="r-real", request_id=request["request_id"], ticket=request["ticket"],
            window=3, score=5))
        assert pad.publish(device_topic(topics.RATING_SUBMITTED, PAD), real)
        rating_events = topics.build(topics.RATING_EVENT, center=CENTER_CODE)
        wait_until(lambda: center.county.on(rating_events), what="the pad's rating at the county")
        assert [json.loads(raw)["score"] for raw in center.county.on(rating_events)] == [5]
        assert link.refused_ratings == 1
        presences = [json.loads(raw) for raw in center.county.on(device_topic(topics.DEVICE_PRESENCE, DISPLAY))]
        assert [p["role"] for p in presences] == [messages.ROLE_QUEUE_DISPLAY]
    finally:
        display.close()
        pad.close()


def test_the_registered_devices_are_remembered_across_a_restart(tmp_path: Path) -> None:
    files_dir = tmp_path / "center-broker"
    files_dir.mkdir()
    config_path = write_edge_config(tmp_path / "edge", 1883, 1884, 8080, printer="none", extra=f"""
[center_broker]
password_file = "{files_dir / 'passwd'}"
acl_file = "{files_dir / 'acl'}"
pid_file = "{files_dir / 'mosquitto.pid'}"
""")
    text = config_path.read_text(encoding="utf-8").replace(
        "[brokers.center]\nport = 1883\n", f'[brokers.center]\nport = 1883\nusername = "edge-{CENTER_CODE}"\n'
                                         'password = "edge-secret"\n').replace(
        "[brokers.county]\nport = 1884\n", f'[brokers.county]\nport = 1884\nedge_key = "{EDGE_KEY.hex()}"\n')
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    passwd = f"edge-{CENTER_CODE}:{hash_password('edge-secret')}\n"

    accounts = BrokerAccounts(config)
    run_async(accounts.start())
    assert accounts.enforcing and accounts.place(PAD) is None  # nothing installed: nobody is registered
    # Installed (there is no Mosquitto to reload here).
    assert accounts.receive(accounts_message(1, passwd, "", [[PAD, "rating_pad", 3]], key=EDGE_KEY))
    assert accounts.place(PAD) == ("rating_pad", 3) and accounts.place(DISPLAY) is None

    again = BrokerAccounts(config)
    run_async(again.start())
    assert again.place(PAD) == ("rating_pad", 3) and again.health()["registered_devices"] == 1
    # A re-publish of the installed version does not change the list, whatever it says.
    assert not again.receive(accounts_message(1, passwd, "", [[DISPLAY, "rating_pad", 3]], key=EDGE_KEY))
    assert again.place(PAD) == ("rating_pad", 3) and again.place(DISPLAY) is None
