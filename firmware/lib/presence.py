"""Presence: the session counter, the boot id, the birth and the last will.

Every CONNECT carries a new session number (persisted in a small file so
it survives reboots) and the boot id of this run of the firmware (random at
every boot); the will, the birth and the heartbeats all say both. A watcher
that sees "offline, session 7" after "online, session 8" of the same boot
knows the offline is a leftover from the old connection; a birth of a new
boot is news even when the session file was lost and the counter is back
at 1 (protocol.presence has the one rule). The device itself repairs the
leftover case: it subscribes to its own presence topic and, when an offline
that the rule calls stale shows up while its current connection is alive,
publishes its birth again (docs/protocol.md, Presence, rule 5).
"""

from firmware.lib import flashfs
from protocol import CONTRACT_VERSION, messages, topics
from protocol import presence as rule

SESSION_FILE = "session"


class SessionCounter:
    """A counter in a file: `next()` increments and persists before returning."""

    def __init__(self, directory, name=SESSION_FILE):
        self.path = flashfs.join(directory, name)
        self.directory = directory
        self.error = None
        self.value = self._load()

    def _load(self):
        try:
            value = int(flashfs.read_text(self.path).strip())
            return value if value >= 0 else 0
        except (OSError, ValueError) as exc:  # UnicodeError is a ValueError on both runtimes
            if not isinstance(exc, OSError):
                self.error = "session file unreadable: %s" % exc
            return 0

    def next(self):
        self.value += 1
        try:
            flashfs.ensure_dir(self.directory)
            flashfs.write_atomic(self.path, "%d\n" % self.value)
            self.error = None
        except OSError as exc:
            # A full or broken flash must not stop the device: the counter
            # still goes up in RAM for this boot.
            self.error = "session file not saved: %s" % exc
            print("presence:", self.error)
        return self.value


class Presence:
    """Builds birth and will payloads for one device and spots stale wills."""

    def __init__(self, center, device_id, role, window=None, board="esp32", fw="0", mac=None, state_dir=""):
        self.center = center
        self.device_id = device_id
        self.role = role
        self.window = window
        self.board = board
        self.fw = fw
        self.mac = mac
        self.topic = topics.build(topics.DEVICE_PRESENCE, center=center, device=device_id)
        spec = topics.topic(topics.DEVICE_PRESENCE)
        self.qos = spec.qos
        self.retain = spec.retained
        self.counter = SessionCounter(state_dir)
        self.session = self.counter.value
        self.boot = rule.new_boot_id()  # once per boot: tells this boot's sessions from a lost counter's
        self.birth_sent = False
        self.repairs = 0

    def next_session(self):
        """Called right before every CONNECT."""
        self.session = self.counter.next()
        self.birth_sent = False
        return self.session

    def _payload(self, state):
        fields = {"state": state, "session": self.session, "boot": self.boot, "role": self.role}
        if self.window is not None:
            fields["window"] = self.window
        if state == messages.ONLINE:
            fields["board"] = self.board
            fields["fw"] = self.fw
            fields["contract"] = CONTRACT_VERSION
            if self.mac:
                fields["mac"] = self.mac
        return messages.make("presence", **fields)

    def birth(self):
        return messages.encode("presence", self._payload(messages.ONLINE))

    def will(self):
        return messages.encode("presence", self._payload(messages.OFFLINE))

    def will_for_next_connect(self):
        """The MQTTClient `will` callable: new session, then (topic, payload, qos, retain)."""
        self.next_session()
        return (self.topic, self.will(), self.qos, self.retain)

    def is_stale_will(self, payload):
        """True when `payload` (a decoded presence of this device) wrongly says offline.

        We are reading it over a live connection whose birth went out, so an
        'offline' that the presence rule calls stale against our own boot and
        session (an older session of this boot, or any will of another boot)
        is the will of a previous connection or boot that arrived late (broker
        session takeover). Note that a will reaching a subscriber that is
        already subscribed has its retain flag cleared, so the flag is not
        looked at.
        """
        if not self.birth_sent or payload.get("state") != messages.OFFLINE:
            return False
        verdict = rule.judge(self.boot, self.session, False, rule.WILL, payload.get("boot"),
                             payload.get("session", 0))
        return verdict == rule.STALE
