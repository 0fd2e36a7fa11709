"""MQTT 3.1.1 packets: encode and decode, the same on CPython and MicroPython."""

from case_support import raises

from firmware.lib import mqtt

LENGTHS = ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"),
           (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f"))


def _split(packet):
    length, used = mqtt.decode_remaining_length(packet, 1)
    body = packet[1 + used:]
    assert len(body) == length
    return packet[0], body


def test_remaining_length_round_trips_and_refuses_out_of_range():
    for length, encoded in LENGTHS:
        assert mqtt.encode_remaining_length(length) == encoded
        assert mqtt.decode_remaining_length(encoded) == (length, len(encoded))
    raises(ValueError, mqtt.encode_remaining_length, 268435456)
    raises(mqtt.MQTTError, mqtt.decode_remaining_length, b"\xff\xff\xff\xff\x01")
    raises(mqtt.MQTTError, mqtt.decode_remaining_length, b"\x80")


def test_connect_packet_with_will_and_credentials():
    first, body = _split(mqtt.connect_packet("dev-1", 30, True, ("w/t", b"gone", 1, True), "user", "pw"))
    assert first == mqtt.CONNECT
    assert body[:7] == b"\x00\x04MQTT\x04"
    assert body[7] == 0x80 | 0x40 | 0x20 | (1 << 3) | 0x04 | 0x02
    assert body[8:10] == b"\x00\x1e"
    assert body[10:] == b"\x00\x05dev-1\x00\x03w/t\x00\x04gone\x00\x04user\x00\x02pw"


def test_connect_packet_without_will_or_password():
    first, body = _split(mqtt.connect_packet("d", 0, True))
    assert body[7] == 0x02 and body[8:10] == b"\x00\x00" and body[10:] == b"\x00\x01d"


def test_publish_round_trips_through_decode_publish():
    payload = "请A001号".encode() * 40  # > 127 bytes: a 2-byte remaining length
    packet = mqtt.publish_packet("fw/x/中", payload, qos=1, retain=True, packet_id=513, dup=True)
    first, body = _split(packet)
    assert first == mqtt.PUBLISH | 0x02 | 0x01 | 0x08
    assert mqtt.decode_publish(first, body) == ("fw/x/中", 513, payload, 1, True, True)
    first, body = _split(mqtt.publish_packet("t", b"x"))
    assert mqtt.decode_publish(first, body) == ("t", 0, b"x", 0, False, False)


def test_decode_publish_refuses_broken_packets():
    raises(mqtt.MQTTError, mqtt.decode_publish, 0x30, b"\x00")
    raises(mqtt.MQTTError, mqtt.decode_publish, 0x32, b"\x00\x01t\x00")  # QoS 1 without a whole packet id
    raises(mqtt.MQTTError, mqtt.decode_publish, 0x36, b"\x00\x01t\x00\x01")  # QoS 3
    raises(mqtt.MQTTError, mqtt.decode_publish, 0x30, b"\x00\x02\xff\xfex")


def test_subscribe_unsubscribe_and_acks():
    first, body = _split(mqtt.subscribe_packet(7, [("a/#", 1), ("b", 0)]))
    assert first == 0x82 and body == b"\x00\x07\x00\x03a/#\x01\x00\x01b\x00"
    first, body = _split(mqtt.unsubscribe_packet(8, ["a/#"]))
    assert first == 0xA2 and body == b"\x00\x08\x00\x03a/#"
    assert mqtt.ack_packet(mqtt.PUBACK, 258) == b"\x40\x02\x01\x02"
    assert mqtt.PINGREQ_PACKET == b"\xc0\x00" and mqtt.DISCONNECT_PACKET == b"\xe0\x00"


def test_backoff_doubles_to_the_maximum_with_jitter():
    client = mqtt.MQTTClient("x", "127.0.0.1", 1, backoff_min_s=0.5, backoff_max_s=30, log=None)
    for attempt, base in ((1, 0.5), (2, 1), (3, 2), (7, 30), (50, 30)):
        for _ in range(20):
            delay = client._backoff_s(attempt)
            assert base / 2 <= delay < base
