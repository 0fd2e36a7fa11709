"""A small MQTT 3.1.1 client on asyncio streams, for MicroPython and CPython.

Modelled on Peter Hinch's mqtt_as: the link owns recovery, the application
never retries. `run()` keeps a connection up forever (exponential backoff
with jitter between attempts), re-subscribes after every reconnect, pings
at keepalive/2 and declares the link dead when a PINGRESP does not come
back. `publish()` simply waits while the link is down; a QoS 1 publish
waits for its PUBACK and is sent again, with DUP, after a reconnect.

Only the stream subset shared by CPython and MicroPython is used:
open_connection, read/readexactly, write/drain, close/wait_closed; on
MicroPython open_connection is ours (see there).
"""

import asyncio
import gc
import random
import struct

from firmware.lib import clock

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
PUBREC = 0x50
PUBREL = 0x60
PUBCOMP = 0x70
SUBSCRIBE = 0x80
SUBACK = 0x90
UNSUBSCRIBE = 0xA0
UNSUBACK = 0xB0
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

MAX_REMAINING_LENGTH = 268435455  # 4 bytes of 7 bits

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

CONNACK_ERRORS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class MQTTError(Exception):
    """The link broke, the broker refused us, or a packet made no sense."""


# MicroPython's asyncio has one Stream class straight over a socket (StreamReader is StreamWriter);
# CPython's streams sit on a transport; the WebAssembly port has none. Feature detection, not a platform check.
_STREAM = getattr(asyncio, "StreamWriter", None)
SOCKET_STREAMS = _STREAM is not None and getattr(asyncio, "StreamReader", None) is _STREAM
CONNECT_POLL_MS = 20  # how often a connect in progress is looked at (MicroPython)

if SOCKET_STREAMS:
    class _SocketStream(_STREAM):  # type: ignore[misc, valid-type]  # MicroPython's Stream(socket)
        """A MicroPython stream whose close() closes its socket at once (1.27's close() does nothing and
        leaves it to wait_closed(), which a cancelled task may never reach)."""

        def __init__(self, sock):
            super().__init__(sock)
            self.sock = sock

        def close(self):
            self.sock.close()


async def open_connection(host, port):
    """asyncio.open_connection that closes its socket on every failure path.

    MicroPython 1.27's own leaks the socket when connect() fails at once (EHOSTUNREACH with Wi-Fi
    down) and when it is cancelled while the connect is in progress (a broker host that does not
    answer, until the caller's timeout): with lwIP's ~10 sockets, a board retrying every few seconds
    runs out within a minute and can never connect again. CPython's closes it itself.
    """
    if not SOCKET_STREAMS:
        return await asyncio.open_connection(host, port)
    import select
    import socket
    from errno import EINPROGRESS

    address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]  # blocks, as asyncio's own does
    sock = socket.socket(address[0], address[1], address[2])
    try:
        sock.setblocking(False)
        try:
            sock.connect(address[-1])
        except OSError as exc:
            if exc.errno != EINPROGRESS:
                raise
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        while True:
            ready = poller.poll(0)
            if ready:
                if ready[0][1] & (select.POLLERR | select.POLLHUP):
                    raise OSError("connect to %s:%s failed" % (host, port))
                break
            await asyncio.sleep_ms(CONNECT_POLL_MS)  # type: ignore[attr-defined]  # MicroPython's asyncio
    except BaseException:  # a failure, or the caller's timeout cancelling us: the socket goes either way
        sock.close()
        raise
    stream = _SocketStream(sock)
    return stream, stream


def encode_remaining_length(length):
    """MQTT variable byte integer: 1 to 4 bytes, 7 bits each, low bits first."""
    if length < 0 or length > MAX_REMAINING_LENGTH:
        raise ValueError("remaining length out of range: %d" % length)
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_remaining_length(data, offset=0):
    """Return (length, bytes used) of the variable byte integer at data[offset]."""
    value = 0
    shift = 0
    for i in range(4):
        if offset + i >= len(data):
            raise MQTTError("truncated remaining length")
        byte = data[offset + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise MQTTError("remaining length longer than 4 bytes")


def _utf8(text):
    if isinstance(text, str):
        text = text.encode("utf-8")
    return struct.pack("!H", len(text)) + text


def _packet(first_byte, body):
    return bytes([first_byte]) + encode_remaining_length(len(body)) + body


def connect_packet(client_id, keepalive, clean_session=True, will=None, username=None, password=None):
    flags = 0x02 if clean_session else 0
    body = bytearray(b"\x00\x04MQTT\x04")
    payload = bytearray(_utf8(client_id))
    if will is not None:
        will_topic, will_payload, will_qos, will_retain = will
        flags |= 0x04 | (will_qos << 3)
        if will_retain:
            flags |= 0x20
        payload += _utf8(will_topic)
        payload += _utf8(will_payload)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    body.append(flags)
    body += struct.pack("!H", keepalive)
    body += payload
    return _packet(CONNECT, bytes(body))


def publish_packet(topic, payload, qos=0, retain=False, packet_id=0, dup=False):
    first = PUBLISH | (qos << 1)
    if retain:
        first |= 0x01
    if dup:
        first |= 0x08
    body = bytearray(_utf8(topic))
    if qos:
        body += struct.pack("!H", packet_id)
    body += payload
    return _packet(first, bytes(body))


def subscribe_packet(packet_id, filters):
    """filters: list of (topic_filter, qos)."""
    body = bytearray(struct.pack("!H", packet_id))
    for topic_filter, qos in filters:
        body += _utf8(topic_filter)
        body.append(qos)
    return _packet(SUBSCRIBE | 0x02, bytes(body))


def unsubscribe_packet(packet_id, filters):
    body = bytearray(struct.pack("!H", packet_id))
    for topic_filter in filters:
        body += _utf8(topic_filter)
    return _packet(UNSUBSCRIBE | 0x02, bytes(body))


def ack_packet(kind, packet_id):
    return bytes([kind, 2]) + struct.pack("!H", packet_id)


def decode_publish(first, body):
    """(topic, packet id, payload, qos, retain, dup) of a PUBLISH packet's first byte and body."""
    qos = (first >> 1) & 0x03
    if qos == 3:
        raise MQTTError("PUBLISH with QoS 3")
    if len(body) < 2:
        raise MQTTError("truncated PUBLISH")
    topic_len = (body[0] << 8) | body[1]
    pos = 2 + topic_len
    if len(body) < pos + (2 if qos else 0):
        raise MQTTError("truncated PUBLISH")
    try:
        topic = bytes(body[2:pos]).decode("utf-8")
    except UnicodeError:
        raise MQTTError("PUBLISH topic is not UTF-8")
    packet_id = 0
    if qos:
        packet_id = (body[pos] << 8) | body[pos + 1]
        pos += 2
    return topic, packet_id, bytes(body[pos:]), qos, bool(first & 0x01), bool(first & 0x08)


def _describe(exc):
    text = str(exc)
    name = type(exc).__name__
    return "%s: %s" % (name, text) if text else name


class _Link:
    """One TCP connection to the broker and the tasks that serve it."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.lock = asyncio.Lock()
        self.dead = False
        self.dead_event = asyncio.Event()
        self.ping_outstanding = False
        self.setup_task = None
        self.tasks = ()


class MQTTClient:
    """An MQTT 3.1.1 client that keeps itself connected.

    will: None, a tuple (topic, payload_bytes, qos, retain), or a callable
    returning such a tuple; a callable is called right before every CONNECT
    (after the TCP connection is made), so the will can carry a fresh value.
    on_message(topic_str, payload_bytes, retained_bool) is called from the
    read loop: it must not block (hand work to another task).
    on_connect() is awaited after every (re)connect once the recorded
    subscriptions are re-sent; publishes it makes go out before the ones the
    rest of the application queued while the link was down.
    """

    def __init__(self, client_id, host, port=1883, username=None, password=None, keepalive=30,
                 will=None, on_message=None, on_connect=None, backoff_min_s=0.5, backoff_max_s=30,
                 connect_timeout_s=10, max_packet=16384, log=print):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.keepalive = int(keepalive)
        self.will = will
        self.on_message = on_message
        self.on_connect = on_connect
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.connect_timeout_s = connect_timeout_s
        self.max_packet = max_packet
        self.log = log
        self.up = False
        self.connects = 0
        self.reconnects = 0
        self.last_error = None
        # Ticks of the last sign of life: a packet from the broker or a connection attempt.
        # The watchdog stops being fed when this gets old (the link task is stuck or dead).
        self.progress_ms = clock.ticks_ms()
        self._subs = []  # [topic_filter, qos] in the order recorded
        self._pending = {}  # packet id -> [Event, result, link]
        self._next_id = 0
        self._link = None  # type: _Link | None
        self._opening = None  # type: _Link | None
        self._closed = False
        self._clean_stop = True
        self._running = False
        self._up_event = asyncio.Event()
        self._epoch = 0  # bumped by disconnect(): publishes waiting then give up
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()

    # ----------------------------------------------------------------- public

    async def run(self):
        """Connect and stay connected until disconnect() (or abort(stop=True))."""
        self._closed = False
        self._clean_stop = True
        self._running = True
        self._stopped.clear()
        attempt = 0
        try:
            while not self._closed:
                self._wake.clear()
                self.progress_ms = clock.ticks_ms()
                try:
                    link = await asyncio.wait_for(self._open(), self.connect_timeout_s)  # type: _Link
                except Exception as exc:
                    if self._opening is not None:
                        await self._close_socket(self._opening)
                        self._opening = None
                    self.last_error = "connect: %s" % _describe(exc)
                    # What a failed attempt left behind (a socket object without close on an older
                    # runtime, buffers) goes now, not when the heap runs short: lwIP sockets are few.
                    gc.collect()
                    attempt += 1
                    await self._pause(self._backoff_s(attempt))
                    continue
                attempt = 0
                await self._serve(link)
                if not self._closed:
                    await self._pause(self._backoff_s(1))
        finally:
            opening = self._opening
            if opening is not None:  # run() itself cancelled while connecting
                self._opening = None
                opening.writer.close()
            self._running = False
            self.up = False
            self._stopped.set()

    async def publish(self, topic, payload, qos=0, retain=False):
        """Send a message; waits while the link is down. QoS 1 returns once PUBACKed.

        payload may be a callable returning the bytes: it is called for every (re)send, so a payload
        that says how old it is (a rating's age_ms) is right on the wire each time.
        Raises MQTTError if disconnect() (or abort(stop=True)) comes first.
        """
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if qos not in (0, 1):
            raise ValueError("only QoS 0 and 1 are supported")
        packet_id = self._new_packet_id() if qos else 0
        dup = False
        epoch = self._epoch
        while True:
            link = await self._usable_link(epoch)
            packet = publish_packet(topic, payload() if callable(payload) else payload, qos, retain, packet_id, dup)
            if not qos:
                try:
                    await self._send(link, packet)
                    return
                except Exception as exc:
                    self._lost(link, "publish: %s" % _describe(exc))
                    continue
            entry = [asyncio.Event(), None, link]
            self._pending[packet_id] = entry
            try:
                await self._send(link, packet)
                await entry[0].wait()
            except Exception as exc:
                self._lost(link, "publish: %s" % _describe(exc))
            finally:
                if self._pending.get(packet_id) is entry:
                    del self._pending[packet_id]
            if entry[1]:
                return
            dup = True

    async def subscribe(self, topic_filter, qos=1):
        """Record a subscription (kept across reconnects) and send it now if connected.

        Returns the granted QoS, 0x80 when the broker refused, or None when
        the link was down (it is sent on the next connect).
        """
        for sub in self._subs:
            if sub[0] == topic_filter:
                sub[1] = qos
                break
        else:
            self._subs.append([topic_filter, qos])
        link = self._link
        if link is None or link.dead:
            return None
        granted = await self._request(link, subscribe_packet, [(topic_filter, qos)])
        return granted[0] if granted else None

    async def unsubscribe(self, topic_filter):
        self._subs = [sub for sub in self._subs if sub[0] != topic_filter]
        link = self._link
        if link is not None and not link.dead:
            await self._request(link, unsubscribe_packet, [topic_filter])

    @property
    def subscriptions(self):
        return [(sub[0], sub[1]) for sub in self._subs]

    async def disconnect(self):
        """Clean DISCONNECT (the broker drops the will) and stop run()."""
        self._closed = True
        self._clean_stop = True
        link = self._link
        if link is not None and not link.dead:
            try:
                await asyncio.wait_for(self._send(link, DISCONNECT_PACKET), 2)
            except Exception:
                pass
            self._lost(link, None)
        self._wake.set()
        self._release_waiters()
        if self._running:
            try:
                await asyncio.wait_for(self._stopped.wait(), 5)
            except Exception:
                pass

    def abort(self, stop=False):
        """Drop the connection abruptly, without DISCONNECT: the broker sends the will.

        The client reconnects as after any link loss unless `stop` is true
        (a device losing power). For tests and for a watchdog.
        """
        link = self._link
        if link is not None:
            self._lost(link, "aborted")
        if stop:
            self._closed = True
            self._clean_stop = False
            self._wake.set()
            self._release_waiters()

    # --------------------------------------------------------------- the link

    async def _open(self):
        reader, writer = await open_connection(self.host, self.port)
        link = _Link(reader, writer)
        self._opening = link
        will = self.will() if callable(self.will) else self.will
        await self._send(link, connect_packet(self.client_id, self.keepalive, True, will,
                                              self.username, self.password))
        first, body = await self._read_packet(reader)
        if first & 0xF0 != CONNACK or len(body) < 2:
            raise MQTTError("expected CONNACK, got packet 0x%02x" % first)
        if body[1]:
            raise MQTTError("broker refused: %s" % CONNACK_ERRORS.get(body[1], "code %d" % body[1]))
        self._opening = None
        return link

    async def _serve(self, link):
        if self._closed:  # disconnect() or abort(stop=True) came while connecting
            if self._clean_stop:
                try:
                    await self._send(link, DISCONNECT_PACKET)
                except Exception:
                    pass
            await self._close_socket(link)
            return
        self._link = link
        self.connects += 1
        self.reconnects = self.connects - 1
        self._log("connected to %s:%s" % (self.host, self.port))
        tasks = [asyncio.create_task(self._read_loop(link))]
        if self.keepalive:
            tasks.append(asyncio.create_task(self._ping_loop(link)))
        link.setup_task = asyncio.create_task(self._setup(link))
        tasks.append(link.setup_task)
        link.tasks = tasks
        try:
            await link.dead_event.wait()
        finally:
            # Also reached when run() itself is cancelled: then the socket
            # is closed without DISCONNECT, like a power cut.
            self._lost(link, None)
            for task in tasks:
                task.cancel()
            await asyncio.sleep(0)
            await self._close_socket(link)
            if self._link is link:
                self._link = None

    async def _setup(self, link):
        if self._subs:
            granted = await self._request(link, subscribe_packet, [(s[0], s[1]) for s in self._subs])
            if granted:
                for i in range(len(granted)):
                    if granted[i] == 0x80 and i < len(self._subs):
                        self._log("subscription refused: %s" % self._subs[i][0])
        if self.on_connect is not None:
            try:
                await self.on_connect()
            except Exception as exc:
                # A bug in the application's hook must not take the link down.
                self._log("on_connect failed: %s" % _describe(exc))
        if not link.dead:
            self.up = True
            self._up_event.set()

    async def _read_loop(self, link):
        try:
            while True:
                first, body = await self._read_packet(link.reader)
                self.progress_ms = clock.ticks_ms()
                if body is not None:
                    await self._handle(link, first, body)
        except Exception as exc:
            self._lost(link, "read: %s" % _describe(exc))

    async def _ping_loop(self, link):
        period = self.keepalive / 2
        while not link.dead:
            await asyncio.sleep(period)
            if link.ping_outstanding:
                self._lost(link, "no PINGRESP within %s s" % period)
                return
            link.ping_outstanding = True
            try:
                # Bounded: on a half-open connection whose send buffer is full,
                # drain() (ours or a publish holding the lock) never returns.
                await asyncio.wait_for(self._send(link, PINGREQ_PACKET), period)
            except Exception as exc:
                self._lost(link, "ping: %s" % _describe(exc))
                return

    async def _read_packet(self, reader):
        """Return (first byte, body); body is None when the packet was too big and skipped."""
        first = (await reader.readexactly(1))[0]
        length = 0
        shift = 0
        for _ in range(4):
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        else:
            raise MQTTError("remaining length longer than 4 bytes")
        if length > self.max_packet:
            while length:
                chunk = await reader.readexactly(min(length, 256))
                length -= len(chunk)
            self._log("dropped a packet bigger than %d bytes" % self.max_packet)
            return first, None
        body = await reader.readexactly(length) if length else b""
        return first, body

    async def _handle(self, link, first, body):
        kind = first & 0xF0
        if kind == PUBLISH:
            topic, packet_id, payload, qos, retain, _ = decode_publish(first, body)
            if qos == 1:
                await self._send(link, ack_packet(PUBACK, packet_id))
            elif qos == 2:
                await self._send(link, ack_packet(PUBREC, packet_id))
            if self.on_message is not None:
                try:
                    self.on_message(topic, payload, retain)
                except Exception as exc:
                    self._log("on_message failed for %s: %s" % (topic, _describe(exc)))
        elif kind == PINGRESP:
            link.ping_outstanding = False
        elif kind in (PUBACK, SUBACK, UNSUBACK, PUBCOMP):
            packet_id = (body[0] << 8) | body[1]
            entry = self._pending.get(packet_id)
            if entry is not None and entry[2] is link:
                entry[1] = bytes(body[2:]) if kind == SUBACK else True
                if kind == UNSUBACK:
                    entry[1] = b"\x00"
                entry[0].set()
        elif kind == PUBREL:
            packet_id = (body[0] << 8) | body[1]
            await self._send(link, ack_packet(PUBCOMP, packet_id))

    async def _request(self, link, build, items):
        """Send SUBSCRIBE/UNSUBSCRIBE and wait for its ack; None if the link died first."""
        packet_id = self._new_packet_id()
        entry = [asyncio.Event(), None, link]
        self._pending[packet_id] = entry
        try:
            await self._send(link, build(packet_id, items))
            await entry[0].wait()
        except Exception as exc:
            self._lost(link, "subscribe: %s" % _describe(exc))
        finally:
            if self._pending.get(packet_id) is entry:
                del self._pending[packet_id]
        return entry[1]

    async def _send(self, link, data):
        if link.dead:
            raise MQTTError("link is down")
        async with link.lock:
            link.writer.write(data)
            await link.writer.drain()

    async def _usable_link(self, epoch):
        while True:
            if self._epoch != epoch:
                raise MQTTError("client was closed while this waited")
            link = self._link
            if link is not None and not link.dead:
                if self.up:
                    return link
                if link.setup_task is not None and asyncio.current_task() is link.setup_task:
                    return link
            await self._up_event.wait()

    def _release_waiters(self):
        """Make every publish waiting for the link raise; later ones wait for the next run()."""
        self._epoch += 1
        released = self._up_event
        self._up_event = asyncio.Event()
        released.set()

    def _lost(self, link, reason):
        if link.dead:
            return
        link.dead = True
        if reason is not None:
            self.last_error = reason
            self._log("link lost: %s" % reason)
        if self._link is link:
            self.up = False
            self._up_event.clear()
        for packet_id in list(self._pending):
            entry = self._pending[packet_id]
            if entry[2] is link:
                entry[0].set()
        link.dead_event.set()

    async def _close_socket(self, link):
        try:
            link.writer.close()
            await asyncio.wait_for(link.writer.wait_closed(), 2)
        except Exception:
            pass

    async def _pause(self, seconds):
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def _backoff_s(self, attempt):
        base = self.backoff_min_s
        for _ in range(attempt - 1):
            base *= 2
            if base >= self.backoff_max_s:
                base = self.backoff_max_s
                break
        # Jitter in [base/2, base): many devices rebooting together spread out.
        return base / 2 + base / 2 * random.getrandbits(16) / 65536

    def _new_packet_id(self):
        while True:
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._pending:
                return self._next_id

    def _log(self, text):
        if self.log is not None:
            self.log("mqtt %s: %s" % (self.client_id, text))
