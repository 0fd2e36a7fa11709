"""The center broker: what the windows' displays and pads see and send.

Publishes each window's display and rating request (retained, so a device
that reboots shows the right thing at once) and takes the devices' presence,
health and ratings. On every reconnection the state of every window is
published again from the store, so displays recover after an agent restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

import aiomqtt

from edge_agent.adapters.base import cancel_and_wait, start_kept_running
from edge_agent.adapters.mqtt_link import MqttLink
from edge_agent.config import CenterConfig
from edge_agent.queue.service import CALLED, FINISHED, RATED, UNRATED, QueueChange, QueueService
from edge_agent.retained import RetainedCopies
from edge_agent.store import EdgeStore
from protocol import messages, topics
from protocol import presence as presence_rule
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

# What devices publish that the agent takes from the center broker.
DEVICE_UPLINK_TOPICS = (topics.DEVICE_PRESENCE, topics.DEVICE_HEALTH, topics.RATING_SUBMITTED,
                        topics.DEVICE_CONFIG_REPORTED, topics.DEVICE_COMMAND_ACK, topics.FIRMWARE_STATUS,
                        topics.FIRMWARE_FETCH)


REFUSED_KEPT = 20  # devices whose refusal health shows


class DeviceRegistry(Protocol):
    """Who may speak on the center broker (edge_agent.adapters.broker_accounts.BrokerAccounts)."""

    def place(self, device_id: str) -> tuple[str, int] | None:
        """(role, window) of a device registered to this center; None for any other device id."""


def _disagreement(presence: dict, registered: tuple[str, int]) -> str:
    """Why a presence message contradicts the device's registration ("" when it does not)."""
    role, window = registered
    said_window = presence.get("window")
    if presence["role"] != role or (said_window is not None and said_window != window):
        said = presence["role"] + (f" at window {said_window}" if said_window is not None else "")
        return f"announced itself as {said}, registered as {role} at window {window}"
    return ""


class CenterLink(MqttLink):
    name = "center_broker"

    def __init__(self, config: CenterConfig, queue: QueueService, store: EdgeStore, relay,
                 retained: RetainedCopies) -> None:
        super().__init__(config.center_broker, f"edge-{config.code}")
        self.config = config
        self.queue = queue
        self.store = store
        self.relay = relay  # the uplink: device presence and health go on to the county
        self.retained = retained  # desired configurations relayed from the county
        self._outgoing: asyncio.Queue[tuple[str, bytes, int, bool]] = asyncio.Queue()
        self._sender: asyncio.Task | None = None
        self.refused_ratings = 0
        self.acknowledged_ratings = 0  # rating_ack sent to pads (stored or refused)
        self.dropped = 0
        self.suspect_presence = 0  # presence ignored as suspect (protocol.presence): forged or broken senders
        # Set by the agent when it installs the fleet's broker accounts (BrokerAccounts): then only devices
        # registered to this center are served, as the role and window they were registered as.
        self.registry: DeviceRegistry | None = None
        self.unregistered = 0  # messages of device ids not registered to this center: dropped
        self.refused_presence = 0  # births and wills whose role or window is not the registered one
        self.refused_devices: dict[str, str] = {}  # device id -> why its messages were refused (the latest few)
        # window -> the window_display payload last published for it (retained): what its display was told. The
        # county sees it in edge_health (windows.<n>.display), so its mirror is the display's, not a guess.
        self.displays_told: dict[int, dict] = {}
        self.firmware = None  # set by the agent: the FirmwareCache that answers the boards' firmware_fetch
        queue.listeners.append(self._on_queue_change)

    async def start(self) -> None:
        await super().start()
        if self._sender is not None and not self._sender.done():
            return
        self._sender = start_kept_running("center_broker_sender", self._send_loop)

    async def stop(self) -> None:
        await cancel_and_wait(self._sender)
        self._sender = None
        await super().stop()

    def health(self) -> dict:
        return {**super().health(), "refused_ratings": self.refused_ratings,
                "acknowledged_ratings": self.acknowledged_ratings, "dropped_messages": self.dropped,
                "suspect_presence": self.suspect_presence, "unregistered_devices": self.unregistered,
                "refused_presence": self.refused_presence, "refused_devices": dict(self.refused_devices)}

    def relay_down(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """A message from the county for a device of this center (desired configuration, command)."""
        self._outgoing.put_nowait((topic, payload, qos, retain))

    # -- edge -> devices --------------------------------------------------

    def _queue_publish(self, name: str, window: int, payload: dict) -> None:
        spec = topics.topic(name)
        self._outgoing.put_nowait((topics.build(name, center=self.config.code, window=window),
                                   messages.encode(spec.payload, payload), spec.qos, spec.retained))

    def publish_window(self, window: int) -> None:
        payload = self.queue.display_payload(window)
        self.displays_told[window] = payload
        self._queue_publish(topics.WINDOW_DISPLAY, window, payload)

    def publish_rating_request(self, window: int) -> None:
        request = self.queue.rating_request_payload(window)
        if request is not None:
            self._queue_publish(topics.RATING_REQUEST, window, request)

    def _on_queue_change(self, change: QueueChange) -> None:
        if change.window is None:
            return
        if change.kind == CALLED:
            self.publish_window(change.window)
        elif change.kind in (FINISHED, RATED, UNRATED):
            self.publish_rating_request(change.window)
            self.publish_window(change.window)

    async def _send_loop(self) -> None:
        while True:
            item = await self._outgoing.get()
            while True:
                await self.connected.wait()
                client = self.client
                try:
                    topic, payload, qos, retain = item
                    await client.publish(topic, payload, qos=qos, retain=retain)
                    break
                except (aiomqtt.MqttError, AttributeError):
                    await asyncio.sleep(0.2)  # the link is reconnecting; on_connected republishes state

    async def on_connected(self, client: aiomqtt.Client) -> None:
        for name in DEVICE_UPLINK_TOPICS:
            await client.subscribe(topics.subscription(name, center=self.config.code), qos=1)
        for window in self.config.windows:
            self.publish_window(window.number)
            self.publish_rating_request(window.number)
        for topic, payload in self.retained.all():
            self.relay_down(topic, payload, 1, True)

    # -- devices -> edge --------------------------------------------------

    def _acknowledge_rating(self, device_id: str, rating: dict, stored: bool, why: str) -> None:
        """Tell the pad its rating is decided for good (rating_ack): stored, or refused and why."""
        spec = topics.topic(topics.RATING_ACK)
        ack = messages.make(spec.payload, rating_id=rating["rating_id"], reason=rating.get("reason"),
                            status=messages.RATING_STORED if stored else messages.RATING_REFUSED,
                            error=None if stored else why)
        self.acknowledged_ratings += 1
        self._outgoing.put_nowait((topics.build(topics.RATING_ACK, center=self.config.code, device=device_id),
                                   messages.encode(spec.payload, ack), spec.qos, spec.retained))

    def _answer_fetch(self, device_id: str, fetch: dict) -> None:
        """One chunk of a cached firmware bundle to the board that asked (firmware_chunk, QoS 0: it asks again)."""
        if self.firmware is None:
            answer = messages.make("firmware_chunk", manifest_sha256=fetch["manifest_sha256"], path=fetch["path"],
                                   offset=fetch["offset"], error="this edge serves no firmware")
        else:
            answer = self.firmware.chunk(fetch)
        spec = topics.topic(topics.FIRMWARE_CHUNK)
        self._outgoing.put_nowait((topics.build(topics.FIRMWARE_CHUNK, center=self.config.code, device=device_id),
                                   messages.encode(spec.payload, answer), spec.qos, spec.retained))

    def _refuse_device(self, device_id: str, why: str) -> None:
        """Remember why a device was refused, for health; only the latest REFUSED_KEPT devices."""
        self.refused_devices.pop(device_id, None)
        self.refused_devices[device_id] = why
        while len(self.refused_devices) > REFUSED_KEPT:
            del self.refused_devices[next(iter(self.refused_devices))]

    def _drop(self, topic: str, why: str) -> None:
        self.dropped += 1
        log.warning("center broker: dropped message on %s: %s", topic, why)

    async def on_message(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        raw = bytes(message.payload)
        if len(raw) > messages.MAX_PAYLOAD_BYTES:
            self._drop(topic, f"{len(raw)} bytes is more than any device message ({messages.MAX_PAYLOAD_BYTES})")
            return
        try:
            name, params = topics.parse(topic)
            payload = messages.decode(topics.topic(name).payload, raw)
        except ProtocolError as exc:
            self._drop(topic, str(exc))
            return
        if params["center"] != self.config.code:
            self._drop(topic, "it is for another center")
            return
        device_id = params.get("device")
        registered = self.registry.place(device_id) if self.registry is not None else None
        if self.registry is not None and registered is None:
            self.unregistered += 1
            self._refuse_device(device_id, f"not registered to center {self.config.code}")
            self._drop(topic, f"device {device_id} is not registered to this center")
            return
        if name == topics.DEVICE_PRESENCE and registered is not None:
            disagreement = _disagreement(payload, registered)
            if disagreement:
                # The birth (or will) is the device's own word; the registration is the fleet's.
                self.refused_presence += 1
                self._refuse_device(device_id, disagreement)
                log.warning("center broker: presence of %s refused: %s", device_id, disagreement)
                return
        if name != topics.DEVICE_PRESENCE and not self.store.is_known_device(device_id):
            # Every device announces itself with a birth on connect; anything else first is not one of ours.
            self._drop(topic, f"unknown device {device_id} (no birth seen)")
            return
        if name == topics.DEVICE_PRESENCE:
            verdict = self.store.record_presence(device_id, payload, time.time(), place=registered)
            if verdict in presence_rule.APPLIED:
                self.relay.relay(topic, raw, qos=1, retain=True, keep=True)
            elif verdict == presence_rule.SUSPECT:
                # Stored and relayed, it would make the device's every later real presence look old.
                self.suspect_presence += 1
                log.warning("center broker: presence of %s with session %s (boot %s) ignored as suspect: more than "
                            "%d ahead of the stored session", device_id, payload["session"], payload.get("boot"),
                            presence_rule.MAX_SESSION_JUMP)
            else:
                log.info("center broker: stale presence of %s (session %s, boot %s) ignored", device_id,
                         payload["session"], payload.get("boot"))
        elif name == topics.DEVICE_HEALTH:
            self.relay.relay(topic, raw, qos=0, retain=False, keep=False)
        elif name == topics.FIRMWARE_FETCH:
            self._answer_fetch(device_id, payload)
        elif name in (topics.DEVICE_CONFIG_REPORTED, topics.DEVICE_COMMAND_ACK, topics.FIRMWARE_STATUS):
            spec = topics.topic(name)
            self.relay.relay(topic, raw, qos=spec.qos, retain=spec.retained, keep=True)
        elif name == topics.RATING_SUBMITTED:
            # The center broker lets every device write its own rating topic (one acl pattern for all roles),
            # so only the rating pad of the rating's window may rate: as registered, or else as its birth said.
            role, window = registered or self.store.device_place(device_id) or (None, None)
            if role != messages.ROLE_RATING_PAD or window != payload["window"]:
                self.refused_ratings += 1
                log.warning("rating %s from %s refused: it is not the rating pad of window %s (it is a %s at "
                            "window %s)", payload["rating_id"], device_id, payload["window"], role, window)
                self._acknowledge_rating(device_id, payload, False, f"not the rating pad of window {payload['window']}")
                return
            # A database error (a full disk) raises here and nothing is acknowledged: the pad keeps the rating on
            # flash and sends it again. The acknowledgement goes only after record_rating's commit.
            outcome = self.queue.record_rating(device_id, payload)
            self._acknowledge_rating(device_id, payload, outcome.stored, outcome.reason)
            if not outcome.accepted:
                self.refused_ratings += 1
                log.warning("rating %s from %s for %s refused: %s", payload["rating_id"], device_id,
                            payload["ticket"], outcome.reason)
