"""Commands from the fleet: checked once, run at most once, acknowledged.

A command (device_command) is signed like a desired configuration. The
device runs it only if it is well formed, its signature verifies with the
device's own key, its arguments pass protocol.messages.check_command_args
(the fleet's own check before signing) and its id was never seen
before; the id is written to flash *before* the command runs, so a reboot
command (or a crash halfway) can never make it run twice. Every command
gets one device_command_ack: done, rejected (bad signature, unknown
command, bad arguments, already run) or failed (it ran into an error).

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
    def __init__(self, device_id, key, seen):
        """seen: a RecentIds (flash-backed) of the command ids already run."""
        self.device_id = device_id
        self.key = key
        self.seen = seen

    def check(self, payload):
        """(Command, None) to run, or (None, command_ack payload) to send instead.

        A payload without a usable command_id cannot be acknowledged: (None, None).
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
        if not signing.verify(self.key, self.device_id, payload):
            return None, ack(command_id, messages.COMMAND_REJECTED, "signature does not verify")
        if command_id in self.seen:
            return None, ack(command_id, messages.COMMAND_REJECTED, "command %s already run" % command_id)
        try:
            # The same rule the fleet applied before signing (protocol.messages.COMMAND_ARGS).
            args = messages.check_command_args(payload["command"], payload.get("args"))
        except ProtocolError as exc:
            return None, ack(command_id, messages.COMMAND_REJECTED, str(exc))
        self.seen.add(command_id)  # before running: at most once, even across a reboot
        return Command(command_id, payload["command"], args), None


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
