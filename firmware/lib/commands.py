"""Commands from the fleet: checked once, run at most once, acknowledged.

A command (device_command) is signed like a desired configuration. The
device runs it only if it is well formed, its signature verifies with the
device's own key, it is fresh (below), its arguments pass
protocol.messages.check_command_args (the fleet's own check before signing)
and its id was never seen before; the id is written to flash *before* the
command runs, so a reboot command (or a crash halfway) can never make it run
twice. Every command gets one device_command_ack: done, rejected (bad
signature, not fresh, unknown command, bad arguments, already run) or failed
(it ran into an error).

Fresh: a board has no wall clock (an ESP32 without NTP), and its memory of
ids is short and lost when it is provisioned again, so a captured signed
`reboot` could once be replayed. A command therefore names the `boot` it is
for (the random id the device draws at every start, protocol.presence), when
it was issued (`issued_at`, the signer's Unix seconds) and for how long it
may run (`valid_s`):

- another boot's command is refused: whatever was signed before a restart or
  a re-provisioning never runs again;
- within a boot, the device reckons the county's time from the commands it
  ran: the newest `issued_at` plus what its own uptime counted since. A
  command whose `issued_at + valid_s` lies before that is stale. (The first
  command of a boot has nothing to be compared with; it was issued for this
  very boot, so at worst it is a real command, late.) Provisioning's own
  commands (PROVISIONING_COMMAND_PREFIX) are judged but do not move the
  reckoning: a laptop's clock may be wrong, and must not make the fleet's
  commands look stale for the rest of the boot;
- the ids run this boot that the flash list has forgotten leave a floor: a
  command issued no later than one forgotten is refused, since the device
  cannot tell whether it ran.

CommandGate is the check; Overlay is what identify and test_pattern put on
the screen for a while. Both are pure (time comes in as now_ms); the
runtime runs the commands.
"""

from firmware.lib.clock import ticks_diff
from protocol import messages, signing
from protocol.errors import ProtocolError

IDENTIFY_TITLE = "设备识别"
TEST_PATTERN_FRAMES = (
    ("■■■■■■■■■■", "■■■■■■■■■■"),
    ("□□□□□□□□□□", "□□□□□□□□□□"),
    ("测试画面", "0123456789"),
)
BLINK_MS = 500
FRAME_MS = 1000


def ack(command_id, status, error=None):
    return messages.make("command_ack", command_id=command_id, status=status, error=error)


class Command:
    """A command that passed every check: name, its checked arguments, its id."""

    def __init__(self, command_id, name, args):
        self.command_id = command_id
        self.name = name
        self.args = args


class CommandGate:
    def __init__(self, device_id, key, seen, boot):
        """seen: a RecentIds (flash-backed) of the command ids already run; boot: this boot's id."""
        self.device_id = device_id
        self.key = key
        self.seen = seen
        self.boot = boot
        self._reckoned = None  # (issued_at, uptime_ms then) of the newest command run this boot
        self._issued_this_boot = []  # issued_at of the commands run this boot, oldest first, as `seen` keeps them
        self._floor = None  # the newest issued_at of a command run this boot whose id `seen` has forgotten

    def county_time(self, uptime_ms):
        """The county's Unix time at least, as reckoned from the commands run this boot; None before any."""
        if self._reckoned is None:
            return None
        issued_at, since_ms = self._reckoned
        return issued_at + (uptime_ms - since_ms) // 1000

    def check(self, payload, uptime_ms):
        """(Command, None) to run, or (None, command_ack payload) to send instead.

        `uptime_ms`: the device's uptime now (it never wraps, unlike ticks). A payload without a usable
        command_id cannot be acknowledged: (None, None).
        """
        command_id = payload.get("command_id") if isinstance(payload, dict) else None
        if not isinstance(command_id, str) or not command_id:
            return None, None
        try:
            messages.validate("command", payload)
        except ProtocolError as exc:
            return None, ack(command_id, messages.COMMAND_REJECTED, str(exc))
        if self.key is None:
            return None, ack(command_id, messages.COMMAND_REJECTED, "no device key provisioned")
        try:
            verified = signing.verify(self.key, self.device_id, payload)
        except ProtocolError:  # a value no signer signs (a float): made up
            verified = False
        if not verified:
            return None, ack(command_id, messages.COMMAND_REJECTED, "signature does not verify")
        stale = self._stale(payload, uptime_ms)
        if stale is not None:
            return None, ack(command_id, messages.COMMAND_REJECTED, stale)
        if command_id in self.seen:
            return None, ack(command_id, messages.COMMAND_REJECTED, "command %s already run" % command_id)
        try:
            # The same rule the fleet applied before signing (protocol.messages.COMMAND_ARGS).
            args = messages.check_command_args(payload["command"], payload.get("args"))
        except ProtocolError as exc:
            return None, ack(command_id, messages.COMMAND_REJECTED, str(exc))
        self.seen.add(command_id)  # before running: at most once, even across a reboot
        self._note_run(command_id, payload["issued_at"], uptime_ms)
        return Command(command_id, payload["command"], args), None

    def _stale(self, payload, uptime_ms):
        """Why a signed command is not fresh (see the module's docstring), or None."""
        boot, issued_at, valid_s = payload.get("boot"), payload.get("issued_at"), payload.get("valid_s")
        if boot is None or issued_at is None or valid_s is None:
            return "command carries no boot, issued_at and valid_s: its freshness cannot be told"
        if boot != self.boot:
            return "command was issued for boot %s, an earlier boot of this device (now %s)" % (boot, self.boot)
        if self._floor is not None and issued_at <= self._floor:
            return "command was issued before commands this device no longer remembers running"
        now = self.county_time(uptime_ms)
        if now is not None and issued_at + valid_s < now:
            return "command expired: issued at %d, valid %d s, and a command run since says it is %d" % (
                issued_at, valid_s, now)
        return None

    def _note_run(self, command_id, issued_at, uptime_ms):
        self._issued_this_boot.append(issued_at)
        while len(self._issued_this_boot) > self.seen.limit:
            forgotten = self._issued_this_boot.pop(0)  # as `seen` forgot its id
            self._floor = forgotten if self._floor is None else max(self._floor, forgotten)
        if command_id.startswith(messages.PROVISIONING_COMMAND_PREFIX):
            return
        now = self.county_time(uptime_ms)
        if now is None or issued_at > now:
            self._reckoned = (issued_at, uptime_ms)


class Overlay:
    """Screen content that covers the app's lines for a while (identify, test pattern)."""

    def __init__(self, title=IDENTIFY_TITLE):
        self.title = title
        self.kind = None
        self._since = 0
        self._ms = 0

    @property
    def active(self):
        return self.kind is not None

    def start(self, kind, now_ms, seconds):
        if kind not in (messages.COMMAND_IDENTIFY, messages.COMMAND_TEST_PATTERN):
            raise ValueError("no overlay for %r" % (kind,))
        self.kind = kind
        self._since = now_ms
        self._ms = seconds * 1000

    def frame(self, now_ms):
        """A number that changes whenever lines() would; -1 when inactive (and the overlay ends)."""
        if self.kind is None:
            return -1
        elapsed = ticks_diff(now_ms, self._since)
        if elapsed >= self._ms or elapsed < 0:
            self.kind = None
            return -1
        return elapsed // (BLINK_MS if self.kind == messages.COMMAND_IDENTIFY else FRAME_MS)

    def lines(self, now_ms, device_id):
        """The lines to show now, or None when no overlay is active."""
        step = self.frame(now_ms)
        if step < 0:
            return None
        if self.kind == messages.COMMAND_IDENTIFY:
            # Blinking on and off, so the one device among many on the wall is easy to spot.
            return [self.title, device_id] if step % 2 == 0 else ["", ""]
        return list(TEST_PATTERN_FRAMES[step % len(TEST_PATTERN_FRAMES)])


SELF_TEST_TITLE = "按键自检"
SELF_TEST_PRESS = "请按"  # followed by the scores of the buttons still to press


class ButtonCheck:
    """A rating pad's self-test: each button pressed once before the time runs out.

    While it runs, presses come here instead of to the app (no rating is sent). Pure: time comes in
    as now_ms; the runtime acknowledges the command when `passed` or `expired`.
    """

    def __init__(self, command_id, scores, now_ms, seconds):
        self.command_id = command_id
        self.missing = list(scores)
        self.presses = 0
        self._since = now_ms
        self._ms = seconds * 1000

    def press(self, score):
        self.presses += 1
        if score in self.missing:
            self.missing.remove(score)

    @property
    def passed(self):
        return not self.missing

    def expired(self, now_ms):
        elapsed = ticks_diff(now_ms, self._since)
        return elapsed >= self._ms or elapsed < 0

    def failure(self):
        return "buttons not pressed: %s" % ", ".join([str(score) for score in self.missing])

    def lines(self):
        return [SELF_TEST_TITLE, SELF_TEST_PRESS + " " + " ".join([str(score) for score in self.missing])]
