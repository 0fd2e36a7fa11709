"""Ingest: the county broker's messages into the database.

`handle_message` (topic text + raw payload -> database) and `record_message`
hold the logic and are plain functions; `Ingest` adds the MQTT client (paho,
MQTT v5) and the periodic heartbeat sweep, each on its own thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlmodel import Session, col, select

from fleet.acks import AckBatcher, EdgeKeys
from fleet.alerts.evaluate import note_device_change, note_misplaced, store_health_report
from fleet.cases.contact import DISCARDED, contact_box, record_callback_phone
from fleet.cases.service import note_reason, open_case_for_event
from fleet.centerconfig.service import record_reported as record_center_config
from fleet.db import write_session
from fleet.devconfig.commands import record_ack
from fleet.devconfig.config import record_reported
from fleet.devconfig.keys import KeyBox
from fleet.event_rows import EventRows
from fleet.health_history import Retention, prune_all, record_sample
from fleet.heartbeats import HeartbeatBatch, known_centers, load_known, refresh_centers
from fleet.metrics import MessageCounts
from fleet.models import AttendanceEvent, Center, Device, RatingEvent, TicketEvent, utcnow
from fleet.presence import apply_device_presence, apply_edge_presence, apply_health, mark_silent_devices
from fleet.province import queue_rating, reason_arrived
from fleet.registration.county_broker import INGEST_PROBE_ROOT
from fleet.registration.delivery import note_edge_version
from fleet.registration.models import DeviceRegistration
from fleet.registration.service import note_birth
from fleet.rollouts.service import record_status as record_firmware_status
from fleet.settings import Settings
from protocol import messages, topics
from protocol import presence as presence_rule
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

# Presence is state, kept as retained messages on the county broker. MQTT v5
# does not deliver retained messages to shared subscriptions ($share/...), so a
# fleet that (re)starts would not learn who is online until every device and
# edge reconnected. Presence topics are therefore subscribed without sharing:
# each fleet worker receives the retained snapshot on subscribe and every later
# change. That is cheap (a message per connect/disconnect) and harmless when
# several workers run, because applying presence is idempotent under the
# session rules of fleet.presence.
STATE_TOPICS = (topics.DEVICE_PRESENCE, topics.EDGE_PRESENCE, topics.EDGE_HEALTH, topics.DEVICE_CONFIG_REPORTED,
                topics.FIRMWARE_STATUS, topics.CENTER_CONFIG_REPORTED)
# Streams, split between workers with a shared subscription.
STREAM_TOPICS = (topics.DEVICE_HEALTH, topics.TICKET_EVENT, topics.RATING_EVENT, topics.ATTENDANCE_EVENT,
                 topics.DEVICE_COMMAND_ACK, topics.CALLBACK_PHONE)
# Events the edge keeps until the fleet acknowledges them (event_ack).
ACKED_EVENT_TOPICS = (topics.TICKET_EVENT, topics.RATING_EVENT, topics.ATTENDANCE_EVENT, topics.CALLBACK_PHONE)
# Outcomes after which the edge may forget the event (DISCARDED: a callback phone the fleet does not keep).
ACKED_OUTCOMES = ("stored", "duplicate", DISCARDED)
# Messages of one device, under the topic of its center: the center must be the one the device belongs to.
DEVICE_TOPICS = (topics.DEVICE_PRESENCE, topics.DEVICE_HEALTH, topics.DEVICE_CONFIG_REPORTED,
                 topics.DEVICE_COMMAND_ACK, topics.FIRMWARE_STATUS)

_DEFAULTS = Settings(ingest_enabled=False)  # case deadlines when the caller gives no settings
PRUNE_INTERVAL_S = 600  # how often the sweep ages out the whole health history

WRITE_BATCH = 500  # messages stored in one transaction at most: the sweep thread must get the lock too
# Messages read from the broker and not yet stored, at most. paho acknowledges a QoS 1 message once our callback
# has queued it, so an unbounded inbox let a backlog (every edge's outbox after an outage) pour into memory; a
# full one holds the network thread back and the broker keeps the rest (tests/fleet/test_fleet_inbox.py).
INBOX_LIMIT = 10 * WRITE_BATCH
INBOX_WAIT_S = 0.5  # a network thread held back by a full inbox checks this often whether the ingest stops

# The ingest's probe (see Ingest.sweep): a message each worker sends itself through the county broker, on a topic
# of its own under INGEST_PROBE_ROOT, outside the contract's sc/ tree (the county broker's acl lets only the
# fleet's accounts read and write there: fleet.registration.county_broker).
PROBES_KEPT = 64  # probes sent and not yet back, at most: one that never comes back is forgotten

# Outcomes of one message, for logs and tests.
APPLIED = "applied"
IGNORED = "ignored"  # stale presence
SUSPECT = "suspect"  # presence or heartbeat whose session is too far ahead to believe: ignored (fleet.presence)
STORED = "stored"
DUPLICATE = "duplicate"
DROPPED = "dropped"  # not part of the contract
MISPLACED = "misplaced"  # a device's message under a center it does not belong to: dropped, counted, alerted
ERROR = "error"  # not stored (logged): the database refused it or was away; an event is then not
# acknowledged, so its edge sends it again


def subscriptions(group: str) -> list[str]:
    """The topic filters the fleet subscribes to on the county broker."""
    filters = [topics.subscription(name) for name in STATE_TOPICS]
    filters += [topics.shared(group, topics.subscription(name)) for name in STREAM_TOPICS]
    return filters


def ensure_center(session: Session, code: str, now: datetime) -> Center:
    """The center `code`, created on its first message; any message of it refreshes edge_last_seen."""
    center = session.get(Center, code)
    if center is None:
        center = Center.new(code, now)
        log.info("new center %s", code)
        center.edge_last_seen = now
        session.add(center)
        session.flush()  # a center another worker created first fails here, in this message's savepoint
        return center
    center.edge_last_seen = now
    session.add(center)
    return center


@dataclass(frozen=True)
class Home:
    """Where a device belongs: the center of its registration, else the one it was first seen in."""

    center: str
    role: str | None
    window: int | None


def device_home(session: Session, device_id: str, center_code: str) -> Home | None:
    """Where `device_id` belongs (see Home); None for a device neither registered nor seen before.

    A message under `center_code` that is the device's stored center needs no other query (every heartbeat);
    otherwise the registration decides, so a record moved before registrations were the truth is repaired by
    the device's own next message.
    """
    device = session.get(Device, device_id)
    if device is not None and device.center_code == center_code:
        return Home(center_code, device.role, device.window)
    registration = session.get(DeviceRegistration, device_id)
    if registration is not None:
        return Home(registration.center_code, registration.role, registration.window)
    return Home(device.center_code, device.role, device.window) if device is not None else None


def ensure_device(session: Session, device_id: str, center_code: str, now: datetime) -> Device:
    """The device's record, created on its first message; `center_code` is where it belongs (device_home)."""
    device = session.get(Device, device_id)
    if device is None:
        device = Device(device_id=device_id, center_code=center_code, updated=now)
        log.info("new device %s in center %s", device_id, center_code)
    elif device.center_code != center_code:
        log.warning("device %s is registered in center %s: its record is moved back there from %s", device_id,
                    center_code, device.center_code)
        device.center_code = center_code
    return device


def _misplaced(session: Session, name: str, device_id: str, center_code: str, home: Home, now: datetime) -> str:
    """A device message under a center the device does not belong to: dropped, counted, alerted."""
    note_misplaced(session, device_id, center_code, home.center, home.role, home.window, name, now)
    log.warning("dropped %s of device %s under center %s: it belongs to center %s (only a registration moves "
                "it)", name, device_id, center_code, home.center)
    return MISPLACED


def _store_event(session: Session, model: type[TicketEvent] | type[RatingEvent] | type[AttendanceEvent],
                 center_code: str, payload: dict[str, Any], now: datetime) -> str:
    existing = session.exec(
        select(model.id).where(model.center_code == center_code, model.event_id == payload["event_id"])
    ).first()
    if existing is not None:
        return DUPLICATE
    own = ("id", "center_code", "received_at")
    fields = {name: payload[name] for name in model.model_fields if name in payload and name not in own}
    session.add(model(**fields, center_code=center_code, received_at=now))
    session.flush()
    return STORED


def _store_rating(session: Session, center_code: str, payload: dict[str, Any], now: datetime,
                  settings: Settings) -> str:
    """A rating is stored once per rating_id, and a stored 差评 opens its case.

    The rating's event again, under a new event_id, only brings a 差评's reason picked after the score
    (docs/protocol.md, rating_event): it is added to the stored rating and its case, once.
    """
    # The center's row, locked, makes two workers given a rating's two events at once take turns, so the second
    # finds the first's rating (PostgreSQL; SQLite has one writer at a time anyway).
    session.exec(select(Center.code).where(Center.code == center_code).with_for_update()).first()
    stored = session.exec(select(RatingEvent).where(RatingEvent.center_code == center_code,
                                                    RatingEvent.rating_id == payload["rating_id"])).first()
    if stored is None:
        outcome = _store_event(session, RatingEvent, center_code, payload, now)
        if outcome == STORED and payload["score"] in messages.BAD_SCORES:
            open_case_for_event(session, center_code, payload["event_id"], now, settings.tz,
                                settings.case_deadline_working_days)
        if outcome == STORED and payload.get("case_no") and settings.province_endpoint is not None:
            rating = session.exec(select(RatingEvent).where(RatingEvent.center_code == center_code,
                                                            RatingEvent.event_id == payload["event_id"])).one()
            queue_rating(session, rating, now, settings)  # same transaction: stored means queued
        return outcome
    reason = payload.get("reason")
    if stored.event_id == payload["event_id"] or reason is None or stored.reason is not None:
        return DUPLICATE
    if stored.score != payload["score"]:
        log.warning("center %s: the reason of rating %s came with score %s, the rating has %s: not taken",
                    center_code, stored.rating_id, payload["score"], stored.score)
        return DUPLICATE  # acknowledged all the same: sending it again would not make it match
    stored.reason = reason
    session.add(stored)
    note_reason(session, stored, now)
    reason_arrived(session, stored, now)
    return STORED


def record_message(session: Session, name: str, params: dict[str, Any], payload: dict[str, Any],
                   now: datetime, retention: Retention | None = None, settings: Settings | None = None) -> str:
    """Apply one validated message of topic `name` to the database (the caller commits).

    An accepted heartbeat is also kept in the health history, pruned to `retention`.
    A stored bad rating (差评) opens its follow-up case (deadline from `settings`).
    """
    center = ensure_center(session, params["center"], now)
    if name == topics.EDGE_PRESENCE:
        outcome = _presence_outcome(apply_edge_presence(center, payload, now))
        session.add(center)
        return outcome
    if name in DEVICE_TOPICS:
        home = device_home(session, params["device"], center.code)
        if home is not None and home.center != center.code:
            return _misplaced(session, name, params["device"], center.code, home, now)
    if name in (topics.DEVICE_PRESENCE, topics.DEVICE_HEALTH):
        device = ensure_device(session, params["device"], center.code, now)
        apply = apply_device_presence if name == topics.DEVICE_PRESENCE else apply_health
        before_online, before_session = device.online, device.session
        outcome = _presence_outcome(apply(device, payload, now))
        session.add(device)
        if name == topics.DEVICE_PRESENCE and outcome == APPLIED and payload["state"] == messages.ONLINE:
            note_birth(session, device.device_id, center.code, now)  # a registered device is active from now
        note_device_change(session, device, before_online, before_session, now)  # drops, for flapping alerts
        if name == topics.DEVICE_HEALTH and outcome == APPLIED:
            record_sample(session, device.device_id, center.code, payload, now, retention or Retention())
        return outcome
    if name == topics.TICKET_EVENT:
        return _store_event(session, TicketEvent, center.code, payload, now)
    if name == topics.ATTENDANCE_EVENT:
        return _store_event(session, AttendanceEvent, center.code, payload, now)
    if name == topics.RATING_EVENT:
        return _store_rating(session, center.code, payload, now, settings or _DEFAULTS)
    if name == topics.CALLBACK_PHONE:
        settings = settings or _DEFAULTS
        return record_callback_phone(session, contact_box(settings), center.code, payload, now,
                                     settings.callback_phone_keep_days)
    if name == topics.EDGE_HEALTH:
        # An edge that ignores the fleet's broker files because the fleet's counter went back: move it on.
        note_edge_version(session, center.code, payload["components"].get("broker_accounts"), now)
        return APPLIED if store_health_report(session, center.code, payload, now) else IGNORED
    if name == topics.DEVICE_CONFIG_REPORTED:
        record_reported(session, center.code, params["device"], payload, now)
        return APPLIED
    if name == topics.CENTER_CONFIG_REPORTED:
        record_center_config(session, center.code, payload, now)
        return APPLIED
    if name == topics.DEVICE_COMMAND_ACK:
        return APPLIED if record_ack(session, params["device"], payload, now) else IGNORED
    if name == topics.FIRMWARE_STATUS:
        record_firmware_status(session, center.code, params["device"], payload, now)  # and its rollout's verdict
        return APPLIED
    log.warning("dropped message on %s: topic %s is not for the fleet", params, name)
    return DROPPED


def _presence_outcome(verdict: str) -> str:
    if verdict in presence_rule.APPLIED:
        return APPLIED
    return SUSPECT if verdict == presence_rule.SUSPECT else IGNORED


def decode_message(topic_text: str, raw: bytes) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The topic's name and parameters and the validated payload; raises ProtocolError, and only that.

    A payload over MAX_PAYLOAD_BYTES is refused unread, as the edge refuses it: no message of the contract
    comes near that, and parsing megabytes (or validating what they hold) is work a sender should not be
    able to make the fleet do.
    """
    if len(raw) > messages.MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of more than {messages.MAX_PAYLOAD_BYTES} bytes")
    name, params = topics.parse(topic_text)
    return name, params, messages.decode(topics.topic(name).payload, raw)


def handle_message(engine: Engine, topic_text: str, raw: bytes, now: datetime | None = None,
                   retention: Retention | None = None, settings: Settings | None = None) -> str:
    """Parse, validate and store one MQTT message in its own transaction.

    Never raises: a malformed message is DROPPED, one the database refuses (or cannot take) is ERROR;
    either is logged with its topic and the reason.
    """
    try:
        name, params, payload = decode_message(topic_text, raw)
    except ProtocolError as exc:
        log.warning("dropped message on %r (%d bytes): %s", topic_text, len(raw), exc)
        return DROPPED
    when = now or utcnow()
    attempt = 1
    while True:
        try:
            with write_session(engine) as session:
                return record_message(session, name, params, payload, when, retention, settings)
        except IntegrityError as exc:
            if attempt == 2:
                _log_not_stored(topic_text, exc)
                return ERROR
            # Another worker stored the same event or created the same record first: the second attempt
            # sees it, and an event is DUPLICATE only if its row is there. A conflict that stays is no
            # duplicate (NOT NULL, a foreign key): ERROR, and the event is not acknowledged.
            attempt = 2
        except Exception as exc:
            _log_not_stored(topic_text, exc)
            return ERROR


Decoded = tuple[str, dict[str, Any], dict[str, Any]]  # a message's topic name, topic parameters and payload


def decode_batch(batch: list[tuple[str, bytes]]) -> list[Decoded | None]:
    """Each message decoded and validated (decode_message); None, logged, for one that is not."""
    decoded: list[Decoded | None] = []
    for topic_text, raw in batch:
        try:
            decoded.append(decode_message(topic_text, raw))
        except ProtocolError as exc:
            log.warning("dropped message on %r (%d bytes): %s", topic_text, len(raw), exc)
            decoded.append(None)
    return decoded


def handle_batch(engine: Engine, batch: list[tuple[str, bytes]], now: datetime | None = None,
                 retention: Retention | None = None, settings: Settings | None = None,
                 decoded: list[Decoded | None] | None = None) -> list[str]:
    """Store many messages in one transaction; returns each one's outcome, in order. Never raises.

    `decoded`: the batch as decode_batch gave it, when the caller has decoded it already.

    One commit per batch instead of per message is what lets one worker keep up
    with a county's heartbeats. Each message runs in its own savepoint, so a
    message that conflicts with a stored record (a duplicate event, a record
    another worker created first) or that the database refuses (an integer too
    large for its column, a NUL character on PostgreSQL) costs only itself: it
    is logged and its outcome is ERROR, and the rest of the batch is stored.

    Heartbeats of devices already stored in their own center (nearly all of a
    county's traffic) take the plain-SQL path of fleet.heartbeats instead, and
    ticket, attendance and plain rating events of stored centers that of
    fleet.event_rows (a backlog after an outage): no savepoint, no ORM objects.
    Such a message can still carry a value the database refuses, or be an
    event another worker stored at the same moment, and that only shows when
    the batch is written; the batch is then stored again with every message in
    its own savepoint (the fast path off), which leaves exactly what the first
    try would have. If the batch cannot be committed even so (the database is
    away), every message is tried again on its own.
    """
    when = now or utcnow()
    retention = retention or Retention()
    decoded = decode_batch(batch) if decoded is None else decoded
    try:
        return _store_batch(engine, batch, decoded, when, retention, settings, fast=True)
    except Exception as exc:
        log.warning("a batch of %d messages could not be stored together (%s); storing it again with each "
                    "message in its own savepoint", len(batch), _reason(exc))
    try:
        return _store_batch(engine, batch, decoded, when, retention, settings, fast=False)
    except Exception:
        log.exception("a batch of %d messages could not be stored together; storing them one by one", len(batch))
    return [handle_message(engine, topic_text, raw, when, retention, settings) for topic_text, raw in batch]


def _store_batch(engine: Engine, batch: list[tuple[str, bytes]], decoded: list[Decoded | None], when: datetime,
                 retention: Retention, settings: Settings | None, fast: bool) -> list[str]:
    """One transaction for the batch; `fast`: heartbeats and events of known devices and centers in plain SQL
    (see handle_batch).

    Raises when something fails outside a message's savepoint (which the fast path's messages are).
    """
    outcomes = [DROPPED] * len(batch)
    with write_session(engine) as session:
        rest = [index for index, item in enumerate(decoded) if item is not None]
        if fast:
            _store_plain(session.connection(), decoded, rest, outcomes, when, retention, settings)
            rest = [index for index in rest if outcomes[index] == DROPPED]
        loaded = _load_batch_records(session, [decoded[index] for index in rest])  # kept referenced: the
        # identity map holds rows weakly
        for index in rest:
            outcomes[index] = _record_in_savepoint(session, batch[index][0], decoded[index], when, retention,
                                                   settings)  # type: ignore[arg-type]
        del loaded
    return outcomes


def _store_plain(connection: Connection, decoded: list[Decoded | None], indexes: list[int], outcomes: list[str],
                 when: datetime, retention: Retention, settings: Settings | None) -> None:
    """Store the heartbeats of known devices (fleet.heartbeats) and the ticket, attendance and plain rating
    events of known centers (fleet.event_rows) among `indexes`, setting their outcomes; the others' stay
    DROPPED, for record_message."""
    heartbeats = HeartbeatBatch(load_known(connection, _heartbeat_devices(decoded)))
    centers = known_centers(connection, {decoded[index][1]["center"] for index in indexes  # type: ignore[index]
                                         if EventRows.takes(decoded[index][0])})  # type: ignore[index]
    events = EventRows(province_reporting=(settings or _DEFAULTS).province_endpoint is not None)
    ratings = Counter((item[1]["center"], item[2]["rating_id"]) for item in decoded
                      if item is not None and item[0] == topics.RATING_EVENT)
    touched: set[str] = set()  # centers whose edge_last_seen a message refreshes, as ensure_center does
    for index in indexes:
        name, params, payload = decoded[index]  # type: ignore[misc]
        center = params["center"]
        if name == topics.DEVICE_HEALTH and heartbeats.takes(center, params["device"]):
            outcomes[index] = _presence_outcome(heartbeats.apply(center, params["device"], payload, when))
            touched.add(center)
        elif EventRows.takes(name) and center in centers and (name != topics.RATING_EVENT or (
                events.plain_rating(payload) and ratings[center, payload["rating_id"]] == 1)):
            events.add(index, name, center, payload)
    heartbeats.write(connection, when, retention)
    for index, outcome in events.write(connection, when).items():
        outcomes[index] = outcome
        touched.add(decoded[index][1]["center"])  # type: ignore[index]
    refresh_centers(connection, touched, when)


def _heartbeat_devices(decoded: list[Decoded | None]) -> set[str]:
    """The devices of the batch's heartbeats that have no other message in it (those keep their order in
    record_message: a birth before a heartbeat, say)."""
    heartbeats, others = set(), set()
    for item in decoded:
        if item is not None and "device" in item[1]:
            (heartbeats if item[0] == topics.DEVICE_HEALTH else others).add(item[1]["device"])
    return heartbeats - others


def _record_in_savepoint(session: Session, topic_text: str, item: Decoded, when: datetime, retention: Retention,
                         settings: Settings | None) -> str:
    """record_message in a savepoint of its own: a message the database refuses is logged and costs only itself.

    Errors of the connection or the transaction (not of this message) are raised.
    """
    name, params, payload = item
    attempt = 1
    while True:
        try:
            with session.begin_nested():
                return record_message(session, name, params, payload, when, retention, settings)
        except Exception as exc:
            if _database_failed(exc):
                raise
            if not isinstance(exc, IntegrityError) or attempt == 2:
                _log_not_stored(topic_text, exc)
                return ERROR
            # Another worker stored the same event or created the same record first: the second attempt
            # sees it, and an event is DUPLICATE only if its row is there (acknowledged, the edge deletes its
            # copy). A conflict that stays is no duplicate (NOT NULL, a foreign key): ERROR, not acknowledged.
            attempt = 2


def _database_failed(exc: Exception) -> bool:
    """Whether `exc` is about the database or the connection rather than one message's values."""
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _reason(exc: BaseException) -> str:
    """The driver's own words in one line, without SQLAlchemy's statement and parameters."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _log_not_stored(topic_text: str, exc: BaseException) -> None:
    log.warning("dropped message on %r: not stored: %s", topic_text, _reason(exc))


def _load_batch_records(session: Session, decoded: list[Decoded | None]) -> list[Center | Device]:
    """Read the batch's stored centers and devices into the session, two queries instead of two per message.

    Returned for the caller to keep referenced while the batch runs.
    """
    codes = {item[1]["center"] for item in decoded if item is not None and "center" in item[1]}
    device_ids = {item[1]["device"] for item in decoded
                  if item is not None and item[0] in (topics.DEVICE_PRESENCE, topics.DEVICE_HEALTH)}
    records: list[Center | Device] = []
    if codes:
        records += session.exec(select(Center).where(col(Center.code).in_(codes))).all()
    if device_ids:
        records += session.exec(select(Device).where(col(Device.device_id).in_(device_ids))).all()
    return records


def probe_topic(client_id: str) -> str:
    """The probe topic of the ingest worker `client_id` (characters MQTT gives a meaning replaced)."""
    name = "".join("_" if char in "+#/" else char for char in client_id) or "_"
    return f"{INGEST_PROBE_ROOT}/{name}/probe"


def sweep_silent_devices(engine: Engine, now: datetime, timeout: float,
                         heard_until: datetime | None = None) -> list[str]:
    """Mark devices silent for longer than `timeout` seconds offline; returns their ids.

    `heard_until`: silence is judged up to that time, not `now` (what the ingest has read and stored).
    """
    with write_session(engine) as session:
        marked = mark_silent_devices(session, now, timeout, heard_until)
        ids = [device.device_id for device in marked]
        for device in marked:
            note_device_change(session, device, True, device.session, now)
    for device_id in ids:
        log.info("device %s offline: heartbeat timeout (%.0f s)", device_id, timeout)
    return ids


class Ingest:
    """The MQTT client on the county broker plus the heartbeat sweep thread."""

    def __init__(self, settings: Settings, engine: Engine, clock: Callable[[], datetime] = utcnow,
                 box: KeyBox | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self._client: mqtt.Client | None = None
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._connected_since: datetime | None = None
        self._subscribe_mid: int | None = None
        self.connects = 0  # successful (re)connections, subscriptions included
        self.message_counts = MessageCounts()  # by topic name and outcome, for /metrics
        self.retention = Retention(settings.health_history_max_age_s, settings.health_history_max_samples)
        self._last_prune: datetime | None = None
        # Acks are signed with each center's edge key; the app passes its key box (without one, none is sent).
        self.acks = AckBatcher(self._publish_ack, EdgeKeys(engine, box) if box is not None else lambda _center: None)
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=INBOX_LIMIT)
        self._writer: threading.Thread | None = None
        # What the ingest has caught up on (see sweep): the probes sent and not yet back, by payload, with the
        # clock when each was sent; a probe of an earlier run (the session is persistent) is not among them.
        self.probe_topic = probe_topic(settings.mqtt_client_id)
        self._probe_run = uuid.uuid4().hex[:12]
        self._probe_count = 0
        self._probes: dict[bytes, datetime] = {}
        self._probe_lock = threading.Lock()
        self.caught_up_at: datetime | None = None  # every message the broker had for us then is stored
        self.sweeps = 0  # rounds of the sweep thread
        self._behind_reported = False

    @property
    def connected(self) -> bool:
        """Connected to the county broker and subscribed."""
        return self._connected_since is not None

    def start(self) -> None:
        """Connect in the background (retrying while the broker is away) and start the sweep."""
        settings = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            protocol=mqtt.MQTTv5,
        )
        if settings.broker_username:
            password = settings.broker_password.get_secret_value() if settings.broker_password else None
            client.username_pw_set(settings.broker_username, password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        # A persistent session: the broker queues QoS 1 events for us while we restart.
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = settings.mqtt_session_expiry_s
        client.connect_async(
            settings.broker_host, settings.broker_port, keepalive=settings.mqtt_keepalive_s,
            clean_start=False, properties=properties,
        )
        client.loop_start()
        self._client = client
        self.acks.start()
        self._stop.clear()
        self._writer = threading.Thread(target=self._write_loop, name="fleet-writer", daemon=True)
        self._writer.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="fleet-sweep", daemon=True)
        self._sweeper.start()
        log.info("ingest connecting to %s as %s", settings.broker_url, settings.mqtt_client_id)

    def stop(self) -> None:
        self._stop.set()
        if self._writer is not None:  # it stores what has arrived, then stops
            self._writer.join(timeout=30)
            self._writer = None
        self.acks.stop()  # the last acknowledgements go out while still connected; anything that arrives
        # after the writer stopped is neither stored nor acknowledged, so the edges send it again
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
            self._sweeper = None
        self._connected_since = None
        log.info("ingest stopped")

    def sweep(self) -> list[str]:
        """One heartbeat sweep: devices not heard of for a timeout before what we have caught up on go offline.

        Skipped unless we have listened for a whole timeout: a device is only silent if we could have heard it.
        And silence is judged at `caught_up_at`, not at the clock: a fleet that was stopped (SIGSTOP) or whose
        writer fell behind has heartbeats waiting at the broker or in its inbox, and must not call their devices
        silent before it has read them (issue 19: every device shown offline for 8 s after a 60 s pause).
        caught_up_at is when the latest probe that came back was sent: the broker delivers what it had for us
        before the probe, and the writer stores it before it sees the probe.
        """
        now = self.clock()
        since = self._connected_since
        timeout = self.settings.heartbeat_timeout_s
        if since is None or (now - since).total_seconds() < timeout:
            return []
        heard_until = self.caught_up_at
        if heard_until is None:
            return []
        return sweep_silent_devices(self.engine, now, timeout, heard_until=min(heard_until, now))

    def send_probe(self) -> None:
        """Send ourselves a probe through the broker; when the writer meets it, it has caught up to now."""
        client = self._client
        if client is None or not self.connected:
            return
        now = self.clock()
        self._probe_count += 1
        payload = f"{self._probe_run}-{self._probe_count}".encode()
        with self._probe_lock:
            self._probes[payload] = now
            while len(self._probes) > PROBES_KEPT:
                del self._probes[next(iter(self._probes))]
        client.publish(self.probe_topic, payload, qos=1)

    def _probes_back(self, payloads: list[bytes]) -> None:
        """Probes met by the writer after it stored everything before them."""
        with self._probe_lock:
            sent = [self._probes.pop(payload) for payload in payloads if payload in self._probes]
            if not sent:
                return
            latest = max(sent)
            # Those sent before it are lost or behind it, and say less.
            for payload in [p for p, at in self._probes.items() if at <= latest]:
                del self._probes[payload]
        if self.caught_up_at is None or latest > self.caught_up_at:
            self.caught_up_at = latest

    def _report_lag(self) -> None:
        """Say once when silence cannot be judged for a whole timeout although we are connected (and when it can
        again): the probes do not come back (the broker's ACL?) or the writer cannot keep up."""
        now = self.clock()
        since = self._connected_since
        timeout = timedelta(seconds=self.settings.heartbeat_timeout_s)
        behind = since is not None and now - since > timeout and (
            self.caught_up_at is None or now - self.caught_up_at > timeout)
        if behind and not self._behind_reported:
            log.warning("ingest behind: nothing is known to be stored since %s; heartbeat timeouts wait until it "
                        "catches up (may the fleet's account read and write %s on the county broker?)",
                        self.caught_up_at, self.probe_topic)
        elif self._behind_reported and not behind:
            log.info("ingest caught up again")
        self._behind_reported = behind

    def _sweep_loop(self) -> None:
        interval = min(self.settings.sweep_interval_s, self.settings.heartbeat_timeout_s / 3)
        while not self._stop.wait(interval):
            try:
                self.sweep()
                self._report_lag()
                self.send_probe()  # judged by the next round's sweep
            except Exception:
                log.exception("heartbeat sweep failed")
            self.sweeps += 1
            try:
                self.prune_history()
            except Exception:
                log.exception("pruning the health history failed")

    def prune_history(self) -> int:
        """Age out the health history of every device (also the silent ones), at most every PRUNE_INTERVAL."""
        now = self.clock()
        if self._last_prune is not None and (now - self._last_prune).total_seconds() < PRUNE_INTERVAL_S:
            return 0
        self._last_prune = now
        with write_session(self.engine) as session:
            return prune_all(session, now, self.retention)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            log.error("county broker %s refused the connection: %s", self.settings.broker_url, reason_code)
            return
        filters = subscriptions(self.settings.ingest_group) + [self.probe_topic]
        _result, self._subscribe_mid = client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        log.info("ingest connected to %s, subscribing to %s", self.settings.broker_url, ", ".join(filters))

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, reason_codes: list[Any],
                      _properties: Any) -> None:
        if mid != self._subscribe_mid:
            return
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log.error("county broker refused subscriptions: %s", ", ".join(failed))
        self._connected_since = self.clock()
        self.connects += 1

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        self._connected_since = None
        if not self._stop.is_set():
            log.warning("ingest lost the county broker (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        # The network thread only queues; the writer thread stores in batches (see handle_batch). A full inbox
        # holds it here (INBOX_LIMIT), so it reads nothing more from the broker until the writer has room.
        item = (message.topic, bytes(message.payload))
        while True:
            try:
                self._inbox.put(item, timeout=INBOX_WAIT_S)
                return
            except queue.Full:
                if self._stop.is_set():
                    # Stopping: not stored, so not acknowledged; its edge sends it again (an event) or the
                    # next one says as much (state).
                    return

    def _write_loop(self) -> None:
        """Store what arrived, a batch at a time, until stopped and the inbox is empty."""
        while True:
            try:
                batch = [self._inbox.get(timeout=0.2)]
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            while len(batch) < WRITE_BATCH:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            self.store_batch(batch)

    def store_batch(self, batch: list[tuple[str, bytes]]) -> None:
        probes = [raw for topic_text, raw in batch if topic_text == self.probe_topic]
        if probes:
            batch = [item for item in batch if item[0] != self.probe_topic]
        decoded = decode_batch(batch)  # once, for storing and for the counts and acks below
        try:
            outcomes = handle_batch(self.engine, batch, self.clock(), self.retention, self.settings,
                                    decoded=decoded) if batch else []
        except Exception:
            # Never let one batch kill the writer (the database may be briefly away). Events are not lost:
            # the edges re-send every event the fleet has not acknowledged.
            log.exception("could not store a batch of %d messages", len(batch))
            outcomes = [ERROR] * len(batch)
            probes = []  # heartbeats before them were not stored: not caught up
        if probes:
            self._probes_back(probes)
        for (topic_text, _raw), item, outcome in zip(batch, decoded, outcomes, strict=True):
            if item is None:  # not stored: counted under its topic's name, if it has one
                try:
                    self.message_counts.add(topics.parse(topic_text)[0], outcome)
                except ProtocolError:
                    self.message_counts.add("invalid", outcome)
                continue
            name, params, payload = item
            self.message_counts.add(name, outcome)
            if name in ACKED_EVENT_TOPICS and outcome in ACKED_OUTCOMES:
                # Tell the edge this event is stored, so it stops keeping it for a re-send (see fleet.acks).
                self.acks.add(params["center"], payload["event_id"])

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Publish on the county broker with our client (configuration, commands); False when not taken."""
        client = self._client
        if client is None or not self.connected:
            return False
        return client.publish(topic, payload, qos=qos, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS

    def _publish_ack(self, topic: str, payload: bytes) -> None:
        if self._client is not None:
            self._client.publish(topic, payload, qos=1)
