"""HMAC-SHA256 signatures on desired configuration and commands, and on what the fleet tells an edge.

Each device has its own key (written at provisioning; the fleet keeps it to
sign). Each center's edge agent has one too (issued with its credentials,
fleet.registration.service.issue_edge_credentials): the fleet signs the
edge's event_ack and broker_accounts with it, for the center's code
(sign_for_edge), so neither can be forged by whoever can publish or read on
the county broker. MicroPython has no hmac module, so HMAC (RFC 2104) is built on
hashlib.sha256, and the signed bytes are a canonical JSON form written here
by hand: json.dumps differs between runtimes (key order, non-ASCII escapes,
float repr), and a signature must come out the same on both.
"""

import binascii
import hashlib

from protocol.errors import ProtocolError

_BLOCK = 64


def hmac_sha256(key, message):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def _string(text):
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(value):
    """Canonical JSON text: sorted keys, no spaces, UTF-8 kept, no floats."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ProtocolError("signed payloads carry no floats (they print differently on each runtime)")
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        parts = []
        for key in sorted(value):
            if not isinstance(key, str):
                raise ProtocolError("signed payload keys must be text")
            parts.append(_string(key) + ":" + canonical(value[key]))
        return "{" + ",".join(parts) + "}"
    raise ProtocolError("cannot sign a value of type %s" % type(value).__name__)


def _signed_bytes(device_id, payload):
    # The device id is part of what is signed, so a message cannot be replayed to another device.
    unsigned = {}
    for name in payload:
        if name != "sig":
            unsigned[name] = payload[name]
    return (device_id + "\n" + canonical(unsigned)).encode("utf-8")


def signature(key, device_id, payload):
    """Hex HMAC-SHA256 of `payload` (without its "sig") for `device_id`."""
    return binascii.hexlify(hmac_sha256(key, _signed_bytes(device_id, payload))).decode()


def sign(key, device_id, payload):
    """Return `payload` with its "sig" field set."""
    payload["sig"] = signature(key, device_id, payload)
    return payload


def verify(key, device_id, payload):
    """True when payload["sig"] is the signature of this payload for this device."""
    given = payload.get("sig")
    if not isinstance(given, str):
        return False
    expected = signature(key, device_id, payload)
    if len(given) != len(expected):
        return False
    difference = 0
    for a, b in zip(given, expected):  # noqa: B905 - MicroPython's zip has no strict
        difference |= ord(a) ^ ord(b)  # constant time: no early exit that leaks how much matched
    return difference == 0


def sign_for_edge(key, center, payload):
    """`payload` signed with the edge key of `center`: the center's code is what a device id is to a device's
    signature (a 12-digit code is never a device id, so a device's signature never passes for an edge's)."""
    return sign(key, center, payload)


def verify_for_edge(key, center, payload):
    """True when payload["sig"] is the fleet's signature of this payload for the edge of `center`."""
    return verify(key, center, payload)


def key_from_hex(text):
    try:
        key = binascii.unhexlify(text)
    except (ValueError, TypeError):
        raise ProtocolError("device key must be hex")
    if len(key) < 16:
        raise ProtocolError("device key must be at least 16 bytes")
    return key


def make_signed(kind_name, key, device_id, **fields):
    """Build a valid signed payload for one device (desired_config, command) or, with a center's code for
    `device_id`, for one center's edge (event_ack, broker_accounts)."""
    from protocol import CONTRACT_VERSION, messages

    payload = {}
    for name in fields:
        if fields[name] is not None:
            payload[name] = fields[name]
    payload["v"] = CONTRACT_VERSION
    sign(key, device_id, payload)
    return messages.validate(kind_name, payload)
