"""Helpers for the firmware tests: polling waits, an independent MQTT observer
(paho-mqtt, not our client) and a scriptable fake broker for the cases a real
Mosquitto will not produce (no PINGRESP, no PUBACK).
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import paho.mqtt.client as paho

from firmware.lib import mqtt
from tests.support.aio import run_async

CENTER = "445202101001"
FAST = {"keepalive": 2, "backoff_min_s": 0.05, "backoff_max_s": 0.5, "connect_timeout_s": 3}


def run(coro: Coroutine[Any, Any, Any], timeout: float = 40) -> Any:
    """Run a test coroutine with an overall bound so a bug cannot hang the suite."""
    return run_async(coro, timeout)


async def until(predicate: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Recorder:
    """An independent MQTT client (paho, own thread) that records what it receives."""

    def __init__(self, port: int, *filters: str, client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if filters:
            self.client.subscribe([(f, 1) for f in filters])
            if not self._subscribed.wait(5):
                raise AssertionError("recorder: no SUBACK")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(payload, retained) for t, payload, retained in self.messages if t == topic]

    def payloads(self, topic: str) -> list[bytes]:
        return [payload for payload, _ in self.on(topic)]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------- fake broker


class Packet:
    def __init__(self, first: int, body: bytes) -> None:
        self.first = first
        self.kind = first & 0xF0
        self.body = body

    @property
    def dup(self) -> bool:
        return bool(self.first & 0x08)

    @property
    def qos(self) -> int:
        return (self.first >> 1) & 0x03

    def publish_fields(self) -> tuple[str, int, bytes]:
        """(topic, packet id, payload) of a PUBLISH."""
        topic_len = struct.unpack("!H", self.body[:2])[0]
        topic = self.body[2:2 + topic_len].decode()
        pos = 2 + topic_len
        packet_id = 0
        if self.qos:
            packet_id = struct.unpack("!H", self.body[pos:pos + 2])[0]
            pos += 2
        return topic, packet_id, self.body[pos:]

    @property
    def packet_id(self) -> int:
        return struct.unpack("!H", self.body[:2])[0]


class FakeConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.packets: list[Packet] = []
        self.closed = False

    def of_kind(self, kind: int) -> list[Packet]:
        return [p for p in self.packets if p.kind == kind]

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.closed = True
        self.writer.close()


class FakeBroker:
    """Speaks just enough MQTT 3.1.1; `pingresp` and `puback(connection_index)` script its replies."""

    def __init__(self, pingresp: bool = True, puback: Callable[[int], bool] = lambda index: True) -> None:
        self.pingresp = pingresp
        self.puback = puback
        self.connections: list[FakeConnection] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> FakeBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for conn in self.connections:
            if not conn.closed:
                conn.close()
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConnection(reader, writer)
        self.connections.append(conn)
        index = len(self.connections) - 1
        try:
            while True:
                first = (await reader.readexactly(1))[0]
                length_bytes = b""
                while True:
                    byte = await reader.readexactly(1)
                    length_bytes += byte
                    if not byte[0] & 0x80:
                        break
                length, _ = mqtt.decode_remaining_length(length_bytes)
                body = await reader.readexactly(length) if length else b""
                packet = Packet(first, body)
                conn.packets.append(packet)
                if packet.kind == mqtt.CONNECT:
                    await conn.send(b"\x20\x02\x00\x00")
                elif packet.kind == mqtt.PINGREQ and self.pingresp:
                    await conn.send(b"\xd0\x00")
                elif packet.kind == mqtt.SUBSCRIBE:
                    count = 0
                    pos = 2
                    while pos < len(body):
                        pos += 2 + struct.unpack("!H", body[pos:pos + 2])[0] + 1
                        count += 1
                    await conn.send(b"\x90" + mqtt.encode_remaining_length(2 + count) + body[:2] + b"\x01" * count)
                elif packet.kind == mqtt.PUBLISH and packet.qos == 1 and self.puback(index):
                    await conn.send(mqtt.ack_packet(mqtt.PUBACK, packet.publish_fields()[1]))
                elif packet.kind == mqtt.DISCONNECT:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            conn.closed = True
            writer.close()
