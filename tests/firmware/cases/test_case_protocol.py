"""protocol/: topics, messages and signatures, the same on CPython and MicroPython."""

import binascii

from case_support import CENTER, DEVICE, KEY, OTHER_DEVICE, raises

from protocol import CONTRACT_VERSION, identity, messages, signing, topics
from protocol.errors import ProtocolError

# The examples of docs/protocol.md (signed with key 000102...1f for dev-a4cf12ab34cd).
DOC_DEVICE = "dev-a4cf12ab34cd"
DOC_DESIRED = {"version": 7, "config": {"brightness": 60, "idle_text": "欢迎光临"}, "issued_by": "county-admin",
               "v": 1, "sig": "a88f718b74fa8cc9309dd09669ef46ec3cc29683e7326964d55917cd13684018"}
DOC_COMMAND = {"command_id": "c-445202101001-0009", "command": "identify", "args": {"seconds": 10},
               "issued_by": "county-admin", "v": 1,
               "sig": "4b5b60e6ea04ac9db4f698e968c8380322fd2d74b1887f1bc6662b3dae3b9473"}


def test_topics_build_and_parse_round_trip():
    topic = topics.build(topics.RATING_SUBMITTED, center=CENTER, device=DEVICE)
    assert topics.parse(topic) == (topics.RATING_SUBMITTED, {"center": CENTER, "device": DEVICE})
    window_topic = topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=3)
    assert topics.parse(window_topic) == (topics.WINDOW_DISPLAY, {"center": CENTER, "window": 3})
    desired = topics.build(topics.DEVICE_CONFIG_DESIRED, center=CENTER, device=DEVICE)
    assert topics.parse(desired)[0] == topics.DEVICE_CONFIG_DESIRED
    assert topics.subscription(topics.DEVICE_COMMAND, center=CENTER).split("/")[3] == "+"


def test_topics_refuse_what_is_not_the_contract():
    good = topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=3)
    raises(ProtocolError, topics.parse, good.replace("/3/", "/03/"))
    raises(ProtocolError, topics.parse, good.replace(CENTER, "4452"))
    raises(ProtocolError, topics.parse, "elsewhere/x")
    raises(ProtocolError, topics.build, topics.WINDOW_DISPLAY, center=CENTER)


def test_device_ids_come_from_the_mac():
    assert identity.device_id_from_mac("02:AA:BB:CC:DD:03") == DEVICE
    assert identity.device_id_from_mac(bytes([2, 0xAA, 0xBB, 0xCC, 0xDD, 3])) == DEVICE


def test_messages_make_encode_decode_keep_chinese():
    payload = messages.make("window_display", window=3, state=messages.DISPLAY_SERVING, ticket="A001",
                            text="请A001号到3号窗口", call_seq=1)
    assert payload["v"] == CONTRACT_VERSION
    raw = messages.encode("window_display", payload)
    assert "请A001号".encode() in raw  # UTF-8, not \\u escapes
    assert messages.decode("window_display", raw) == payload


def test_messages_refuse_bad_payloads():
    raises(ProtocolError, messages.decode, "window_display", b"not json")
    raises(ProtocolError, messages.decode, "window_display", b'{"v": 1, "window": 3, "state": "dancing"}')
    raises(ProtocolError, messages.decode, "rating_submitted", b"\xff\xfe")
    bad_score = {"v": 1, "rating_id": "r", "request_id": "q", "ticket": "A1", "window": 3, "score": 6}
    raises(ProtocolError, messages.validate, "rating_submitted", bad_score)
    raises(ProtocolError, messages.validate, "health", {"v": 1, "session": True, "uptime_s": 1})


def test_validate_config_per_role():
    assert messages.validate_config(messages.ROLE_RATING_PAD, {"rating_timeout_s": 45}) == {"rating_timeout_s": 45}
    raises(ProtocolError, messages.validate_config, messages.ROLE_RATING_PAD, {"idle_text": "x"})
    raises(ProtocolError, messages.validate_config, messages.ROLE_QUEUE_DISPLAY, {"brightness": 101})
    raises(ProtocolError, messages.validate_config, messages.ROLE_QUEUE_DISPLAY, [1])


def test_hmac_sha256_rfc4231_vectors():
    vectors = (
        (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (b"Jefe", b"what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    )
    for key, message, expected in vectors:
        assert binascii.hexlify(signing.hmac_sha256(key, message)).decode() == expected


def test_canonical_json_is_the_same_on_every_runtime():
    text = signing.canonical({"b": [1, "请A", True, None], "a": {"z": 1, "y": 'q"\\\n'}})
    assert text == '{"a":{"y":"q\\"\\\\\\u000a","z":1},"b":[1,"请A",true,null]}'
    raises(ProtocolError, signing.canonical, {"x": 0.5})


def test_the_documented_examples_verify():
    assert signing.verify(KEY, DOC_DEVICE, DOC_DESIRED)
    assert signing.verify(KEY, DOC_DEVICE, DOC_COMMAND)
    assert not signing.verify(KEY, "dev-a4cf12ab34ce", DOC_DESIRED)


def test_signatures_bind_device_key_and_content():
    payload = signing.make_signed("desired_config", KEY, DEVICE, version=3, config={"brightness": 60})
    assert signing.verify(KEY, DEVICE, payload)
    assert not signing.verify(KEY, OTHER_DEVICE, payload)
    assert not signing.verify(bytes(32), DEVICE, payload)
    tampered = dict(payload)
    tampered["config"] = {"brightness": 100}
    assert not signing.verify(KEY, DEVICE, tampered)
    unsigned = dict(payload)
    del unsigned["sig"]
    assert not signing.verify(KEY, DEVICE, unsigned)
    assert signing.key_from_hex("00" * 16) == bytes(16)
    raises(ProtocolError, signing.key_from_hex, "00" * 8)
