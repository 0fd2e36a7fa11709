"""Unit tests of protocol/: topics, identities and payloads."""

from __future__ import annotations

import json

import pytest

from protocol import CONTRACT_VERSION, identity, messages, topics
from protocol.errors import ProtocolError

CENTER = "445202101001"
DEVICE = "dev-a4cf12ab34cd"
WINDOW = 3

PARAMS = {"center": CENTER, "device": DEVICE, "window": WINDOW}


def params_of(topic) -> dict:
    return {key: PARAMS[key] for key in PARAMS if "{%s}" % key in topic.pattern}


# --- topics -------------------------------------------------------------------------------------------


def test_registry_is_consistent():
    names = [t.name for t in topics.TOPICS]
    assert len(names) == len(set(names))
    patterns = [t.pattern for t in topics.TOPICS]
    assert len(patterns) == len(set(patterns))
    for t in topics.TOPICS:
        assert t.pattern.startswith(topics.ROOT + "/{center}/")
        assert t.qos in (0, 1, 2)
        assert isinstance(t.retained, bool)
        assert t.payload in messages.SCHEMAS, t.name
        assert t.brokers and set(t.brokers) <= {topics.CENTER_BROKER, topics.COUNTY_BROKER}
        assert topics.topic(t.name) is t


@pytest.mark.parametrize("topic", topics.TOPICS, ids=lambda t: t.name)
def test_build_parse_round_trip(topic):
    params = params_of(topic)
    text = topics.build(topic.name, **params)
    assert "{" not in text and "+" not in text
    assert text.startswith(topics.ROOT + "/" + CENTER + "/")
    assert topics.parse(text) == (topic.name, params)


def test_build_concrete_topics():
    presence = topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=DEVICE)
    assert presence == "sc/445202101001/device/dev-a4cf12ab34cd/presence"
    assert topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=12) == "sc/445202101001/window/12/display"
    assert topics.build(topics.EDGE_PRESENCE, center=CENTER) == "sc/445202101001/edge/presence"
    assert topics.build(topics.TICKET_EVENT, center=CENTER) == "sc/445202101001/event/ticket"


def test_parse_gives_window_as_int():
    name, params = topics.parse("sc/445202101001/window/7/rating_request")
    assert name == topics.RATING_REQUEST
    assert params == {"center": CENTER, "window": 7}
    assert isinstance(params["window"], int)


def test_build_needs_every_parameter():
    with pytest.raises(ProtocolError, match="needs device"):
        topics.build(topics.DEVICE_HEALTH, center=CENTER)
    with pytest.raises(ProtocolError, match="needs center"):
        topics.build(topics.EDGE_PRESENCE)


def test_unknown_topic_name():
    with pytest.raises(ProtocolError, match="unknown topic name"):
        topics.build("device_log", center=CENTER)
    with pytest.raises(ProtocolError):
        topics.topic("nope")


@pytest.mark.parametrize("topic", topics.TOPICS, ids=lambda t: t.name)
def test_subscription_with_no_parameters_is_all_plus(topic):
    expected = "/".join("+" if segment.startswith("{") else segment for segment in topic.segments)
    assert topics.subscription(topic.name) == expected


def test_subscription_filters():
    assert topics.subscription(topics.DEVICE_PRESENCE) == "sc/+/device/+/presence"
    assert topics.subscription(topics.DEVICE_PRESENCE, center=CENTER) == "sc/445202101001/device/+/presence"
    assert topics.subscription(topics.WINDOW_DISPLAY, center=CENTER, window=3) == "sc/445202101001/window/3/display"
    assert topics.subscription(topics.RATING_SUBMITTED, center=CENTER) == "sc/445202101001/device/+/rating"
    assert topics.subscription(topics.RATING_EVENT) == "sc/+/event/rating"


def test_subscription_checks_given_parameters():
    with pytest.raises(ProtocolError, match="center code"):
        topics.subscription(topics.DEVICE_PRESENCE, center="4452")
    with pytest.raises(ProtocolError, match="window"):
        topics.subscription(topics.WINDOW_DISPLAY, center=CENTER, window=0)


def test_shared_subscription():
    assert topics.shared("fleet", "sc/+/event/ticket") == "$share/fleet/sc/+/event/ticket"
    assert topics.shared("fleet", topics.subscription(topics.RATING_EVENT)) == "$share/fleet/sc/+/event/rating"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sc",
        "sc/445202101001",
        "other/445202101001/edge/presence",
        "sc/445202101001/edge/status",
        "sc/445202101001/device/dev-a4cf12ab34cd/presence/extra",
        "sc/445202101001/device/dev-a4cf12ab34cd",
        "/sc/445202101001/edge/presence",
        "sc/445202101001/edge/presence/",
        "$share/fleet/sc/445202101001/edge/presence",
        "$SYS/broker/uptime",
        "sc/445202101001/window/3/unknown",
    ],
)
def test_parse_rejects_foreign_topics(text):
    with pytest.raises(ProtocolError, match="not part of the contract"):
        topics.parse(text)


def test_parse_rejects_non_text():
    with pytest.raises(ProtocolError):
        topics.parse(b"sc/445202101001/edge/presence")


FULLWIDTH_CODE = "４４５２０２１０１００１"


@pytest.mark.parametrize("center", ["44520210100", "4452021010011", "44520210100a", "+", "#", "", FULLWIDTH_CODE])
def test_bad_center_codes(center):
    with pytest.raises(ProtocolError, match="center code must be 12 digits"):
        topics.parse("sc/%s/edge/presence" % center)
    with pytest.raises(ProtocolError, match="center code"):
        topics.build(topics.EDGE_PRESENCE, center=center)


def test_center_code_must_be_text():
    with pytest.raises(ProtocolError):
        topics.build(topics.EDGE_PRESENCE, center=445202101001)


@pytest.mark.parametrize(
    "device",
    ["a4cf12ab34cd", "dev-a4cf12ab34c", "dev-a4cf12ab34cdd", "dev-a4cf12ab34cg", "dev-A4CF12AB34CD",
     "dev-a4:cf:12:ab:34", "DEV-a4cf12ab34cd", "+", "#"],
)
def test_bad_device_ids(device):
    with pytest.raises(ProtocolError):
        topics.parse("sc/445202101001/device/%s/presence" % device)
    with pytest.raises(ProtocolError):
        topics.build(topics.DEVICE_PRESENCE, center=CENTER, device=device)
    with pytest.raises(ProtocolError):
        identity.check_device_id(device)


@pytest.mark.parametrize("window", ["0", "1000", "-1", "x", "03", "+3", " 3", "3_0", "3.0", "", "+", "٣"])
def test_bad_windows_in_topics(window):
    with pytest.raises(ProtocolError, match="window"):
        topics.parse("sc/445202101001/window/%s/display" % window)


@pytest.mark.parametrize("window", [0, 1000, -1, "3", 3.0, True, None])
def test_bad_windows_in_build(window):
    with pytest.raises(ProtocolError, match="window"):
        topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=window)


def test_window_bounds():
    assert topics.parse(topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=1))[1]["window"] == 1
    assert topics.parse(topics.build(topics.WINDOW_DISPLAY, center=CENTER, window=999))[1]["window"] == 999


# --- identity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mac",
    ["A4:CF:12:AB:34:CD", "a4-cf-12-ab-34-cd", "a4cf12ab34cd", "A4CF.12AB.34CD", b"\xa4\xcf\x12\xab\x34\xcd",
     bytearray(b"\xa4\xcf\x12\xab\x34\xcd")],
)
def test_mac_normalisation(mac):
    assert identity.normalise_mac(mac) == "a4cf12ab34cd"
    assert identity.device_id_from_mac(mac) == DEVICE
    assert identity.check_device_id(identity.device_id_from_mac(mac)) == DEVICE


@pytest.mark.parametrize(
    "mac", ["A4:CF:12:AB:34", "A4:CF:12:AB:34:CD:EF", "G4:CF:12:AB:34:CD", "", b"\xa4\xcf", 0xA4CF12AB34CD, None]
)
def test_bad_macs(mac):
    with pytest.raises(ProtocolError, match="MAC"):
        identity.normalise_mac(mac)


def test_mac_bytes_keep_leading_zeros():
    assert identity.device_id_from_mac(b"\x00\x01\x02\x0a\x0b\x0c") == "dev-0001020a0b0c"


def test_division_code_parts():
    assert identity.county_code(CENTER) == "445202"
    assert identity.town_code(CENTER) == "445202101"
    with pytest.raises(ProtocolError):
        identity.county_code("445202")


def test_check_window():
    assert identity.check_window(1) == 1
    assert identity.check_window(identity.MAX_WINDOW) == identity.MAX_WINDOW
    for bad in (0, identity.MAX_WINDOW + 1, True, "1", 1.0):
        with pytest.raises(ProtocolError):
            identity.check_window(bad)


# --- messages -----------------------------------------------------------------------------------------

VALID = {
    "presence": {"v": 1, "state": "online", "session": 3, "role": "rating_pad", "board": "esp32", "fw": "1.0.0",
                 "contract": 1, "window": 3},
    "health": {"v": 1, "session": 3, "uptime_s": 12.5, "free_heap": 50000, "rssi": -70, "reconnects": 0},
    "window_display": {"v": 1, "window": 3, "state": "serving", "ticket": "A001", "text": "请A001号到3号窗口",
                       "call_seq": 1},
    "rating_request": {"v": 1, "request_id": "rq-1", "window": 3, "state": "open", "ticket": "A001",
                       "staff_name": "李娜", "timeout_s": 60},
    "rating_submitted": {"v": 1, "rating_id": "r-1", "request_id": "rq-1", "ticket": "A001", "window": 3,
                         "score": 4},
    "ticket_event": {"v": 1, "event_id": "e-1", "kind": "issued", "ticket": "A001", "service": "shebao",
                     "service_name": "社保业务", "ts": 1767576000},
    "rating_event": {"v": 1, "event_id": "e-2", "rating_id": "r-1", "ticket": "A001", "service": "shebao",
                     "window": 3, "score": 1, "ts": 1767576000.25},
    "attendance_event": {"v": 1, "event_id": "e-3", "kind": "sign_out", "window": 3, "staff_no": "1003",
                         "staff_name": "王芳", "reason": "day_end", "ts": 1767604200},
    "callback_phone": {"v": 1, "event_id": "e-4", "rating_id": "r-1", "ticket": "A001", "window": 3,
                       "phone": "13800138000", "ts": 1767604200},
    "desired_config": {"v": 1, "version": 2, "config": {"brightness": 40}, "sig": "00" * 32},
    "reported_config": {"v": 1, "version": 2, "status": "applied", "in_force": 2},
    "center_config": {"v": 1, "version": 3, "issued_at": 1767604200, "profile": {"name": "x"},
                      "items": [{"prefix": "A", "name": "a"}],
                      "windows": [{"number": 1, "kind": "general", "services": ["A"]}],
                      "roster": [{"staff_no": "1001", "name": "n", "windows": [1]}], "sig": "00" * 32},
    "center_config_reported": {"v": 1, "version": 3, "status": "rejected", "in_force": 2, "error": "why"},
    "command": {"v": 1, "command_id": "c-1", "command": "identify", "args": {"seconds": 5}, "sig": "00" * 32},
    "command_ack": {"v": 1, "command_id": "c-1", "status": "done"},
    "firmware_bundle": {"v": 1, "version": "0.2.0", "manifest_sha256": "ab" * 32, "manifest": {"format": 1},
                        "data": "eJwDAAAAAAE=", "issued_at": 1767604200, "sig": "00" * 32},
    "firmware_desired": {"v": 1, "version": "0.2.0", "manifest_sha256": "ab" * 32, "issued_at": 1767604200,
                         "sig": "00" * 32},
    "firmware_status": {"v": 1, "state": "failed", "running": "0.1.0", "failed": "0.2.0", "error": "crashed"},
    "firmware_fetch": {"v": 1, "manifest_sha256": "ab" * 32, "path": "", "offset": 0, "length": 4096},
    "firmware_chunk": {"v": 1, "manifest_sha256": "ab" * 32, "path": "", "offset": 0, "size": 3, "data": "YWJj"},
    "rating_ack": {"v": 1, "rating_id": "dev-a4cf12ab34ce-42-17", "reason": "attitude", "status": "stored"},
    "event_ack": {"v": 1, "event_ids": ["e-1", "e-2"], "sig": "00" * 32},
    "edge_health": {"v": 1, "ready": False, "reasons": ["打印机缺纸"],
                    "components": {"printer": {"ok": False, "state": "paper_out"}}, "ts": 1767576000},
    "broker_accounts": {"v": 1, "version": 3, "passwd": "dev-a4cf12ab34cd:$7$101$salt$hash\n",
                        "acl": "user dev-a4cf12ab34cd\n", "issued_at": 1767576000,
                        "devices": [["dev-a4cf12ab34cd", "rating_pad", 3]], "sig": "00" * 32},
}


def test_every_kind_has_a_valid_sample():
    assert set(VALID) == set(messages.SCHEMAS)


def test_broker_accounts_files_have_a_size_limit():
    too_long = dict(VALID["broker_accounts"], acl="#" * (messages.BROKER_FILE_MAX_CHARS + 1))
    with pytest.raises(ProtocolError, match="'acl' is longer than"):
        messages.validate("broker_accounts", too_long)


@pytest.mark.parametrize("devices, why", [
    ([["dev-a4cf12ab34cd", "rating_pad"]], "must be \\[device id, role, window\\]"),
    (["dev-a4cf12ab34cd"], "must be \\[device id, role, window\\]"),
    ([["dev-A4CF12AB34CD", "rating_pad", 3]], "lower-case hex"),
    ([["dev-a4cf12ab34cd", "edge_agent", 3]], "role must be one of"),
    ([["dev-a4cf12ab34cd", "rating_pad", 0]], "window must be an integer"),
    ([["dev-a4cf12ab34cd", "rating_pad", 3], ["dev-a4cf12ab34cd", "queue_display", 3]], "listed twice"),
])
def test_broker_accounts_lists_each_registered_device_once_with_its_role_and_window(devices, why):
    with pytest.raises(ProtocolError, match=why):
        messages.validate("broker_accounts", dict(VALID["broker_accounts"], devices=devices))
    assert messages.validate("broker_accounts", dict(VALID["broker_accounts"], devices=[]))["devices"] == []


def test_every_topic_payload_kind_is_declared():
    assert {t.payload for t in topics.TOPICS} <= set(messages.SCHEMAS)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_validate_each_kind(kind):
    payload = dict(VALID[kind])
    assert messages.validate(kind, payload) is payload


@pytest.mark.parametrize("kind", sorted(VALID))
def test_missing_required_field_is_named(kind):
    for spec in messages.SCHEMAS[kind]:
        name, required = spec[0], spec[2]
        if not required:
            continue
        payload = dict(VALID[kind])
        payload.pop(name, None)
        with pytest.raises(ProtocolError, match="missing field '%s'" % name):
            messages.validate(kind, payload)
        payload[name] = None  # null counts as missing
        with pytest.raises(ProtocolError, match="missing field '%s'" % name):
            messages.validate(kind, payload)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_optional_fields_may_be_absent(kind):
    payload = {k: v for k, v in VALID[kind].items() if k not in ("board", "fw", "contract")}
    for spec in messages.SCHEMAS[kind]:
        if not spec[2]:
            payload.pop(spec[0], None)
    if kind == "presence":
        payload["state"] = messages.OFFLINE  # a birth needs its optional-by-schema fields
    messages.validate(kind, payload)


WRONG_TYPE = {messages.STR: 5, messages.INT: "5", messages.NUM: "5", messages.OBJ: [1], messages.BOOL: 1,
              messages.ARR: {"a": 1}}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_ill_typed_fields_are_named(kind):
    for spec in messages.SCHEMAS[kind]:
        name, ftype = spec[0], spec[1]
        wrong = {messages.OBJ: (WRONG_TYPE[ftype], [1], "text"), messages.ARR: (WRONG_TYPE[ftype], "text", 3)}.get(
            ftype, (WRONG_TYPE[ftype], [1], {"a": 1}))
        for bad in wrong:
            payload = dict(VALID[kind], **{name: bad})
            with pytest.raises(ProtocolError, match="field '%s' must be %s" % (name, ftype)):
                messages.validate(kind, payload)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_bool_is_not_a_number(kind):
    for spec in messages.SCHEMAS[kind]:
        if spec[1] in (messages.INT, messages.NUM):
            payload = dict(VALID[kind], **{spec[0]: True})
            with pytest.raises(ProtocolError, match="'%s'" % spec[0]):
                messages.validate(kind, payload)


def test_float_is_not_an_int():
    with pytest.raises(ProtocolError, match="'score' must be int"):
        messages.validate("rating_submitted", dict(VALID["rating_submitted"], score=4.0))
    # but a number may be either
    messages.validate("health", dict(VALID["health"], uptime_s=12))


@pytest.mark.parametrize("kind", sorted(VALID))
def test_out_of_range_fields_are_named(kind):
    checked = 0
    for spec in messages.SCHEMAS[kind]:
        name, _ftype, _required, choices, low, high = spec
        bad_values = []
        if choices:
            bad_values.append("no-such-" + name)
        if low is not None:
            bad_values.append(low - 1)
        if high is not None:
            bad_values.append(high + 1)
        for bad in bad_values:
            checked += 1
            with pytest.raises(ProtocolError, match="field '%s' must be" % name):
                messages.validate(kind, dict(VALID[kind], **{name: bad}))
    assert checked


def test_range_bounds_are_inclusive():
    for score in (0, 5):
        messages.validate("rating_submitted", dict(VALID["rating_submitted"], score=score))
    for window in (1, 999):
        messages.validate("window_display", dict(VALID["window_display"], window=window))
    with pytest.raises(ProtocolError, match="'score'"):
        messages.validate("rating_submitted", dict(VALID["rating_submitted"], score=6))
    with pytest.raises(ProtocolError, match="'score'"):
        messages.validate("rating_submitted", dict(VALID["rating_submitted"], score=-1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(bad):
    with pytest.raises(ProtocolError, match="'ts'"):
        messages.validate("ticket_event", dict(VALID["ticket_event"], ts=bad))


def test_decode_rejects_nan_that_cpython_json_would_read():
    raw = json.dumps(dict(VALID["health"], uptime_s=float("nan"))).encode()
    assert b"NaN" in raw
    with pytest.raises(ProtocolError, match="uptime_s"):
        messages.decode("health", raw)


def test_birth_needs_board_fw_contract_but_will_does_not():
    birth = dict(VALID["presence"])
    for name in ("board", "fw", "contract"):
        incomplete = {k: v for k, v in birth.items() if k != name}
        with pytest.raises(ProtocolError, match="birth needs field '%s'" % name):
            messages.validate("presence", incomplete)
        with pytest.raises(ProtocolError, match="birth needs field '%s'" % name):
            messages.validate("presence", dict(birth, **{name: None}))
    will = {"v": 1, "state": "offline", "session": 3, "role": "rating_pad"}
    assert messages.validate("presence", will) is will


def test_presence_roles():
    for role in messages.ROLES:
        messages.validate("presence", {"v": 1, "state": "offline", "session": 0, "role": role})
    with pytest.raises(ProtocolError, match="'role'"):
        messages.validate("presence", {"v": 1, "state": "offline", "session": 0, "role": "printer"})


def test_unknown_fields_are_kept():
    payload = dict(VALID["health"], battery_mv=3700)
    assert messages.validate("health", payload)["battery_mv"] == 3700


@pytest.mark.parametrize("payload", [[], "x", 1, None, [("v", 1)]])
def test_payload_must_be_an_object(payload):
    with pytest.raises(ProtocolError, match="JSON object"):
        messages.validate("health", payload)


def test_unknown_kind():
    with pytest.raises(ProtocolError, match="unknown message kind"):
        messages.validate("device_log", {"v": 1})


def test_make_adds_the_contract_version():
    payload = messages.make("rating_submitted", rating_id="r", request_id="q", ticket="A1", window=2, score=5)
    assert payload["v"] == CONTRACT_VERSION
    with pytest.raises(ProtocolError, match="'score'"):
        messages.make("rating_submitted", rating_id="r", request_id="q", ticket="A1", window=2, score=9)


def test_encode_keeps_chinese_readable_utf8():
    payload = dict(VALID["window_display"])
    raw = messages.encode("window_display", payload)
    assert isinstance(raw, bytes)
    assert "请A001号到3号窗口".encode() in raw
    assert b"\\u" not in raw
    assert messages.decode("window_display", raw) == payload


@pytest.mark.parametrize("kind", sorted(VALID))
def test_encode_decode_round_trip(kind):
    payload = dict(VALID[kind])
    raw = messages.encode(kind, payload)
    assert messages.decode(kind, raw) == payload
    assert messages.decode(kind, raw.decode("utf-8")) == payload
    assert messages.decode(kind, bytearray(raw)) == payload
    assert messages.decode(kind, memoryview(raw)) == payload


def test_encode_adds_a_missing_version():
    payload = {k: v for k, v in VALID["ticket_event"].items() if k != "v"}
    assert json.loads(messages.encode("ticket_event", payload))["v"] == CONTRACT_VERSION


def test_encode_refuses_invalid_payloads():
    with pytest.raises(ProtocolError, match="'kind'"):
        messages.encode("ticket_event", dict(VALID["ticket_event"], kind="lost"))


@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b"{'v': 1}", "{\"v\": 1", b"\xef\xbb"])
def test_decode_non_json(raw):
    with pytest.raises(ProtocolError, match="not JSON|not UTF-8"):
        messages.decode("health", raw)


def test_decode_non_utf8():
    raw = '{"v": 1, "window": 3, "state": "serving", "ticket": "A001", "text": "请A001号", "call_seq": 1}'
    with pytest.raises(ProtocolError, match="not UTF-8"):
        messages.decode("window_display", raw.encode("gbk"))


def test_decode_json_that_is_not_an_object():
    with pytest.raises(ProtocolError, match="JSON object"):
        messages.decode("health", b"[1, 2]")


def test_decode_validates():
    with pytest.raises(ProtocolError, match="missing field 'session'"):
        messages.decode("health", b'{"v": 1, "uptime_s": 3}')


def test_rating_labels_cover_every_score():
    low, high = [spec[4:6] for spec in messages.SCHEMAS["rating_submitted"] if spec[0] == "score"][0]
    assert set(messages.RATING_LABELS) == set(range(low, high + 1))
    assert messages.RATING_LABELS[messages.UNRATED] == "未评价"
    assert set(messages.BAD_SCORES) <= set(messages.RATING_LABELS)


# --- reported configuration and command arguments ----------------------------------------------------


def test_a_rejection_report_says_which_version_is_in_force():
    report = messages.make("reported_config", version=8, status=messages.CONFIG_REJECTED, in_force=7,
                           error="signature does not verify")
    assert messages.decode("reported_config", messages.encode("reported_config", report))["in_force"] == 7
    messages.validate("reported_config", {"v": 1, "version": 8, "status": "rejected", "in_force": 0})  # defaults
    messages.validate("reported_config", {"v": 1, "version": 8, "status": "rejected"})  # older firmware
    for bad in (-1, "7", True, 7.5):
        with pytest.raises(ProtocolError, match="in_force"):
            messages.validate("reported_config", {"v": 1, "version": 8, "status": "rejected", "in_force": bad})


def test_every_command_has_its_argument_rules():
    assert set(messages.COMMAND_ARGS) == set(messages.COMMANDS)
    for name, specs in messages.COMMAND_ARGS.items():
        for arg_name, low, high, default in specs:
            assert low <= high and (default is None or low <= default <= high), (name, arg_name)


def test_check_command_args_accepts_completes_and_refuses():
    from tests.firmware.cases import command_arg_samples  # the samples the device and the fleet both judge

    for name, args, checked in command_arg_samples.GOOD:
        assert messages.check_command_args(name, args) == checked
    for name, args, reason in command_arg_samples.BAD:
        with pytest.raises(ProtocolError) as caught:
            messages.check_command_args(name, args)
        assert reason in str(caught.value), (name, args)
    with pytest.raises(ProtocolError, match="must be a JSON object"):
        messages.check_command_args("identify", [5])
    with pytest.raises(ProtocolError, match="unknown command"):
        messages.check_command_args(["identify"], {})


def test_integers_beyond_32_bits_and_nul_characters_are_refused() -> None:
    health = {"session": 3, "uptime_s": 10, "free_heap": 40000}
    base = messages.make("health", **health)
    assert messages.validate("health", {**base, "free_heap": messages.INT_MAX}) is not None
    for bad in ({"free_heap": messages.INT_MAX + 1}, {"rssi": -messages.INT_MAX - 2}):
        with pytest.raises(ProtocolError, match="32-bit"):
            messages.validate("health", {**base, **bad})
    with pytest.raises(ProtocolError, match="NUL"):
        messages.validate("health", {**base, "last_error": "oops\x00"})
