"""firmware.lib.mqtt: our MQTT 3.1.1 client, against real Mosquitto and a scripted fake broker."""

from __future__ import annotations

import asyncio

import pytest
from fw_helpers import FAST, ConnectAttempts, FakeBroker, Recorder, run, until

from firmware.lib import mqtt


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2097151, b"\xff\xff\x7f"),
        (2097152, b"\x80\x80\x80\x01"),
        (268435455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_round_trips_up_to_four_bytes(length: int, encoded: bytes) -> None:
    assert mqtt.encode_remaining_length(length) == encoded
    assert mqtt.decode_remaining_length(encoded) == (length, len(encoded))


def test_remaining_length_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        mqtt.encode_remaining_length(268435456)
    with pytest.raises(mqtt.MQTTError):
        mqtt.decode_remaining_length(b"\xff\xff\xff\xff\x01")


def test_connect_packet_carries_will_and_credentials() -> None:
    packet = mqtt.connect_packet("dev-1", 30, True, ("w/t", b"gone", 1, True), "user", "pw")
    assert packet[0] == mqtt.CONNECT
    length, used = mqtt.decode_remaining_length(packet, 1)
    body = packet[1 + used:]
    assert len(body) == length
    assert body[:7] == b"\x00\x04MQTT\x04"
    flags = body[7]
    assert flags == 0x80 | 0x40 | 0x20 | (1 << 3) | 0x04 | 0x02
    assert body[8:10] == b"\x00\x1e"
    assert body[10:] == b"\x00\x05dev-1\x00\x03w/t\x00\x04gone\x00\x04user\x00\x02pw"


def _client(port: int, **kwargs) -> mqtt.MQTTClient:
    options = {**FAST, "log": None, **kwargs}
    return mqtt.MQTTClient("fw-test-client", "127.0.0.1", port, **options)


@pytest.mark.broker
def test_connect_subscribe_receive_and_qos1_publish(center_broker) -> None:
    async def scenario() -> None:
        got: list[tuple[str, bytes, bool]] = []
        observer = Recorder(center_broker.port, "fw-test/out")
        observer.publish("fw-test/in/retained", b"kept", qos=1, retain=True)
        client = _client(center_broker.port, on_message=lambda t, p, r: got.append((t, p, r)))
        await client.subscribe("fw-test/in/#", 1)
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.up, what="client up")
            assert client.subscriptions == [("fw-test/in/#", 1)]
            await until(lambda: ("fw-test/in/retained", b"kept", True) in got, what="retained message")
            observer.publish("fw-test/in/live", "中文".encode(), qos=1)
            await until(lambda: ("fw-test/in/live", "中文".encode(), False) in got, what="live message")

            await client.publish("fw-test/out", b"hello", qos=1)  # returns once PUBACKed
            await client.publish("fw-test/out", b"x" * 20000, qos=0)  # 3-byte remaining length
            await until(lambda: len(observer.payloads("fw-test/out")) == 2, what="observer gets both")
            assert observer.payloads("fw-test/out") == [b"hello", b"x" * 20000]
            assert client.reconnects == 0
        finally:
            await client.disconnect()
            await task
            observer.close()

    run(scenario())


@pytest.mark.broker
def test_a_failing_on_message_does_not_take_the_link_down(center_broker) -> None:
    async def scenario() -> None:
        got: list[bytes] = []

        def on_message(topic: str, payload: bytes, retained: bool) -> None:
            if payload == b"boom":
                raise RuntimeError("application bug")
            got.append(payload)

        observer = Recorder(center_broker.port)
        client = _client(center_broker.port, on_message=on_message)
        await client.subscribe("fw-test/in", 1)
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.up, what="client up")
            observer.publish("fw-test/in", b"boom")
            observer.publish("fw-test/in", b"fine")
            await until(lambda: got == [b"fine"], what="message after the failing one")
            assert client.reconnects == 0 and client.up
        finally:
            await client.disconnect()
            await task
            observer.close()

    run(scenario())


@pytest.mark.broker
def test_will_is_delivered_when_the_connection_dies_abruptly(center_broker) -> None:
    async def scenario() -> None:
        observer = Recorder(center_broker.port, "fw-test/will")
        client = _client(center_broker.port, will=("fw-test/will", b"offline", 1, True))
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.up, what="client up")
            client.abort()
            await until(lambda: observer.payloads("fw-test/will") == [b"offline"], what="will")
            await until(lambda: client.up and client.reconnects == 1, what="reconnect after abort")
            assert client.last_error == "aborted"
        finally:
            await client.disconnect()
            await task
            observer.close()

    run(scenario())


@pytest.mark.broker
def test_clean_disconnect_sends_no_will(center_broker) -> None:
    async def scenario() -> None:
        client = _client(center_broker.port, will=("fw-test/will", b"offline", 1, True))
        task = asyncio.create_task(client.run())
        await until(lambda: client.up, what="client up")
        await client.disconnect()
        await task
        assert not client.up
        # A retained will would reach a new subscriber before a marker published after its SUBACK.
        observer = Recorder(center_broker.port, "fw-test/will", "fw-test/marker")
        observer.publish("fw-test/marker", b"m")
        await until(lambda: observer.payloads("fw-test/marker"), what="marker")
        assert observer.payloads("fw-test/will") == []
        observer.close()

    run(scenario())


@pytest.mark.broker
def test_reconnects_resubscribes_and_flushes_after_broker_restart(center_broker) -> None:
    async def scenario() -> None:
        got: list[bytes] = []
        connects: list[int] = []

        async def on_connect() -> None:
            connects.append(client.connects)

        client = _client(center_broker.port, on_message=lambda t, p, r: got.append(p), on_connect=on_connect)
        attempts = ConnectAttempts(client)
        await client.subscribe("fw-test/in", 1)
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.up, what="client up")
            await asyncio.to_thread(center_broker.stop)
            await until(lambda: not client.up, what="client sees the broker go")
            # Published while the broker is down: waits, then goes out after the reconnect.
            pending = asyncio.create_task(client.publish("fw-test/out", b"queued", qos=1))
            await attempts.more(2)  # two failed reconnects later, it is still waiting
            assert not pending.done()
            await asyncio.to_thread(center_broker.start)
            observer = Recorder(center_broker.port, "fw-test/out")
            try:
                await until(lambda: client.up, what="client back up")
                await asyncio.wait_for(pending, 10)
                assert client.reconnects == 1
                assert connects == [1, 2]  # on_connect ran after every connect
                observer.publish("fw-test/in", b"after restart")  # needs the re-subscription
                await until(lambda: b"after restart" in got, what="message after resubscribe")
            finally:
                observer.close()
        finally:
            await client.disconnect()
            await task

    run(scenario())


@pytest.mark.broker
def test_broker_not_up_at_start_then_comes_up(center_broker) -> None:
    center_broker.stop()

    async def scenario() -> None:
        client = _client(center_broker.port)
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.last_error and client.last_error.startswith("connect:"),
                        what="a failed connect attempt")
            assert not client.up
            await asyncio.to_thread(center_broker.start)
            await until(lambda: client.up, what="client up once the broker is")
            assert client.reconnects == 0  # the first successful connect is not a reconnect
        finally:
            await client.disconnect()
            await task

    run(scenario())


def test_missing_pingresp_means_a_dead_link() -> None:
    async def scenario() -> None:
        broker = await FakeBroker(pingresp=False).start()
        client = _client(broker.port, keepalive=1)
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: len(broker.connections) >= 2, what="a second connection")
            assert "PINGRESP" in (client.last_error or "")
            assert broker.connections[0].of_kind(mqtt.PINGREQ)
        finally:
            await client.disconnect()
            await task
            await broker.stop()

    run(scenario())


def test_qos1_publish_is_retransmitted_with_dup_after_a_reconnect() -> None:
    async def scenario() -> None:
        broker = await FakeBroker(puback=lambda index: index > 0).start()  # first connection never acks
        client = _client(broker.port)
        task = asyncio.create_task(client.run())
        try:
            sent = asyncio.create_task(client.publish("fw-test/out", b"rating", qos=1))
            await until(lambda: broker.connections and broker.connections[0].of_kind(mqtt.PUBLISH),
                        what="first PUBLISH")
            first = broker.connections[0].of_kind(mqtt.PUBLISH)[0]
            assert not first.dup and first.qos == 1
            broker.connections[0].close()  # the link dies before the PUBACK
            await asyncio.wait_for(sent, 10)
            again = broker.connections[1].of_kind(mqtt.PUBLISH)[0]
            assert again.dup and again.publish_fields() == first.publish_fields()
        finally:
            await client.disconnect()
            await task
            await broker.stop()

    run(scenario())


def test_incoming_qos1_is_acked_and_on_connect_publishes_go_first() -> None:
    async def scenario() -> None:
        broker = await FakeBroker().start()
        got: list[tuple[str, bytes, bool]] = []

        async def on_connect() -> None:
            await client.publish("fw-test/birth", b"online", qos=1, retain=True)

        client = _client(broker.port, on_message=lambda t, p, r: got.append((t, p, r)), on_connect=on_connect)
        queued = asyncio.create_task(client.publish("fw-test/app", b"queued while down", qos=1))
        await asyncio.sleep(0)
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(queued, 10)
            conn = broker.connections[0]
            topics_in_order = [p.publish_fields()[0] for p in conn.of_kind(mqtt.PUBLISH)]
            assert topics_in_order == ["fw-test/birth", "fw-test/app"]
            assert conn.of_kind(mqtt.PUBLISH)[0].first & 0x01  # retain flag
            await conn.send(mqtt.publish_packet("fw-test/in", b"data", qos=1, retain=True, packet_id=77))
            await until(lambda: conn.of_kind(mqtt.PUBACK), what="PUBACK from the client")
            assert conn.of_kind(mqtt.PUBACK)[0].packet_id == 77
            assert got == [("fw-test/in", b"data", True)]
        finally:
            await client.disconnect()
            await task
            await broker.stop()

    run(scenario())


def test_backoff_grows_to_the_maximum_with_jitter() -> None:
    client = mqtt.MQTTClient("x", "127.0.0.1", 1, backoff_min_s=0.5, backoff_max_s=30, log=None)
    for attempt, base in ((1, 0.5), (2, 1), (3, 2), (7, 30), (50, 30)):
        delays = [client._backoff_s(attempt) for _ in range(20)]
        assert all(base / 2 <= d < base for d in delays)


@pytest.mark.broker
def test_run_again_after_disconnect(center_broker) -> None:
    async def scenario() -> None:
        observer = Recorder(center_broker.port, "fw-test/out")
        client = _client(center_broker.port)
        for n in range(2):
            task = asyncio.create_task(client.run())
            await client.publish("fw-test/out", b"run %d" % n, qos=1)  # waits for the connect
            await client.disconnect()
            await task
            assert not client.up
        await until(lambda: len(observer.payloads("fw-test/out")) == 2, what="both publishes")
        observer.close()

    run(scenario())


def test_disconnect_while_retrying_stops_run_and_releases_publishers() -> None:
    from tools.mosquitto import free_port

    async def scenario() -> None:
        client = _client(free_port(), backoff_min_s=3600, backoff_max_s=3600)  # longer than the test's bound
        task = asyncio.create_task(client.run())
        waiting = asyncio.create_task(client.publish("fw-test/out", b"never", qos=1))
        await until(lambda: client.last_error, what="a failed connect")
        await client.disconnect()
        await asyncio.wait_for(task, 15)  # not stuck in the backoff
        with pytest.raises(mqtt.MQTTError):
            await asyncio.wait_for(waiting, 10)

    run(scenario())


def test_disconnect_releases_a_qos1_publish_waiting_for_its_puback() -> None:
    async def scenario() -> None:
        broker = await FakeBroker(puback=lambda index: False).start()
        client = _client(broker.port)
        task = asyncio.create_task(client.run())
        sent = asyncio.create_task(client.publish("fw-test/out", b"unacked", qos=1))
        await until(lambda: broker.connections and broker.connections[0].of_kind(mqtt.PUBLISH), what="PUBLISH")
        await client.disconnect()
        await task
        with pytest.raises(mqtt.MQTTError):
            await asyncio.wait_for(sent, 10)
        assert broker.connections[0].of_kind(mqtt.DISCONNECT)
        await broker.stop()

    run(scenario())


@pytest.mark.broker
def test_half_open_connection_is_detected_by_keepalive_and_recovered(center_broker) -> None:
    """The link to Mosquitto goes silent without a FIN or RST (a proxy of ours stops forwarding)."""
    from fw_helpers import FreezableProxy

    async def scenario() -> None:
        proxy = await FreezableProxy(center_broker.port).start()
        observer = Recorder(center_broker.port, "fw-test/out")
        got: list[bytes] = []
        logged: list[str] = []
        # A short keepalive is the subject here, so a loaded machine may add a reconnect of its own: the
        # test counts none, it asserts what the keepalive must do.
        client = _client(proxy.port, keepalive=1, on_message=lambda t, p, r: got.append(p), log=logged.append)
        await client.subscribe("fw-test/in", 1)
        task = asyncio.create_task(client.run())
        try:
            await until(lambda: client.up, what="client up through the proxy")
            proxy.freeze()
            during = asyncio.create_task(client.publish("fw-test/out", b"sent into the void", qos=1))
            await until(lambda: not client.up, what="keepalive notices the silent link")
            assert any("link lost: no PINGRESP" in line for line in logged)
            assert not during.done()  # not PUBACKed: it waits for the next connection
            reconnects = client.reconnects
            proxy.thaw()
            await until(lambda: client.up and client.reconnects > reconnects, what="reconnect after the freeze")
            await asyncio.wait_for(during, 10)
            await until(lambda: b"sent into the void" in observer.payloads("fw-test/out"), what="retransmitted")
            observer.publish("fw-test/in", b"after")  # re-subscribed on the new connection
            await until(lambda: got == [b"after"], what="message after reconnect")
        finally:
            await client.disconnect()
            await task
            await proxy.stop()
            observer.close()

    run(scenario())

