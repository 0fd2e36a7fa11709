"""The county uplink: edge presence, and the outbox forwarded without loss.

Everything that must reach the county (ticket and rating events, device
presence) sits in the SQLite outbox until the county broker has PUBACKed it,
so a village network that is down for a day loses nothing; rows go out in
the order they were written. Health heartbeats are live data: sent when the
link is up, dropped (and counted) when it is not.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiomqtt

from edge_agent.adapters.mqtt_link import MqttLink
from edge_agent.config import CenterConfig
from edge_agent.store import EdgeStore
from protocol import CONTRACT_VERSION, messages, topics

log = logging.getLogger(__name__)

EDGE_FIRMWARE = "edge-agent 0.1.0"
BATCH = 50


class Uplink(MqttLink):
    name = "county_uplink"

    def __init__(self, config: CenterConfig, store: EdgeStore, board: str = "raspberrypi", mac: str = "") -> None:
        super().__init__(config.county_broker, f"edge-{config.code}")
        self.config = config
        self.store = store
        self.board = board
        self.mac = mac
        self.session = 0
        self.dropped_health = 0
        self.forwarded = 0
        self._wake = asyncio.Event()
        self._forwarder: asyncio.Task | None = None

    def _presence_topic(self) -> str:
        return topics.build(topics.EDGE_PRESENCE, center=self.config.code)

    def will(self) -> aiomqtt.Will:
        # A new session number for every connection, so the fleet can tell a stale will from a fresh birth.
        self.session = self.store.increment("edge_session")
        payload = messages.make("presence", state=messages.OFFLINE, session=self.session, role=messages.ROLE_EDGE_AGENT)
        return aiomqtt.Will(self._presence_topic(), messages.encode("presence", payload), qos=1, retain=True)

    async def on_connected(self, client: aiomqtt.Client) -> None:
        birth = messages.make("presence", state=messages.ONLINE, session=self.session, role=messages.ROLE_EDGE_AGENT,
                              board=self.board, fw=EDGE_FIRMWARE, mac=self.mac or None, contract=CONTRACT_VERSION,
                              ts=time.time())
        await client.publish(self._presence_topic(), messages.encode("presence", birth), qos=1, retain=True)
        self._wake.set()

    async def start(self) -> None:
        await super().start()
        self._forwarder = asyncio.create_task(self._forward_loop(), name="outbox_forwarder")

    async def stop(self) -> None:
        if self._forwarder:
            self._forwarder.cancel()
        await super().stop()

    def health(self) -> dict:
        return {**super().health(), "outbox": self.store.outbox_size(), "forwarded": self.forwarded,
                "dropped_health": self.dropped_health, "session": self.session}

    def wake(self) -> None:
        """Something was written to the outbox."""
        self._wake.set()

    def relay(self, topic: str, payload: bytes, qos: int, retain: bool, keep: bool) -> None:
        """Pass a device message on to the county: kept in the outbox, or live only."""
        if keep:
            self.store.enqueue_now(topic, payload, qos, retain, time.time())
            self.wake()
        elif self.connected.is_set() and self.client is not None:
            asyncio.get_running_loop().create_task(self._publish_live(topic, payload, qos, retain))
        else:
            self.dropped_health += 1

    async def _publish_live(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        try:
            await self.client.publish(topic, payload, qos=qos, retain=retain)
        except (aiomqtt.MqttError, AttributeError):
            self.dropped_health += 1

    async def _forward_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5)
            except TimeoutError:
                pass  # look anyway: a wake-up may have been missed across a reconnection
            self._wake.clear()
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
                        self.store.forwarded([row.id])
                        self.forwarded += 1
                except (aiomqtt.MqttError, AttributeError) as exc:
                    log.warning("uplink: forwarding paused (%s); %d rows wait in the outbox", exc,
                                self.store.outbox_size())
                    await asyncio.sleep(0.5)
