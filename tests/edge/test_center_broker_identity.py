"""The center broker with the fleet's files and settings, on a real Mosquitto: no account takes another's place.

MQTT lets a new connection with a client's id take over that client: Mosquitto closes the older connection.
With any account free to pick its client id, a display kicked the real rating pad off by connecting with the
pad's id, and anyone with an account could keep the edge agent (`edge-<code>`, a predictable id) away from its
own broker. The center broker binds the client id to the user name (`use_username_as_clientid`), so only the
holder of an account's password can connect as it.

That changes two things that relied on picking a client id: an unbound credential-pack slot, which used to
stand for the device its client id named (`%c`), now has a section of its own for any device id of its
center; and the provisioning laptop, which watched a new device with the device's own account, now uses that
account's check account (protocol.identity.check_account), which the files hold only for a short while after
a registration and for unbound slots.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlmodel import Session

from fleet.auth.principal import CLI_USER
from fleet.db import create_db_engine, init_db
from fleet.devconfig.keys import KeyBox
from fleet.registration import service
from fleet.registration.broker_files import CENTER_BROKER_SETTINGS, CHECK_ACCOUNT_S, broker_files, write_broker_files
from protocol import CONTRACT_VERSION, identity, messages, topics
from tests.edge.test_broker_accounts import NOW
from tests.support.centers import CENTER_CODE
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker

PAD = "dev-a4cf12ab34cd"
DISPLAY = "dev-a4cf12ab34ce"
STRANGER = "dev-0000000000ff"  # never registered
OTHER_CENTER = "445202102003"
EDGE = f"edge-{CENTER_CODE}"
BOX = KeyBox(b"k" * 32)


class Client:
    """A paho client that counts its disconnections and keeps what it receives."""

    def __init__(self, port: int, username: str, password: str, client_id: str | None = None) -> None:
        self.connects = 0
        self.disconnects = 0
        self.refused: str | None = None
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._answered = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "t-" + uuid.uuid4().hex[:8])
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(self._answered.is_set, what=f"an answer to CONNECT of {username}")

    def _on_connect(self, _client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            self.connects += 1
        self._answered.set()

    def _on_disconnect(self, _client, _userdata, _flags, _reason, _properties) -> None:
        self.disconnects += 1

    def _on_message(self, _client, _userdata, message) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload in self.received if t == topic]

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_args: done.set()
        self.client.subscribe(topic_filter, qos=1)
        wait_until(done.is_set, what=f"the broker's answer to SUBSCRIBE {topic_filter}")

    def round_trip(self, topic: str, payload: bytes = b"{}") -> None:
        """A QoS 1 publish acknowledged by the broker: the connection works now (a kicked client reconnects
        first, and counts the disconnection)."""
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Files:
    dir: Path
    passwords: dict[str, str]
    slot: str


def write_files(fleet, files_dir: Path, now=NOW) -> None:
    with Session(fleet) as session:
        write_broker_files(broker_files(session, CENTER_CODE, now), files_dir)


@pytest.fixture
def fleet(tmp_path: Path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def files(tmp_path: Path, fleet) -> Iterator[Files]:
    """A pad and a display registered now, an edge account and one unbound pack slot; the files of now."""
    passwords = {}
    with Session(fleet) as session:
        passwords[EDGE] = service.issue_edge_credentials(session, BOX, CLI_USER, CENTER_CODE, NOW).password
        for device, role in ((PAD, messages.ROLE_RATING_PAD), (DISPLAY, messages.ROLE_QUEUE_DISPLAY)):
            facts = service.DeviceFacts(device_id=device, center=CENTER_CODE, window=3, role=role, board="esp32",
                                        mac=device[4:], image_sha256="ab" * 32, provisioned_by="李工")
            passwords[device] = service.register_device(session, BOX, CLI_USER, facts, NOW).broker_password
        _pack, [slot] = service.issue_pack(session, BOX, CLI_USER, CENTER_CODE, 1, NOW)
        passwords[slot.username] = slot.password
        session.commit()
    files_dir = tmp_path / "center-broker"
    write_files(fleet, files_dir)
    yield Files(files_dir, passwords, slot.username)


def start_broker(broker_factory, files: Files):
    return broker_factory("center", password_file=files.dir / "passwd", acl_file=files.dir / "acl",
                          pid_file=files.dir / "mosquitto.pid", settings=CENTER_BROKER_SETTINGS)


def presence_topic(device: str, center: str = CENTER_CODE) -> str:
    return topics.build(topics.DEVICE_PRESENCE, center=center, device=device)


def birth() -> bytes:
    return messages.encode("presence", messages.make("presence", state="online", session=1, role="rating_pad",
                                                     board="esp32", fw="1.0.0", contract=CONTRACT_VERSION, window=3))


def test_no_account_can_take_over_another_clients_id(broker_factory, files: Files) -> None:
    broker = start_broker(broker_factory, files)
    pad = Client(broker.port, PAD, files.passwords[PAD], client_id=PAD)
    edge = Client(broker.port, EDGE, files.passwords[EDGE], client_id=EDGE)
    try:
        for victim, username, client_id in ((pad, DISPLAY, PAD), (pad, files.slot, PAD), (edge, DISPLAY, EDGE),
                                            (edge, files.slot, EDGE)):
            attacker = Client(broker.port, username, files.passwords[username], client_id=client_id)
            try:
                assert attacker.connects == 1  # let in, as itself
                victim.round_trip(presence_topic(PAD) if victim is pad else
                                  topics.build(topics.WINDOW_DISPLAY, center=CENTER_CODE, window=3))
                assert (victim.connects, victim.disconnects) == (1, 0), (username, client_id)
            finally:
                attacker.close()
    finally:
        pad.close()
        edge.close()


def test_an_unbound_slot_acts_for_any_device_of_its_own_center_only(broker_factory, files: Files, fleet) -> None:
    broker = start_broker(broker_factory, files)
    edge = Client(broker.port, EDGE, files.passwords[EDGE])
    slot = Client(broker.port, files.slot, files.passwords[files.slot])  # any client id: it is its user name
    try:
        edge.subscribe(topics.subscription(topics.DEVICE_PRESENCE, center=CENTER_CODE))
        assert slot.connects == 1
        # A device provisioned offline with this slot publishes under its own id, which the fleet learns only
        # when the slot is bound (provision sync); nothing under another center.
        slot.round_trip(presence_topic(STRANGER, OTHER_CENTER), birth())
        slot.round_trip(presence_topic(STRANGER), birth())
        wait_until(lambda: edge.on(presence_topic(STRANGER)), what="the slot's device's birth at the edge")
        assert edge.on(presence_topic(STRANGER, OTHER_CENTER)) == []
    finally:
        edge.close()
        slot.close()

    # Bound to the device that took it, the slot is that device's account only.
    with Session(fleet) as session:
        facts = service.DeviceFacts(device_id=STRANGER, center=CENTER_CODE, window=4, role="rating_pad",
                                    board="esp32", mac=STRANGER[4:], image_sha256="ab" * 32,
                                    provisioned_by="李工", pack_slot=files.slot)
        service.register_device(session, BOX, CLI_USER, facts, NOW)
        session.commit()
    write_files(fleet, files.dir)
    broker.reload()
    edge = Client(broker.port, EDGE, files.passwords[EDGE])
    slot = Client(broker.port, files.slot, files.passwords[files.slot])
    try:
        edge.subscribe(topics.subscription(topics.DEVICE_PRESENCE, center=CENTER_CODE))
        slot.round_trip(presence_topic(PAD), birth())  # refused by the acl: the broker drops it
        slot.round_trip(presence_topic(STRANGER), birth())
        wait_until(lambda: edge.on(presence_topic(STRANGER)), what="the bound device's own birth")
        assert edge.on(presence_topic(PAD)) == []
    finally:
        edge.close()
        slot.close()


def test_provisioning_watches_a_new_device_with_its_check_account_without_kicking_it(
        broker_factory, files: Files, fleet) -> None:
    broker = start_broker(broker_factory, files)
    check = identity.check_account(PAD)
    pad = Client(broker.port, PAD, files.passwords[PAD])
    laptop = Client(broker.port, check, files.passwords[PAD])  # the device's password, the check account's name
    try:
        assert laptop.connects == 1
        laptop.subscribe(presence_topic(PAD))
        pad.subscribe(topics.build(topics.DEVICE_COMMAND, center=CENTER_CODE, device=PAD))
        pad.subscribe(presence_topic(PAD))  # the firmware reads its own presence back
        pad.round_trip(presence_topic(PAD), birth())
        wait_until(lambda: laptop.on(presence_topic(PAD)), what="the device's birth seen by the laptop")
        command = topics.build(topics.DEVICE_COMMAND, center=CENTER_CODE, device=PAD)
        laptop.round_trip(command, b'{"v": 1}')
        wait_until(lambda: pad.on(command), what="the laptop's command at the device")
        laptop.round_trip(presence_topic(PAD), b"forged")  # the check account only watches: dropped
        laptop.round_trip(command, b'{"v": 2}')
        wait_until(lambda: len(pad.on(command)) == 2, what="the second command")
        assert pad.on(presence_topic(PAD)) == [birth()]  # its own birth; the forged one came before command 2
        assert (pad.connects, pad.disconnects, laptop.disconnects) == (1, 0, 0)
    finally:
        pad.close()
        laptop.close()

    # An hour after the registration the check account is gone from the files.
    write_files(fleet, files.dir, NOW + timedelta(seconds=CHECK_ACCOUNT_S + 1))
    broker.reload()
    late = Client(broker.port, check, files.passwords[PAD])
    try:
        assert late.refused is not None
    finally:
        late.close()
