"""Helpers for the firmware tests: polling waits, an independent MQTT observer
(paho-mqtt, not our client), a scriptable fake broker for the cases a real
Mosquitto will not produce (no PINGRESP, no PUBACK), and the firmware's clock
and the events ("the feeder ran", "a connect attempt ended") that let a test
show that nothing happened without sleeping.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import paho.mqtt.client as paho

from firmware.lib import clock, mqtt
from tests.support.aio import run_async

CENTER = "445202101001"
DEVICE_KEY = bytes(range(32))
# Longer than any test, so that the only reconnects are those a test causes (an abort, a broker restart)
# and counts of connects and sessions are exact: with a short keepalive a loaded machine that answers a
# PINGREQ late adds one. The keepalive itself is tested with its own short value (test_fw_mqtt).
KEEPALIVE_S = 60
FAST = {"keepalive": KEEPALIVE_S, "backoff_min_s": 0.05, "backoff_max_s": 0.5, "connect_timeout_s": 3}


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


class AcknowledgingEdge(Recorder):
    """A Recorder that also plays the edge agent's part in a rating's journey: it answers every rating it
    receives with a rating_ack (stored), as the edge does once the rating is in its database. Without one,
    a pad keeps the rating and sends it again."""

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        from protocol import messages, topics

        super()._on_message(client, userdata, message)
        name, params = topics.parse(message.topic)
        if name != topics.RATING_SUBMITTED:
            return
        rating = messages.decode("rating_submitted", message.payload)
        ack = messages.make("rating_ack", rating_id=rating["rating_id"], reason=rating.get("reason"),
                            status=messages.RATING_STORED)
        client.publish(topics.build(topics.RATING_ACK, **params), messages.encode("rating_ack", ack), qos=1)


# ------------------------------------------------- time and positive events


class DrivenClock:
    """The firmware's millisecond clock (firmware.lib.clock.ticks_ms), moved only by the test.

    Installed before the runtime is built, it stands still until advance(): a
    deadline measured on it (the watchdog's) expires when the test says so,
    never because a loaded machine ran the event loop late. The asyncio loops
    (feeder, ticker, backoff) still run in real time. Only the clock module's
    public functions are used, so a clock that wraps works the same.
    """

    def __init__(self, monkeypatch: Any) -> None:
        self._ticks_add = clock.ticks_add
        self.now_ms = clock.ticks_ms()
        monkeypatch.setattr(clock, "ticks_ms", self.ticks_ms)

    def ticks_ms(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms = self._ticks_add(self.now_ms, ms)


class FeedRounds:
    """Every round of a runtime's watchdog feeder, in order (True: it fed).

    A round that ran is the positive event a "nothing was fed" check waits
    for: after `await rounds.next(3)` the feeder has decided three times.
    """

    def __init__(self, feeder: Any) -> None:
        self.fed: list[bool] = []
        decide = feeder.feed_if_alive

        def recorded(now_ms: int) -> bool:
            fed = decide(now_ms)
            self.fed.append(fed)
            return fed

        feeder.feed_if_alive = recorded

    async def next(self, count: int) -> list[bool]:
        """The decisions of the next `count` rounds, once they have run."""
        start = len(self.fed)
        await until(lambda: len(self.fed) >= start + count, what=f"{count} feeder rounds")
        return self.fed[start:start + count]


class ConnectAttempts:
    """Counts the connect attempts of an MQTTClient that have ended (connected or failed).

    An attempt that ended is the positive event a "still waiting" check waits
    for: the client's loop went round, and whatever waits on the link had its
    chance to (wrongly) finish.
    """

    def __init__(self, client: mqtt.MQTTClient) -> None:
        self.ended = 0
        attempt = client._open

        async def counted() -> Any:
            try:
                return await attempt()
            finally:
                self.ended += 1

        client._open = counted  # type: ignore[method-assign]

    async def more(self, count: int) -> None:
        """Wait until `count` more attempts have ended."""
        target = self.ended + count
        await until(lambda: self.ended >= target, what=f"{count} more connect attempts")


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


# --------------------------------------------------------------- TCP proxy


class FreezableProxy:
    """A TCP proxy on loopback in front of a real broker; freeze() makes every connection half-open.

    Frozen, it keeps the sockets open but forwards nothing either way: what a
    client sees when a Wi-Fi access point or a NAT silently drops its
    connection. No FIN, no RST: only keepalive can tell.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.frozen = False
        self.connections = 0
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def freeze(self) -> None:
        self.frozen = True
        self._thawed.clear()

    def thaw(self, drop: bool = True) -> None:
        """Forward again. With `drop`, the connections that were frozen are closed (they are dead anyway)."""
        if drop:
            for writer in self._writers:
                writer.close()
            self._writers = []
        self.frozen = False
        self._thawed.set()

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.frozen:  # nothing gets through, not even a new connection's CONNECT
            await self._thawed.wait()
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(4096)
            if self.frozen:
                # Nothing gets through, not even the other side closing: the broker's own keepalive ends
                # its side of a silent connection, and that must not reach the client as an EOF.
                await self._thawed.wait()
                if data:
                    continue  # the bytes sent into a frozen connection are lost, as on a dead link
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()


# --------------------------------------------------------------- a device


def make_device(port: int, state_dir: Any, role: str = "rating_pad", mac: str = "02:00:00:00:00:07",
                key: bytes | None = DEVICE_KEY, panel: Any = None, **runtime_options: Any) -> Any:
    """A DeviceRuntime as a board runs it (flash-backed memories in `state_dir`), against broker `port`.

    Built the way main.py builds it; call it again with the same state_dir to "reboot".
    """
    from firmware.lib import config
    from firmware.lib.runtime import DeviceRuntime, rated_store
    from firmware.queue_display.app import QueueDisplayApp
    from firmware.rating_pad.app import RatingPadApp
    from firmware.sim.hardware import SimPanel
    from protocol import identity

    cfg = config.from_dict({"center": CENTER, "window": 3, "role": role, "board": "test",
                            "broker": {"host": "127.0.0.1", "port": port}, "keepalive_s": KEEPALIVE_S, "mac": mac,
                            "device_key": key.hex() if key else None})
    assert not cfg.errors, cfg.errors
    device_id = identity.device_id_from_mac(mac)
    if role == "rating_pad":
        app: Any = RatingPadApp(3, device_id, rated=rated_store(str(state_dir), log=None))
    else:
        app = QueueDisplayApp(3)
    options = {"backoff_min_s": 0.05, "backoff_max_s": 0.3, "log": None}
    options.update(runtime_options)
    return DeviceRuntime(cfg, app, str(state_dir), panel=panel if panel is not None else SimPanel(), **options)
