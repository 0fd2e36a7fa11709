"""Signatures on desired configuration and commands, and the per-role config schemas."""

import hashlib
import hmac

import pytest

from protocol import messages, signing
from protocol.errors import ProtocolError

KEY = bytes(range(32))
DEVICE = "dev-a4cf12ab34cd"
OTHER = "dev-a4cf12ab34ce"


@pytest.mark.parametrize("key, message", [(b"key", b"The quick brown fox jumps over the lazy dog"),
                                          (b"k" * 100, b"longer key than a block"), (b"", b"")])
def test_hmac_matches_the_standard_library(key, message):
    assert signing.hmac_sha256(key, message) == hmac.new(key, message, hashlib.sha256).digest()


def test_canonical_json_sorts_keys_keeps_utf8_and_refuses_floats():
    assert signing.canonical({"b": [1, "请A", True, None], "a": {"z": 1, "y": 'q"\\\n'}}) == \
        '{"a":{"y":"q\\"\\\\\\u000a","z":1},"b":[1,"请A",true,null]}'
    with pytest.raises(ProtocolError, match="floats"):
        signing.canonical({"x": 0.5})


def test_a_signed_config_verifies_only_for_its_device_and_content():
    payload = signing.make_signed("desired_config", KEY, DEVICE, version=3, config={"brightness": 60})
    assert signing.verify(KEY, DEVICE, payload)
    assert not signing.verify(KEY, OTHER, payload)  # replayed to another device
    assert not signing.verify(bytes(32), DEVICE, payload)  # another key
    tampered = dict(payload, config={"brightness": 100})
    assert not signing.verify(KEY, DEVICE, tampered)
    assert not signing.verify(KEY, DEVICE, dict(payload, sig=payload["sig"][:-1]))
    unsigned = {k: v for k, v in payload.items() if k != "sig"}
    assert not signing.verify(KEY, DEVICE, unsigned)


def test_signature_does_not_depend_on_key_order():
    a = {"v": 1, "version": 1, "config": {"a": 1, "b": "二"}}
    b = {"config": {"b": "二", "a": 1}, "version": 1, "v": 1}
    assert signing.signature(KEY, DEVICE, a) == signing.signature(KEY, DEVICE, b)


def test_commands_are_signed_too():
    command = signing.make_signed("command", KEY, DEVICE, command_id="c1", command="reboot")
    assert signing.verify(KEY, DEVICE, command)
    with pytest.raises(ProtocolError, match="command"):
        signing.make_signed("command", KEY, DEVICE, command_id="c2", command="format_flash")


def test_key_from_hex():
    assert signing.key_from_hex("00" * 16) == bytes(16)
    with pytest.raises(ProtocolError):
        signing.key_from_hex("zz")
    with pytest.raises(ProtocolError, match="16 bytes"):
        signing.key_from_hex("00" * 8)


def test_config_schemas_per_role():
    assert messages.validate_config("queue_display", {"brightness": 80, "idle_text": "欢迎光临"})
    with pytest.raises(ProtocolError, match="unknown key 'prompt_text'"):
        messages.validate_config("queue_display", {"prompt_text": "x"})
    with pytest.raises(ProtocolError, match="<= 100"):
        messages.validate_config("rating_pad", {"brightness": 101})
    with pytest.raises(ProtocolError, match="no configuration schema"):
        messages.validate_config("edge_agent", {})


def test_what_the_fleet_tells_an_edge_is_signed_for_its_center():
    center, other = "445202101001", "445202102003"
    ack = signing.make_signed("event_ack", KEY, center, event_ids=["445202101001-20260105-0041"])
    assert signing.verify_for_edge(KEY, center, ack)
    assert not signing.verify_for_edge(KEY, other, ack)  # replayed to another center's edge
    assert not signing.verify_for_edge(bytes(32), center, ack)
    assert not signing.verify_for_edge(KEY, center, dict(ack, event_ids=["445202101001-20260105-0042"]))
    with pytest.raises(ProtocolError, match="missing field 'sig'"):
        messages.validate("event_ack", {"v": 1, "event_ids": []})
    accounts = signing.make_signed("broker_accounts", KEY, center, version=2, passwd="", acl="", issued_at=1,
                                   devices=[])
    assert signing.verify_for_edge(KEY, center, accounts)
    assert not signing.verify_for_edge(KEY, center, dict(accounts, version=999999))
