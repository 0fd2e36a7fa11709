"""Every MQTT topic of the system, defined once.

Layout: sc/<center>/device/<device>/<leaf>  messages a device publishes
        sc/<center>/window/<window>/<leaf>  what the edge tells a window's devices
        sc/<center>/edge/<leaf>             the edge agent's own state
        sc/<center>/event/<leaf>            queue and rating events for the county

Devices talk only to their center's broker; the edge agent relays device
presence and health, and its own events, to the county broker under the
same topics, so the fleet subscribes to one tree for the whole county.

Device messages sit under the device's own id so that a broker ACL
(`pattern write sc/+/device/%u/#`) can keep a device from publishing as
another. Edge-to-device messages are keyed by window, so a replaced display
shows the right number without touching the edge's configuration.
"""

from protocol.errors import ProtocolError
from protocol.identity import check_center_code, check_device_id, check_window

ROOT = "sc"

CENTER_BROKER = "center"
COUNTY_BROKER = "county"


class Topic:
    """One topic: its pattern, who publishes it, how, and its payload kind."""

    def __init__(self, name, pattern, publisher, subscriber, qos, retained, payload, brokers, summary):
        self.name = name
        self.pattern = pattern
        self.segments = pattern.split("/")
        self.publisher = publisher
        self.subscriber = subscriber
        self.qos = qos
        self.retained = retained
        self.payload = payload  # a message kind in protocol.messages
        self.brokers = brokers
        self.summary = summary


DEVICE_PRESENCE = "device_presence"
DEVICE_HEALTH = "device_health"
RATING_SUBMITTED = "rating_submitted"
RATING_ACK = "rating_ack"
WINDOW_DISPLAY = "window_display"
RATING_REQUEST = "rating_request"
EDGE_PRESENCE = "edge_presence"
EDGE_HEALTH = "edge_health"
DEVICE_CONFIG_DESIRED = "device_config_desired"
DEVICE_CONFIG_REPORTED = "device_config_reported"
DEVICE_COMMAND = "device_command"
DEVICE_COMMAND_ACK = "device_command_ack"
FIRMWARE_BUNDLE = "firmware_bundle"
FIRMWARE_DESIRED = "firmware_desired"
FIRMWARE_STATUS = "firmware_status"
FIRMWARE_FETCH = "firmware_fetch"
FIRMWARE_CHUNK = "firmware_chunk"
EVENT_ACK = "event_ack"
BROKER_ACCOUNTS = "broker_accounts"
CENTER_CONFIG = "center_config"
CENTER_CONFIG_REPORTED = "center_config_reported"
TICKET_EVENT = "ticket_event"
RATING_EVENT = "rating_event"
ATTENDANCE_EVENT = "attendance_event"
CALLBACK_PHONE = "callback_phone"

TOPICS = (
    Topic(DEVICE_PRESENCE, ROOT + "/{center}/device/{device}/presence",
          "device", "edge agent, fleet", 1, True, "presence", (CENTER_BROKER, COUNTY_BROKER),
          "Birth on connect, last will on loss; carries the session counter."),
    Topic(DEVICE_HEALTH, ROOT + "/{center}/device/{device}/health",
          "device", "edge agent, fleet", 0, False, "health", (CENTER_BROKER, COUNTY_BROKER),
          "Heartbeat every N seconds; its absence marks a silent death."),
    Topic(RATING_SUBMITTED, ROOT + "/{center}/device/{device}/rating",
          "rating pad", "edge agent", 1, False, "rating_submitted", (CENTER_BROKER,),
          "A resident pressed a button (or the request timed out unrated)."),
    Topic(RATING_ACK, ROOT + "/{center}/device/{device}/rating/ack",
          "edge agent", "rating pad", 1, False, "rating_ack", (CENTER_BROKER,),
          "The edge stored (or refused for good) one of the pad's ratings; until then the pad keeps and re-sends it."),
    Topic(WINDOW_DISPLAY, ROOT + "/{center}/window/{window}/display",
          "edge agent", "queue display", 1, True, "window_display", (CENTER_BROKER,),
          "What the window's queue display must show now."),
    Topic(RATING_REQUEST, ROOT + "/{center}/window/{window}/rating_request",
          "edge agent", "rating pad", 1, True, "rating_request", (CENTER_BROKER,),
          "Opens (or closes) the rating of one ticket on the window's pad."),
    Topic(DEVICE_CONFIG_DESIRED, ROOT + "/{center}/device/{device}/config/desired",
          "fleet (relayed by the edge agent)", "device", 1, True, "desired_config", (COUNTY_BROKER, CENTER_BROKER),
          "The configuration the county wants in force, signed with the device's key."),
    Topic(DEVICE_CONFIG_REPORTED, ROOT + "/{center}/device/{device}/config/reported",
          "device", "edge agent, fleet", 1, True, "reported_config", (CENTER_BROKER, COUNTY_BROKER),
          "The configuration version in force, or why a desired one was rejected."),
    Topic(DEVICE_COMMAND, ROOT + "/{center}/device/{device}/command",
          "fleet (relayed by the edge agent)", "device", 1, False, "command", (COUNTY_BROKER, CENTER_BROKER),
          "A signed one-off command: reboot, identify, test pattern, brightness."),
    Topic(DEVICE_COMMAND_ACK, ROOT + "/{center}/device/{device}/command/ack",
          "device", "edge agent, fleet", 1, False, "command_ack", (CENTER_BROKER, COUNTY_BROKER),
          "The outcome of one command."),
    # Over-the-air updates (protocol/firmware.py): the fleet sends a signed bundle to each center's edge, tells
    # each board in a message signed with the board's own key which bundle to run, and the board fetches the
    # bundle's files from its edge in chunks over the center broker (no HTTP client, no second port on the LAN).
    Topic(FIRMWARE_BUNDLE, ROOT + "/{center}/edge/firmware/bundle",
          "fleet", "edge agent", 1, True, "firmware_bundle", (COUNTY_BROKER,),
          "A firmware bundle (manifest and files), signed with the edge's key; the edge caches it for its boards."),
    Topic(FIRMWARE_DESIRED, ROOT + "/{center}/device/{device}/firmware/desired",
          "fleet (relayed by the edge agent)", "device", 1, True, "firmware_desired", (COUNTY_BROKER, CENTER_BROKER),
          "The firmware version the county wants the device to run, by its manifest's sha256, signed with its key."),
    Topic(FIRMWARE_STATUS, ROOT + "/{center}/device/{device}/firmware/status",
          "device", "edge agent, fleet", 1, True, "firmware_status", (CENTER_BROKER, COUNTY_BROKER),
          "The firmware running, staged or failed on the device, and why an update failed or was refused."),
    Topic(FIRMWARE_FETCH, ROOT + "/{center}/device/{device}/firmware/fetch",
          "device", "edge agent", 0, False, "firmware_fetch", (CENTER_BROKER,),
          "A device asks its edge for one chunk of a cached bundle's file (or manifest); asked again if unanswered."),
    Topic(FIRMWARE_CHUNK, ROOT + "/{center}/device/{device}/firmware/chunk",
          "edge agent", "device", 0, False, "firmware_chunk", (CENTER_BROKER,),
          "The edge's answer to one firmware_fetch: the bytes asked for, or why it has none."),
    Topic(EDGE_PRESENCE, ROOT + "/{center}/edge/presence",
          "edge agent", "fleet", 1, True, "presence", (COUNTY_BROKER,),
          "The edge agent's birth and last will on the county broker."),
    Topic(EDGE_HEALTH, ROOT + "/{center}/edge/health",
          "edge agent", "fleet", 1, True, "edge_health", (COUNTY_BROKER,),
          "Can this center serve residents right now, and why not: broker, printer paper, devices, readers."),
    Topic(TICKET_EVENT, ROOT + "/{center}/event/ticket",
          "edge agent", "fleet", 1, False, "ticket_event", (COUNTY_BROKER,),
          "A ticket was issued, called or finished (stored and forwarded)."),
    Topic(RATING_EVENT, ROOT + "/{center}/event/rating",
          "edge agent", "fleet", 1, False, "rating_event", (COUNTY_BROKER,),
          "A rating accepted by the edge, bound to ticket, window, staff and service."),
    Topic(ATTENDANCE_EVENT, ROOT + "/{center}/event/attendance",
          "edge agent", "fleet", 1, False, "attendance_event", (COUNTY_BROKER,),
          "A staff member signed in or out at a window (考勤), stored and forwarded like the queue's events."),
    Topic(CALLBACK_PHONE, ROOT + "/{center}/event/callback_phone",
          "edge agent", "fleet", 1, False, "callback_phone", (COUNTY_BROKER,),
          "A resident who gave a bad rating left a phone number for its callback; kept only until acknowledged."),
    Topic(EVENT_ACK, ROOT + "/{center}/event/ack",
          "fleet", "edge agent", 1, False, "event_ack", (COUNTY_BROKER,),
          "The events the fleet has stored; the edge re-sends any event not acknowledged in time."),
    Topic(BROKER_ACCOUNTS, ROOT + "/{center}/edge/broker_accounts",
          "fleet", "edge agent", 1, True, "broker_accounts", (COUNTY_BROKER,),
          "The center broker's passwd and acl; the edge installs them and reloads its Mosquitto."),
    Topic(CENTER_CONFIG, ROOT + "/{center}/edge/center_config",
          "fleet", "edge agent", 1, True, "center_config", (COUNTY_BROKER,),
          "The center's configuration from the county (profile, items, windows, roster), signed and versioned."),
    Topic(CENTER_CONFIG_REPORTED, ROOT + "/{center}/edge/center_config/reported",
          "edge agent", "fleet", 1, True, "center_config_reported", (COUNTY_BROKER,),
          "The center configuration version in force at the edge, or why one was rejected."),
)

_BY_NAME = {}
for _topic in TOPICS:
    _BY_NAME[_topic.name] = _topic


def topic(name):
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ProtocolError("unknown topic name %r" % (name,))


def _check_param(key, value):
    if key == "center":
        return check_center_code(value)
    if key == "device":
        return check_device_id(value)
    if key == "window":
        return str(check_window(value))
    raise ProtocolError("unknown topic parameter %r" % (key,))


def build(name, **params):
    """The concrete topic `name` for the given center/device/window."""
    parts = []
    for segment in topic(name).segments:
        if segment.startswith("{"):
            key = segment[1:-1]
            if key not in params:
                raise ProtocolError("topic %s needs %s" % (name, key))
            parts.append(_check_param(key, params[key]))
        else:
            parts.append(segment)
    return "/".join(parts)


def subscription(name, **params):
    """A subscription filter for `name`; parameters not given become '+'."""
    parts = []
    for segment in topic(name).segments:
        if segment.startswith("{"):
            key = segment[1:-1]
            parts.append(_check_param(key, params[key]) if key in params else "+")
        else:
            parts.append(segment)
    return "/".join(parts)


def shared(group, topic_filter):
    """An MQTT v5 shared subscription, so several workers split one stream."""
    return "$share/" + group + "/" + topic_filter


def parse(topic_text):
    """Return (name, params) for a topic of the contract, or raise ProtocolError.

    params holds 'center' (str), 'device' (str) and 'window' (int) as present.
    """
    if not isinstance(topic_text, str):
        raise ProtocolError("topic must be text")
    got = topic_text.split("/")
    for candidate in TOPICS:
        if len(candidate.segments) != len(got):
            continue
        params = {}
        matched = True
        for want, have in zip(candidate.segments, got):  # noqa: B905 (same length; MicroPython's zip has no strict)
            if want.startswith("{"):
                params[want[1:-1]] = have
            elif want != have:
                matched = False
                break
        if not matched:
            continue
        check_center_code(params["center"])
        if "device" in params:
            check_device_id(params["device"])
        if "window" in params:
            text = params["window"]
            try:
                params["window"] = int(text)
            except ValueError:
                raise ProtocolError("window in topic is not a number: %r" % (topic_text,))
            check_window(params["window"])
            if str(params["window"]) != text:
                # '03', '+3', ' 3' or '3_0' would name a topic no one subscribes to.
                raise ProtocolError("window in topic is not written as build() writes it: %r" % (topic_text,))
        return candidate.name, params
    raise ProtocolError("topic is not part of the contract: %r" % (topic_text,))
