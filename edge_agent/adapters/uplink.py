"""The county uplink: edge presence, and the outbox forwarded without loss.

Everything that must reach the county (ticket and rating events, device
presence) sits in the SQLite outbox until the county broker has PUBACKed it,
so a village network that is down for a day loses nothing; rows go out in
the order they were written. Health heartbeats are live data: sent when the
link is up, dropped (and counted) when it is not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time

import aiomqtt

from edge_agent.adapters.base import cancel_and_wait, log_task_error, start_kept_running
from edge_agent.adapters.mqtt_link import MqttLink
from edge_agent.awaiting_ack import AwaitingAck
from edge_agent.config import CenterConfig
from edge_agent.retained import RetainedCopies
from edge_agent.store import EdgeStore
from protocol import CONTRACT_VERSION, messages, signing, topics
from protocol import presence as presence_rule
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

EDGE_FIRMWARE = "edge-agent 0.1.0"
BATCH = 50
HEALTH_EVERY_S = 60
# A forwarding pass that failed (a full disk, a database error) is tried again after this, doubling to the max.
FORWARD_RETRY_MIN_S = 0.5
FORWARD_RETRY_MAX_S = 30.0

# What the county sends down for this center's devices; the agent relays it to the center broker.
DOWNLINK_TOPICS = (topics.DEVICE_CONFIG_DESIRED, topics.DEVICE_COMMAND, topics.FIRMWARE_DESIRED)
# Retained desired states: an empty payload clears one, and is relayed as such.
CLEARABLE_TOPICS = (topics.DEVICE_CONFIG_DESIRED, topics.FIRMWARE_DESIRED)
# Events the fleet must acknowledge (event_ack) before the agent forgets them.
EVENT_TOPICS = (topics.TICKET_EVENT, topics.RATING_EVENT, topics.ATTENDANCE_EVENT, topics.CALLBACK_PHONE)


class Uplink(MqttLink):
    name = "county_uplink"

    def __init__(self, config: CenterConfig, store: EdgeStore, retained: RetainedCopies, awaiting: AwaitingAck,
                 board: str = "raspberrypi", mac: str = "") -> None:
        super().__init__(config.county_broker, f"edge-{config.code}")
        self.config = config
        self.store = store
        self.retained = retained
        self.awaiting = awaiting
        self.resent = 0
        self.downlink = None  # set by the agent: CenterLink.relay_down
        self.health_summary = None  # set by the agent: () -> edge_health fields
        self.broker_accounts = None  # set by the agent: BrokerAccounts.receive, for the center broker's files
        self.firmware_bundle = None  # set by the agent: FirmwareCache.receive, the fleet's firmware bundles
        self.center_config = None  # set by the agent: CenterConfiguration.receive, the county's center configuration
        self.dropped_downlink = 0
        self.refused_acks = 0  # event_ack messages whose signature did not verify with the edge key: not applied
        self.board = board
        self.mac = mac
        self.session = 0
        self.boot = presence_rule.new_boot_id()  # new at every start of the agent, beside the kept counter
        self.dropped_health = 0
        self.forwarded = 0
        self.forward_failures = 0  # forwarding passes ended by an error other than the link's (e.g. a full disk)
        self.last_forward_error = ""
        self.forwarding_failing = False  # the latest pass failed: events wait until one succeeds
        self._wake = asyncio.Event()
        self._forwarder: asyncio.Task | None = None
        self._health_task: asyncio.Task | None = None
        self._last_health: dict | None = None

    def _presence_topic(self) -> str:
        return topics.build(topics.EDGE_PRESENCE, center=self.config.code)

    def will(self) -> aiomqtt.Will:
        # A new session number for every connection, so the fleet can tell a stale will from a fresh birth
        # (and the boot id of this start, so a database restored from an older backup is no reason to ignore us).
        try:
            stored = self.store.increment("edge_session")
        except sqlite3.Error as exc:
            # A full disk must not keep the link down: within this boot the session still grows
            # (protocol.presence orders connections of one boot by it; another boot has another boot id).
            stored = 0
            log.warning("uplink: the session counter could not be stored (%s); this connection uses %d",
                        exc, self.session + 1)
        self.session = max(stored, self.session + 1)
        payload = messages.make("presence", state=messages.OFFLINE, session=self.session, boot=self.boot,
                                role=messages.ROLE_EDGE_AGENT)
        return aiomqtt.Will(self._presence_topic(), messages.encode("presence", payload), qos=1, retain=True)

    async def on_connected(self, client: aiomqtt.Client) -> None:
        birth = messages.make("presence", state=messages.ONLINE, session=self.session, boot=self.boot,
                              role=messages.ROLE_EDGE_AGENT, board=self.board, fw=EDGE_FIRMWARE, mac=self.mac or None,
                              contract=CONTRACT_VERSION, ts=time.time())
        await client.publish(self._presence_topic(), messages.encode("presence", birth), qos=1, retain=True)
        for name in (*DOWNLINK_TOPICS, topics.EVENT_ACK):
            await client.subscribe(topics.subscription(name, center=self.config.code), qos=1)
        if self.broker_accounts is not None:
            await client.subscribe(topics.build(topics.BROKER_ACCOUNTS, center=self.config.code), qos=1)
        if self.firmware_bundle is not None:
            await client.subscribe(topics.build(topics.FIRMWARE_BUNDLE, center=self.config.code), qos=1)
        if self.center_config is not None:
            await client.subscribe(topics.build(topics.CENTER_CONFIG, center=self.config.code), qos=1)
        self._last_health = None  # publish the current health again on every connection
        self._wake.set()

    async def on_message(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        raw = bytes(message.payload)
        if self.firmware_bundle is not None and topic == topics.build(topics.FIRMWARE_BUNDLE, center=self.config.code):
            # The one message bigger than MAX_PAYLOAD_BYTES: the cache checks its size, signature and files itself.
            self.firmware_bundle(raw)
            return
        try:
            name, params = topics.parse(topic)
            if len(raw) > messages.max_payload_bytes(topics.topic(name).payload):
                raise ProtocolError(f"{len(raw)} bytes is more than any downlink message")
            if name == topics.EVENT_ACK and params["center"] == self.config.code:
                ack = messages.decode("event_ack", raw)
                if self._ack_from_the_fleet(ack):
                    self.awaiting.acknowledged([i for i in ack["event_ids"] if isinstance(i, str)])
                return
            if name == topics.BROKER_ACCOUNTS and params["center"] == self.config.code:
                if self.broker_accounts is not None:
                    self.broker_accounts(raw)  # checks the message itself, and keeps the old files if bad
                return
            if name == topics.CENTER_CONFIG and params["center"] == self.config.code:
                if self.center_config is not None:
                    self.center_config(raw)  # verifies it, and keeps the configuration in force if it is not good
                return
            if name not in DOWNLINK_TOPICS or params["center"] != self.config.code:
                raise ProtocolError("not a downlink message for this center")
            if raw or name not in CLEARABLE_TOPICS:  # an empty retained payload clears a desired state
                messages.decode(topics.topic(name).payload, raw)
        except ProtocolError as exc:
            self.dropped_downlink += 1
            log.warning("county broker: dropped message on %s: %s", topic, exc)
            return
        spec = topics.topic(name)
        if spec.retained:
            self.retained.keep(topic, raw)
        if self.downlink is not None:
            # The signature is checked by the device, which alone shares the key with the fleet.
            self.downlink(topic, raw, spec.qos, spec.retained)

    async def start(self) -> None:
        await super().start()
        if self._forwarder is not None and not self._forwarder.done():
            return
        self._forwarder = start_kept_running("outbox_forwarder", self._forward_loop, self._forwarding_failed)
        self._health_task = start_kept_running("edge_health", self._health_loop)

    async def stop(self) -> None:
        await cancel_and_wait(self._forwarder, self._health_task)
        self._forwarder = self._health_task = None
        await super().stop()

    async def _health_loop(self) -> None:
        """The center's health summary: on every change, and every HEALTH_EVERY_S anyway."""
        last_sent = 0.0
        while True:
            await asyncio.sleep(1)
            if self.health_summary is None or not self.connected.is_set() or self.client is None:
                continue
            try:
                summary = self.health_summary()
            except Exception:
                log.exception("uplink: the health summary could not be made")
                continue
            changed = self._last_health is None or {k: v for k, v in summary.items() if k != "ts"} != {
                k: v for k, v in self._last_health.items() if k != "ts"}
            if not changed and time.time() - last_sent < HEALTH_EVERY_S:
                continue
            try:
                payload = messages.make("edge_health", **summary)
                await self.client.publish(topics.build(topics.EDGE_HEALTH, center=self.config.code),
                                          messages.encode("edge_health", payload), qos=1, retain=True)
            except (aiomqtt.MqttError, AttributeError, ProtocolError) as exc:
                log.warning("uplink: health summary not sent: %s", exc)
                continue
            self._last_health = summary
            last_sent = time.time()

    def health(self) -> dict:
        return {**super().health(), "ok": self.connected.is_set() and not self.forwarding_failing,
                "forwarding": "failing" if self.forwarding_failing else "ok", "forward_failures": self.forward_failures,
                "last_forward_error": self.last_forward_error, "outbox": self.store.outbox_size(),
                "forwarded": self.forwarded,
                "dropped_health": self.dropped_health, "dropped_downlink": self.dropped_downlink,
                "refused_acks": self.refused_acks, "acks_problem": self._acks_problem(),
                "awaiting_ack": self.awaiting.count(), "resent": self.resent, "session": self.session,
                "boot": self.boot}

    def _ack_from_the_fleet(self, ack: dict) -> bool:
        """Whether the fleet signed this event_ack with the edge key: the events it names are deleted here, so an
        ack anyone could publish would make the edge forget events the fleet never stored."""
        key = self.config.edge_key
        if key is not None and signing.verify_for_edge(key, self.config.code, ack):
            return True
        self.refused_acks += 1
        log.warning("county broker: event_ack refused (%d events named, kept and sent again): %s",
                    len(ack["event_ids"]), self._acks_problem() or "its signature does not verify with "
                    "brokers.county.edge_key (forged, or the fleet issued a new edge key not in this config yet)")
        return False

    def _acks_problem(self) -> str:
        if self.config.edge_key is None:
            return ("brokers.county.edge_key is not configured: no acknowledgement from the fleet is taken, so every "
                    "event is kept and sent again; set the edge key the fleet issued with the edge's credentials")
        return ""

    def wake(self) -> None:
        """Something was written to the outbox."""
        self._wake.set()

    def relay(self, topic: str, payload: bytes, qos: int, retain: bool, keep: bool) -> None:
        """Pass a device message on to the county: kept in the outbox, or live only."""
        if keep:
            self.store.enqueue_now(topic, payload, qos, retain, time.time())
            self.wake()
        elif self.connected.is_set() and self.client is not None:
            task = asyncio.get_running_loop().create_task(self._publish_live(topic, payload, qos, retain))
            task.add_done_callback(log_task_error)
        else:
            self.dropped_health += 1

    async def _publish_live(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        try:
            await self.client.publish(topic, payload, qos=qos, retain=retain)
        except (aiomqtt.MqttError, AttributeError):
            self.dropped_health += 1

    async def _forward_loop(self) -> None:
        retry_in = FORWARD_RETRY_MIN_S
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5)
            except TimeoutError:
                pass  # look anyway: a wake-up may have been missed across a reconnection
            self._wake.clear()
            try:
                await self._forward_pending()
            except Exception as exc:  # a full disk, a database error: never the end of forwarding
                self._forwarding_failed(exc)
                log.error("uplink: forwarding failed (%s); %d rows wait in the outbox; trying again in %.1f s",
                          self.last_forward_error, self._outbox_size_or_unknown(), retry_in)
                await asyncio.sleep(retry_in)
                retry_in = min(retry_in * 2, FORWARD_RETRY_MAX_S)
                self._wake.set()
                continue
            if self.forwarding_failing:
                log.info("uplink: forwarding works again after %d failed passes", self.forward_failures)
            self.forwarding_failing = False
            retry_in = FORWARD_RETRY_MIN_S

    def _forwarding_failed(self, exc: Exception) -> None:
        self.forward_failures += 1
        self.forwarding_failing = True
        self.last_forward_error = f"{type(exc).__name__}: {exc}"

    def _outbox_size_or_unknown(self) -> int:
        try:
            return self.store.outbox_size()
        except sqlite3.Error:
            return -1

    async def _forward_pending(self) -> None:
        """Forward the outbox in order, then re-send what the fleet has not acknowledged; link errors wait."""
        while True:
            await self.connected.wait()
            rows = self.store.pending(BATCH)
            if not rows:
                break
            client = self.client
            try:
                # Sequential on purpose: the county sees events in the order they happened.
                for row in rows:
                    await client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
                    event_id = _event_id(row.topic, row.payload)
                    if event_id:  # kept until the fleet says it has stored it
                        self.awaiting.sent(event_id, row.topic, row.payload, time.time())
                    self.store.forwarded([row.id])
                    self.forwarded += 1
                await self._resend_unacknowledged(client)
            except (aiomqtt.MqttError, AttributeError) as exc:
                log.warning("uplink: forwarding paused (%s); %d rows wait in the outbox", exc,
                            self.store.outbox_size())
                await asyncio.sleep(0.5)
        if self.connected.is_set() and self.client is not None:
            try:
                await self._resend_unacknowledged(self.client)
            except (aiomqtt.MqttError, AttributeError) as exc:
                log.warning("uplink: re-sending paused (%s)", exc)

    async def _resend_unacknowledged(self, client: aiomqtt.Client) -> None:
        """Send again the events the fleet has not acknowledged within the time-out."""
        due = self.awaiting.due(time.time() - self.config.ack_timeout_s, BATCH)
        for event in due:
            await client.publish(event.topic, event.payload, qos=1, retain=False)
            self.awaiting.sent(event.event_id, event.topic, event.payload, time.time())
            self.resent += 1
        if due:
            log.info("uplink: re-sent %d events the fleet had not acknowledged", len(due))


def _event_id(topic: str, payload: bytes) -> str | None:
    """The event id of a ticket or rating event (the outbox also holds presence and reported state)."""
    try:
        name, _params = topics.parse(topic)
    except ProtocolError:
        return None
    if name not in EVENT_TOPICS:
        return None
    return json.loads(payload)["event_id"]
