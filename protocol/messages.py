"""Payloads: JSON objects whose fields are declared here and checked on both ends.

Every payload carries "v", the contract version. Fields not declared are
kept (a newer sender may add some) but never required.
"""

import json

from protocol import CONTRACT_VERSION
from protocol.errors import ProtocolError
from protocol.identity import check_device_id, check_window

ROLE_QUEUE_DISPLAY = "queue_display"
ROLE_RATING_PAD = "rating_pad"
ROLE_EDGE_AGENT = "edge_agent"
DEVICE_ROLES = (ROLE_QUEUE_DISPLAY, ROLE_RATING_PAD)
ROLES = (ROLE_QUEUE_DISPLAY, ROLE_RATING_PAD, ROLE_EDGE_AGENT)

ONLINE = "online"
OFFLINE = "offline"

# 好差评 five levels, 5 best; 0 is a request that timed out unrated (未评价).
UNRATED = 0
RATING_LABELS = {
    5: "非常满意",
    4: "满意",
    3: "基本满意",
    2: "不满意",
    1: "非常不满意",
    0: "未评价",
}
BAD_SCORES = (1, 2)  # 差评: each one is followed up
# Why a 差评 was given: right after 不满意 or 非常不满意 the pad offers these on its five buttons, left to right:
# the published on-site indicators 服务态度, 服务效率, 服务水平, then 一次性告知不到位 and 其他. Codes on the wire,
# labels on the screens and pages.
REASON_ATTITUDE = "attitude"
REASON_EFFICIENCY = "efficiency"
REASON_SKILL = "skill"
REASON_NOT_TOLD_AT_ONCE = "not_told_at_once"
REASON_OTHER = "other"
RATING_REASONS = (REASON_ATTITUDE, REASON_EFFICIENCY, REASON_SKILL, REASON_NOT_TOLD_AT_ONCE, REASON_OTHER)
RATING_REASON_LABELS = {
    REASON_ATTITUDE: "服务态度",
    REASON_EFFICIENCY: "服务效率",
    REASON_SKILL: "服务水平",
    REASON_NOT_TOLD_AT_ONCE: "一次性告知不到位",
    REASON_OTHER: "其他",
}
# How a rating request ended: every served ticket ends with one, so rating coverage (rated / served) is
# honest. rated and timeout come from the pad (score 1-5, or 0 when the resident pressed nothing);
# skipped and pad_offline from the edge (rating_event score 0 with this outcome): staff finished the next
# resident before the pad answered, or the pad said nothing at all past its time-out.
RATING_RATED = "rated"
RATING_TIMEOUT = "timeout"
RATING_SKIPPED = "skipped"
RATING_PAD_OFFLINE = "pad_offline"
RATING_OUTCOMES = (RATING_RATED, RATING_TIMEOUT, RATING_SKIPPED, RATING_PAD_OFFLINE)
# 考勤: staff sign in and out at a window's caller; the edge forwards each as an attendance_event.
SIGNED_IN = "sign_in"
SIGNED_OUT = "sign_out"
ATTENDANCE_KINDS = (SIGNED_IN, SIGNED_OUT)
OUT_BY_STAFF = "signed_out"
OUT_REPLACED = "replaced"
OUT_DAY_END = "day_end"
SIGN_OUT_REASONS = (OUT_BY_STAFF, OUT_REPLACED, OUT_DAY_END)

DISPLAY_IDLE = "idle"
DISPLAY_SERVING = "serving"
DISPLAY_PAUSED = "paused"

REQUEST_OPEN = "open"
REQUEST_CLOSED = "closed"

TICKET_ISSUED = "issued"
TICKET_CALLED = "called"
TICKET_FINISHED = "finished"
TICKET_RECALLED = "recalled"  # 重呼
TICKET_SKIPPED = "skipped"  # 过号: the resident did not come; the ticket goes to the missed list
TICKET_REQUEUED = "requeued"  # a missed resident came back and was put back in the queue
TICKET_TRANSFERRED = "transferred"  # 转移 to another service or window, keeping the issue time
TICKET_KINDS = (TICKET_ISSUED, TICKET_CALLED, TICKET_FINISHED, TICKET_RECALLED, TICKET_SKIPPED, TICKET_REQUEUED,
                TICKET_TRANSFERRED)

# No message of the contract comes near this; anything bigger is dropped unread.
MAX_PAYLOAD_BYTES = 16384
# Except center_config, read by the edge agent alone (never a board): a center's item guides and the roster's
# photos need more room. A board never subscribes to it, so its small buffers never meet it.
CENTER_CONFIG_MAX_BYTES = 1048576
# center_config: what a window is: general intake, a dedicated window, a flexible one (labels live in edge and fleet).
WINDOW_GENERAL = "general"
WINDOW_DEDICATED = "dedicated"
WINDOW_FLEXIBLE = "flexible"
WINDOW_KINDS = (WINDOW_GENERAL, WINDOW_DEDICATED, WINDOW_FLEXIBLE)
# broker_accounts: a sanity limit on each of passwd and acl (characters), so a wrong text is refused
# before it is written to disk. The whole message must still fit MAX_PAYLOAD_BYTES.
BROKER_FILE_MAX_CHARS = 16000
# A boot id (presence and health) is 1 to 16 characters: it is stored beside the session in every watcher.
BOOT_MAX_CHARS = 16

# Every integer field is a 32-bit signed integer (what the fleet's database columns hold, and more than a
# device ever counts); every string is free of NUL characters (PostgreSQL text cannot hold them). A value
# the fleet could not store would otherwise be re-sent by the edge for ever.
INT_MAX = 2147483647

STR = "str"
INT = "int"
NUM = "num"
OBJ = "obj"  # a JSON object, checked further by its own schema (e.g. CONFIG_SCHEMAS)
BOOL = "bool"
ARR = "arr"  # a JSON array

CONFIG_APPLIED = "applied"
CONFIG_REJECTED = "rejected"

COMMAND_REBOOT = "reboot"
COMMAND_IDENTIFY = "identify"
COMMAND_TEST_PATTERN = "test_pattern"
COMMAND_BRIGHTNESS = "brightness"
# A display shows its test pattern; a rating pad waits for each of its buttons to be pressed once and
# acknowledges when all were (done) or when the time runs out (failed, naming the buttons not pressed).
COMMAND_SELF_TEST = "self_test"
COMMANDS = (COMMAND_REBOOT, COMMAND_IDENTIFY, COMMAND_TEST_PATTERN, COMMAND_BRIGHTNESS, COMMAND_SELF_TEST)
# Command ids of commands that provisioning sends itself (its self-test): the fleet did not send them
# and does not track their acknowledgements.
PROVISIONING_COMMAND_PREFIX = "prov-"

# The arguments each command takes: (name, low, high, default) of integer arguments; a default of None
# makes the argument required. The fleet checks a command with check_command_args before signing it and
# the device checks it again before running it: one rule, so the fleet never sends what a device refuses.
COMMAND_DEFAULT_SECONDS = 10
COMMAND_MAX_SECONDS = 300


def _arg(name, low, high, default=None):
    return (name, low, high, default)


_SECONDS_ARG = _arg("seconds", 1, COMMAND_MAX_SECONDS, COMMAND_DEFAULT_SECONDS)
COMMAND_ARGS = {
    COMMAND_REBOOT: (),
    COMMAND_IDENTIFY: (_SECONDS_ARG,),
    COMMAND_TEST_PATTERN: (_SECONDS_ARG,),
    COMMAND_BRIGHTNESS: (_arg("level", 0, 100),),
    COMMAND_SELF_TEST: (_arg("seconds", 1, COMMAND_MAX_SECONDS, 60),),
}

# How long a command may still be run after it was issued (seconds): the fleet gives COMMAND_VALID_S (its
# acknowledgement timeout, fleet.settings.command_timeout_s, is as long: a command the fleet has given up on is
# not run later), and a device refuses a validity above COMMAND_MAX_VALID_S whoever signed it. How a device
# without a wall clock judges this is in docs/protocol.md (device_command) and firmware/lib/commands.py.
COMMAND_VALID_S = 60
COMMAND_MAX_VALID_S = 600

COMMAND_DONE = "done"
COMMAND_REJECTED = "rejected"
COMMAND_FAILED = "failed"

# firmware_status: where a device is with its firmware (protocol/firmware.py, docs/protocol.md).
FW_IDLE = "idle"  # runs what was last desired (or nothing was ever desired)
FW_DOWNLOADING = "downloading"
FW_STAGED = "staged"  # every file verified beside the running ones; the swap happens at the reboot
FW_TRYING = "trying"  # booted the new files; kept only once healthy (birth in time, every loop alive)
FW_CONFIRMED = "confirmed"  # the new files came back healthy and are kept
FW_FAILED = "failed"  # download, verification or the trial boot failed: the previous files run; error says why
FW_REFUSED = "refused"  # the firmware_desired (or the manifest it names) did not verify: nothing was fetched
FW_STATES = (FW_IDLE, FW_DOWNLOADING, FW_STAGED, FW_TRYING, FW_CONFIRMED, FW_FAILED, FW_REFUSED)
# The most a firmware_fetch may ask for in one chunk: its firmware_chunk (base64) stays well inside the
# boards' 16 KB packet limit.
FIRMWARE_CHUNK_MAX_BYTES = 4096
# A firmware_bundle is the one message bigger than MAX_PAYLOAD_BYTES: read by the edge agent alone.
FIRMWARE_BUNDLE_MAX_BYTES = 2097152

# rating_ack: the edge has the rating in its database (also when it had it already: a re-send), or will never
# take it (its request closed, another rating of the ticket first, ...). Either way the pad may forget it.
RATING_STORED = "stored"
RATING_REFUSED = "refused"


def _field(name, kind, required=True, choices=None, low=None, high=None):
    return (name, kind, required, choices, low, high)


_V = _field("v", INT, low=1)
_SESSION = _field("session", INT, low=0)
# The sender's boot id (protocol.presence): random at every start, so a board whose session counter was lost
# is still told apart from its older connections. Absent from older senders' messages.
_BOOT = _field("boot", STR, False)
_WINDOW = _field("window", INT, low=1, high=999)
_WINDOW_OPT = _field("window", INT, False, low=1, high=999)
_TICKET = _field("ticket", STR)
_TS = _field("ts", NUM, low=0)
# A 差评's reason: sent after its score, as the same rating again (docs/protocol.md, rating_submitted).
_REASON = _field("reason", STR, False, choices=RATING_REASONS)

SCHEMAS = {
    "presence": (
        _V,
        _field("state", STR, choices=(ONLINE, OFFLINE)),
        _SESSION,
        _BOOT,
        _field("role", STR, choices=ROLES),
        _field("board", STR, False),
        _field("fw", STR, False),
        _field("mac", STR, False),
        _field("contract", INT, False, low=1),
        _WINDOW_OPT,
        _field("ts", NUM, False, low=0),
    ),
    "health": (
        _V,
        _SESSION,
        _BOOT,
        _field("uptime_s", NUM, low=0),
        _field("free_heap", INT, False, low=0),
        _field("rssi", INT, False),
        _field("reconnects", INT, False, low=0),
        _field("last_error", STR, False),
    ),
    "window_display": (
        _V,
        _WINDOW,
        _field("state", STR, choices=(DISPLAY_IDLE, DISPLAY_SERVING, DISPLAY_PAUSED)),
        _field("ticket", STR),
        _field("text", STR),
        _field("call_seq", INT, low=0),
        # Who serves at the window now, name and staff number, shown with the idle text: absent when nobody is
        # signed in, and from an older edge (a board shows the idle text alone then).
        _field("staff", STR, False),
    ),
    "rating_request": (
        _V,
        _field("request_id", STR),
        _WINDOW,
        _field("state", STR, choices=(REQUEST_OPEN, REQUEST_CLOSED)),
        _TICKET,
        _field("service", STR, False),
        _field("staff_no", STR, False),
        _field("staff_name", STR, False),
        _field("timeout_s", INT, False, low=1),
    ),
    "rating_submitted": (
        _V,
        _field("rating_id", STR),
        _field("request_id", STR),
        _TICKET,
        _WINDOW,
        _field("score", INT, low=0, high=5),
        # Milliseconds from the press (or the timeout) to this send, measured by the pad at every send, so a
        # rating held in flash through an outage is dated when it was made. Absent when the pad cannot know
        # (it rebooted since): the edge dates it on arrival.
        _field("age_ms", INT, False, low=0),
        _REASON,
    ),
    "ticket_event": (
        _V,
        _field("event_id", STR),
        _field("kind", STR, choices=TICKET_KINDS),
        _TICKET,
        _field("service", STR),
        _field("service_name", STR, False),
        _WINDOW_OPT,
        _field("staff_no", STR, False),
        _field("priority", STR, False, choices=("green", "appointment", "requeued")),
        _field("to_service", STR, False),
        _field("to_window", INT, False, low=1, high=999),
        _TS,
    ),
    "attendance_event": (
        _V,
        _field("event_id", STR),
        _field("kind", STR, choices=ATTENDANCE_KINDS),
        _WINDOW,
        _field("staff_no", STR),
        _field("staff_name", STR, False),
        # Why a sign-out happened: the staff member pressed 退出登录, someone else signed in at the window,
        # or the business day ended with them still signed in.
        _field("reason", STR, False, choices=SIGN_OUT_REASONS),
        _TS,
    ),
    "rating_event": (
        _V,
        _field("event_id", STR),
        _field("rating_id", STR),
        _TICKET,
        _field("service", STR),
        _WINDOW,
        _field("staff_no", STR, False),
        _field("score", INT, low=0, high=5),
        # Only on the edge's own score-0 events (skipped, pad_offline); absent on a pad's answer.
        _field("outcome", STR, False, choices=(RATING_SKIPPED, RATING_PAD_OFFLINE)),
        _REASON,
        # The case number and the matter (service item) when the window's business system asked for the rating
        # (edge_agent.business): the province's rating system knows a rating by its case number.
        _field("case_no", STR, False),
        _field("matter", STR, False),
        _TS,
    ),
    # A phone number a resident left at the kiosk for the callback of their bad rating (rating_id names the rating).
    # Personal data: the edge keeps it only until the fleet acknowledges it, the fleet only sealed in that
    # rating's case. Checked by the edge (edge_agent.callback), not here: a refusal here would put the number
    # in a log.
    "callback_phone": (
        _V,
        _field("event_id", STR),
        _field("rating_id", STR),
        _TICKET,
        _WINDOW,
        _field("phone", STR),
        _TS,
    ),

    "edge_health": (
        _V,
        _field("ready", BOOL),
        _field("reasons", ARR),
        _field("components", OBJ),
        _field("windows", OBJ, False),
        _field("staff", OBJ, False),  # staff number -> name (the center's staff directory)
        _field("outbox", INT, False, low=0),
        _field("uptime_s", NUM, False, low=0),
        # The Raspberry Pi itself, for county IT: agent version, data disk, CPU temperature, clock sync, database
        # size (docs/protocol.md, edge_health). Optional: an agent older than the figures sends none.
        _field("host", OBJ, False),
        _TS,
    ),
    # From the fleet to one center's edge, signed with the edge's key for the center's code
    # (protocol.signing.sign_for_edge): anyone who can publish on the county broker could otherwise make the
    # edge forget events the fleet never stored.
    "event_ack": (
        _V,
        _field("event_ids", ARR),
        _field("sig", STR),
    ),
    # Downlink: signed by the fleet with the device's key (protocol.signing).
    "desired_config": (
        _V,
        _field("version", INT, low=1),
        _field("config", OBJ),
        _field("sig", STR),
        _field("issued_by", STR, False),
    ),
    "reported_config": (
        _V,
        _field("version", INT, low=0),
        _field("status", STR, choices=(CONFIG_APPLIED, CONFIG_REJECTED)),
        _field("error", STR, False),
        # The version the device runs, also after a rejection: the report is retained, so without it a
        # rejection would hide the version in force. Absent from reports of older firmware.
        _field("in_force", INT, False, low=0),
    ),
    "command": (
        _V,
        _field("command_id", STR),
        _field("command", STR, choices=COMMANDS),
        _field("args", OBJ, False),
        _field("sig", STR),
        _field("issued_by", STR, False),
        # Freshness (docs/protocol.md, device_command): the boot id of the device the command is for, from its
        # latest birth; the signer's Unix time in whole seconds (signed payloads carry no floats); how long
        # after that it may run. Optional here so the contract version stays; a device refuses a command
        # without them.
        _field("boot", STR, False),
        _field("issued_at", NUM, False, low=0),
        _field("valid_s", INT, False, low=1, high=COMMAND_MAX_VALID_S),
    ),
    "command_ack": (
        _V,
        _field("command_id", STR),
        _field("status", STR, choices=(COMMAND_DONE, COMMAND_REJECTED, COMMAND_FAILED)),
        _field("error", STR, False),
    ),
    # Fleet -> edge: one bundle (protocol/firmware.py), signed with the edge's key for the center's code
    # (signing.sign_for_edge). `data` is base64 of zlib of every file of the manifest, in its order.
    "firmware_bundle": (
        _V,
        _field("version", STR),
        _field("manifest_sha256", STR),
        _field("manifest", OBJ),
        _field("data", STR),
        _field("issued_at", INT, low=0),
        _field("sig", STR),
    ),
    # Fleet -> device (relayed, retained): the bundle the device should run, signed with the device's key. The
    # manifest_sha256 is what makes the bundle's files trusted: the manifest holds every file's sha256.
    "firmware_desired": (
        _V,
        _field("version", STR),
        _field("manifest_sha256", STR),
        _field("issued_at", INT, low=0),  # also tells a retry (a new issued_at) from the same order again
        _field("sig", STR),
        _field("issued_by", STR, False),
    ),
    "firmware_status": (
        _V,
        _field("state", STR, choices=FW_STATES),
        _field("running", STR),
        _field("running_sha256", STR, False),  # absent: the files provisioning put on the board
        _field("target", STR, False),
        _field("target_sha256", STR, False),
        _field("issued_at", INT, False, low=0),  # of the firmware_desired this answers
        _field("staged", STR, False),
        _field("done_bytes", INT, False, low=0),
        _field("total_bytes", INT, False, low=0),
        _field("failed", STR, False),
        _field("failed_sha256", STR, False),
        _field("error", STR, False),
    ),
    # Device <-> edge on the center broker: one chunk of one file of a cached bundle ("" names the manifest).
    "firmware_fetch": (
        _V,
        _field("manifest_sha256", STR),
        _field("path", STR),
        _field("offset", INT, low=0),
        _field("length", INT, low=1, high=FIRMWARE_CHUNK_MAX_BYTES),
    ),
    "firmware_chunk": (
        _V,
        _field("manifest_sha256", STR),
        _field("path", STR),
        _field("offset", INT, low=0),
        _field("size", INT, False, low=0),  # of the whole file
        _field("data", STR, False),  # base64; absent with an error
        _field("error", STR, False),
    ),
    # From the edge to the pad that sent a rating_submitted, once the rating is committed to its database (or
    # refused for good): the pad keeps the rating on flash until then, and sends it again after a time-out. A
    # broker's PUBACK is not enough: the edge may fail to store what the broker handed it (a full disk).
    # rating_id and reason name the message answered (a 差评's reason is the same rating sent again).
    "rating_ack": (
        _V,
        _field("rating_id", STR),
        _REASON,
        _field("status", STR, choices=(RATING_STORED, RATING_REFUSED)),
        _field("error", STR, False),
    ),
    # The center broker's account files, from the fleet to the edge (retained on the county broker).
    # Both texts hold password hashes only; see BROKER_FILE_MAX_CHARS. Signed like event_ack: the retained
    # copy can be read, so a password line in it proves nothing.
    "broker_accounts": (
        _V,
        _field("version", INT, low=1),
        _field("passwd", STR),
        _field("acl", STR),
        _field("issued_at", NUM, low=0),  # whole seconds (signed payloads carry no floats)
        # The devices registered to this center, each [device id, role, window]: the edge serves only these,
        # as what they were registered as (see check_registered_devices).
        _field("devices", ARR),
        _field("sig", STR),
    ),
    # A center's configuration from the county (fleet -> edge, retained), signed with the edge's key for the
    # center's code like broker_accounts. Every section replaces the edge's whole section (see
    # check_center_sections); what is local to the Pi (brokers, peripherals, paths) is never in it.
    "center_config": (
        _V,
        _field("version", INT, low=1),
        _field("issued_at", NUM, low=0),  # whole seconds (signed payloads carry no floats)
        _field("profile", OBJ),
        _field("items", ARR),
        # The queue's services (prefix and name) at this center; every prefix an item uses is one too.
        _field("services", ARR, False),
        _field("windows", ARR),
        _field("roster", ARR),
        _field("sig", STR),
    ),
    # The edge's answer, retained: the version in force, or why a version was rejected (the one in force stays).
    "center_config_reported": (
        _V,
        _field("version", INT, low=0),
        _field("status", STR, choices=(CONFIG_APPLIED, CONFIG_REJECTED)),
        _field("in_force", INT, low=0),
        _field("error", STR, False),
    ),
}

# What a desired configuration may hold, per device role. Every key is
# optional: a device keeps its current value for a key not given.
_BRIGHTNESS = _field("brightness", INT, False, low=0, high=100)
CONFIG_SCHEMAS = {
    ROLE_QUEUE_DISPLAY: (
        _BRIGHTNESS,
        _field("idle_text", STR, False),
        _field("blink_s", INT, False, low=0, high=60),
        _field("health_interval_s", INT, False, low=5, high=3600),
    ),
    ROLE_RATING_PAD: (
        _BRIGHTNESS,
        _field("prompt_text", STR, False),
        _field("thanks_text", STR, False),
        _field("rating_timeout_s", INT, False, low=10, high=600),
        _field("health_interval_s", INT, False, low=5, high=3600),
    ),
}


def validate_config(role, config):
    """Return `config` if every key is known for `role` and in range, else raise ProtocolError."""
    try:
        schema = CONFIG_SCHEMAS[role]
    except KeyError:
        raise ProtocolError("no configuration schema for role %r" % (role,))
    if not isinstance(config, dict):
        raise ProtocolError("config: must be a JSON object")
    known = {}
    for spec in schema:
        known[spec[0]] = True
        _check_field("config", spec, config)
    for name in config:
        if name not in known:
            raise ProtocolError("config: unknown key %r for role %s" % (name, role))
    return config


def check_command_args(name, args):
    """The arguments of command `name`, checked and completed with defaults; raises ProtocolError.

    `args` may be None (no arguments). Arguments the command does not take are left out of the result.
    """
    try:
        specs = COMMAND_ARGS[name]
    except (KeyError, TypeError):
        raise ProtocolError("unknown command %r, known: %s" % (name, ", ".join(COMMANDS)))
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError("args of %s must be a JSON object, got %r" % (name, args))
    checked = {}
    for arg_name, low, high, default in specs:
        value = args.get(arg_name)
        if value is None:
            value = default
        if value is None:
            raise ProtocolError("args.%s is required for %s" % (arg_name, name))
        if isinstance(value, bool) or not isinstance(value, int) or value < low or value > high:
            raise ProtocolError("args.%s must be an integer %d..%d, got %r" % (arg_name, low, high, value))
        checked[arg_name] = value
    return checked


def _check_field(kind_name, spec, payload):
    name, kind, required, choices, low, high = spec
    if name not in payload or payload[name] is None:
        if required:
            raise ProtocolError("%s: missing field %r" % (kind_name, name))
        return
    value = payload[name]
    if kind == STR:
        ok = isinstance(value, str)
    elif kind == INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == OBJ:
        ok = isinstance(value, dict)
    elif kind == BOOL:
        ok = isinstance(value, bool)
    elif kind == ARR:
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ProtocolError("%s: field %r must be %s, got %r" % (kind_name, name, kind, value))
    if kind == NUM and value - value != 0:
        # NaN and Infinity: CPython's json reads them, but they are not JSON.
        raise ProtocolError("%s: field %r must be a finite number, got %r" % (kind_name, name, value))
    if kind in (OBJ, BOOL, ARR):
        return
    if kind == STR and "\x00" in value:
        raise ProtocolError("%s: field %r must not contain a NUL character" % (kind_name, name))
    if kind == INT and (value > INT_MAX or value < -INT_MAX - 1):
        raise ProtocolError("%s: field %r is out of range (a 32-bit integer), got %r" % (kind_name, name, value))
    if choices is not None and value not in choices:
        raise ProtocolError("%s: field %r must be one of %s, got %r" % (kind_name, name, ",".join(choices), value))
    if low is not None and value < low:
        raise ProtocolError("%s: field %r must be >= %s, got %r" % (kind_name, name, low, value))
    if high is not None and value > high:
        raise ProtocolError("%s: field %r must be <= %s, got %r" % (kind_name, name, high, value))


def _check_text_list(where, value):
    if not isinstance(value, list):
        raise ProtocolError("%s: must be an array" % where)
    for entry in value:
        if not isinstance(entry, str):
            raise ProtocolError("%s: must hold strings, got %r" % (where, entry))


def check_center_sections(payload):
    """The windows and roster of a center_config: each window once with a kind and the prefixes it serves,
    each staff number once with a name; raises ProtocolError. Items and profile are checked by the edge."""
    numbers = {}
    for window in payload["windows"]:
        if not isinstance(window, dict):
            raise ProtocolError("center_config: each of 'windows' must be an object")
        number = window.get("number")
        check_window(number)
        if number in numbers:
            raise ProtocolError("center_config: window %d is listed twice" % number)
        numbers[number] = True
        if window.get("kind") not in WINDOW_KINDS:
            raise ProtocolError("center_config: window %d: kind must be one of %s" % (number, ",".join(WINDOW_KINDS)))
        _check_text_list("center_config: window %d: services" % number, window.get("services"))
    staff = {}
    for member in payload["roster"]:
        if not isinstance(member, dict):
            raise ProtocolError("center_config: each of 'roster' must be an object")
        staff_no = member.get("staff_no")
        if not isinstance(staff_no, str) or not staff_no or not isinstance(member.get("name"), str):
            raise ProtocolError("center_config: each roster entry needs 'staff_no' and 'name' as text")
        if staff_no in staff:
            raise ProtocolError("center_config: staff number %s is listed twice" % staff_no)
        staff[staff_no] = True
        for name in ("title", "photo", "pin_hash"):
            if not isinstance(member.get(name, ""), str):
                raise ProtocolError("center_config: staff %s: %r must be text" % (staff_no, name))
        _check_text_list("center_config: staff %s: stand_in_for" % staff_no, member.get("stand_in_for", []))
        windows = member.get("windows", [])
        if not isinstance(windows, list):
            raise ProtocolError("center_config: staff %s: windows must be an array" % staff_no)
        for number in windows:
            check_window(number)


def max_payload_bytes(kind_name):
    """The largest payload of `kind_name` a receiver reads."""
    return CENTER_CONFIG_MAX_BYTES if kind_name == "center_config" else MAX_PAYLOAD_BYTES


def check_registered_devices(devices):
    """`devices` of broker_accounts: a list of [device id, role, window], each id once; raises ProtocolError."""
    seen = {}
    for entry in devices:
        if not isinstance(entry, list) or len(entry) != 3:
            raise ProtocolError("broker_accounts: each of 'devices' must be [device id, role, window], got %r"
                                % (entry,))
        device_id, role, window = entry
        try:
            check_device_id(device_id)
            check_window(window)
        except ProtocolError as exc:
            raise ProtocolError("broker_accounts: devices: %s" % exc)
        if role not in DEVICE_ROLES:
            raise ProtocolError("broker_accounts: devices: role must be one of %s, got %r"
                                % (",".join(DEVICE_ROLES), role))
        if device_id in seen:
            raise ProtocolError("broker_accounts: devices: %s is listed twice" % device_id)
        seen[device_id] = True
    return devices


def validate(kind_name, payload):
    """Return `payload` if it is a valid `kind_name` message, else raise ProtocolError."""
    try:
        schema = SCHEMAS[kind_name]
    except KeyError:
        raise ProtocolError("unknown message kind %r" % (kind_name,))
    if not isinstance(payload, dict):
        raise ProtocolError("%s: payload must be a JSON object" % kind_name)
    for spec in schema:
        _check_field(kind_name, spec, payload)
    if kind_name == "broker_accounts":
        for name in ("passwd", "acl"):
            if len(payload[name]) > BROKER_FILE_MAX_CHARS:
                raise ProtocolError("broker_accounts: field %r is longer than %d characters"
                                    % (name, BROKER_FILE_MAX_CHARS))
        check_registered_devices(payload["devices"])
    if kind_name == "center_config":
        check_center_sections(payload)
    if kind_name in ("rating_submitted", "rating_event") and payload.get("reason") is not None \
            and payload["score"] not in BAD_SCORES:
        raise ProtocolError("%s: a reason is given only with a 差评 (score 1 or 2), got score %r"
                            % (kind_name, payload["score"]))
    boot = payload.get("boot") if kind_name in ("presence", "health") else None
    if boot is not None and not 0 < len(boot) <= BOOT_MAX_CHARS:
        raise ProtocolError("%s: field 'boot' must be 1 to %d characters, got %d"
                            % (kind_name, BOOT_MAX_CHARS, len(boot)))
    if kind_name == "presence" and payload["state"] == ONLINE:
        # A birth says what the device is; a will only that it is gone.
        for name in ("board", "fw", "contract"):
            if payload.get(name) is None:
                raise ProtocolError("presence: a birth needs field %r" % name)
    return payload


def make(kind_name, **fields):
    """Build a valid payload dict, adding the contract version.

    Optional fields given as None are left out, so callers can pass what
    they have without a null ever going on the wire.
    """
    payload = {}
    for name in fields:
        if fields[name] is not None:
            payload[name] = fields[name]
    payload["v"] = CONTRACT_VERSION
    return validate(kind_name, payload)


def encode(kind_name, payload):
    """Validate and serialise to UTF-8 JSON bytes (Chinese kept readable)."""
    if "v" not in payload:
        payload["v"] = CONTRACT_VERSION
    validate(kind_name, payload)
    return json.dumps(payload).encode("utf-8") if _ASCII_ONLY_DUMPS else _dumps_utf8(payload)


def decode(kind_name, raw):
    """Parse bytes or text into a validated payload dict, or raise ProtocolError."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeError:
            raise ProtocolError("%s: payload is not UTF-8" % kind_name)
    try:
        payload = json.loads(raw)
    except ValueError:
        raise ProtocolError("%s: payload is not JSON" % kind_name)
    except RuntimeError:
        # CPython's parser recurses once per level and raises RecursionError (a RuntimeError) on deep nesting;
        # no message of the contract nests more than a few levels, so it is the sender's error like bad JSON.
        raise ProtocolError("%s: payload is too deeply nested" % kind_name)
    return validate(kind_name, payload)


def _dumps_utf8(payload):
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# MicroPython's json.dumps takes no keyword arguments and already writes UTF-8.
try:
    json.dumps({}, ensure_ascii=False)
    _ASCII_ONLY_DUMPS = False
except TypeError:
    _ASCII_ONLY_DUMPS = True
