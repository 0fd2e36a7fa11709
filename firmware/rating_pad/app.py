"""The rating pad's logic: one 好差评 rating per request, five buttons.

Pure: no I/O, no clock of its own. The runtime feeds it decoded
rating_request payloads, button presses and ticks with now_ms, and
publishes the rating_submitted payloads it returns. The request ids already
answered are kept in `rated`, any object with `in` and `add()`: the runtime
passes a flash-backed firmware.lib.recent.RecentIds, so a reboot during or
after a request does not reopen a rated ticket (a request id names one
ticket's rating; ticket numbers restart every day, so the number alone
does not).

The desired configuration (apply_config) sets prompt_text, thanks_text and
rating_timeout_s; a rating_timeout_s set by the county wins over the
request's timeout_s.
"""

import binascii
import os

from firmware.lib.clock import ticks_diff
from protocol import messages, topics

# Buttons left to right: 5 非常满意 .. 1 非常不满意.
BUTTON_SCORES = (5, 4, 3, 2, 1)
DEFAULT_TIMEOUT_S = 60
THANKS_MS = 5000
REMEMBER = 8  # finished request ids kept so a re-delivered request does not reopen

SCREEN_IDLE = "idle"
SCREEN_OPEN = "open"
SCREEN_THANKS = "thanks"

IDLE_TEXT = "欢迎光临"
PROMPT_TEXT = "请对本次服务进行评价"
THANKS_TEXT = "谢谢您的评价"


def _random_hex(nbytes):
    try:
        raw = os.urandom(nbytes)
    except (AttributeError, NotImplementedError):
        import random

        raw = bytes([random.getrandbits(8) for _ in range(nbytes)])
    return binascii.hexlify(raw).decode()


def staff_line(request, window):
    name = request.get("staff_name") or ""
    number = request.get("staff_no") or ""
    if name and number:
        return "%s 工号%s" % (name, number)
    if number:
        return "工号%s" % number
    if name:
        return name
    return "%d号窗口" % window


class RatingPadApp:
    role = messages.ROLE_RATING_PAD
    SUBSCRIBES = (topics.RATING_REQUEST,)
    EMITS = topics.RATING_SUBMITTED
    BUTTONS = BUTTON_SCORES  # what the self-test asks the technician to press

    def __init__(self, window, device_id, default_timeout_s=DEFAULT_TIMEOUT_S, rated=None):
        self.window = window
        self.device_id = device_id
        self.default_timeout_s = default_timeout_s
        self.configured_timeout_s = None  # from the desired configuration
        self.prompt_text = PROMPT_TEXT
        self.thanks_text = THANKS_TEXT
        self.request = None  # the open request payload
        self.screen = SCREEN_IDLE
        self.last_score = None
        self._opened_ms = 0
        self._thanks_ms = 0
        if rated is None:
            from firmware.lib.recent import RecentIds

            rated = RecentIds(None, REMEMBER)
        self.rated = rated  # request ids rated, timed out or closed
        self.changes = 0  # bumped whenever lines() would change: the runtime redraws only then

    @property
    def is_open(self):
        return self.request is not None

    # ------------------------------------------------------------------ input

    def on_request(self, payload, now_ms):
        """Apply a decoded rating_request payload. Never returns a rating."""
        if payload.get("window") != self.window:
            return None
        request_id = payload["request_id"]
        if payload["state"] == messages.REQUEST_OPEN:
            if request_id in self.rated:
                return None  # already rated here: a re-delivered retained request
            if self.request is not None and self.request["request_id"] == request_id:
                return None  # the same request again: keep its timer
            self.request = payload
            self._opened_ms = now_ms
            self.screen = SCREEN_OPEN
            self.changes += 1
        else:
            self._remember(request_id)
            if self.request is not None:
                self.request = None
                if self.screen == SCREEN_OPEN:
                    self.screen = SCREEN_IDLE
                self.changes += 1
        return None

    def on_message(self, name, payload, now_ms, retained=False):
        if name == topics.RATING_REQUEST:
            return self.on_request(payload, now_ms)
        return None

    def on_link(self, up, now_ms):
        pass

    def apply_config(self, config):
        """Apply the configuration in force (a validated rating_pad CONFIG_SCHEMAS dict)."""
        self.prompt_text = config.get("prompt_text") or PROMPT_TEXT
        self.thanks_text = config.get("thanks_text") or THANKS_TEXT
        self.configured_timeout_s = config.get("rating_timeout_s")
        self.changes += 1

    def timeout_s(self):
        """Seconds the open request waits for a press before it is sent unrated."""
        if self.configured_timeout_s:
            return self.configured_timeout_s
        if self.request is not None and self.request.get("timeout_s"):
            return self.request["timeout_s"]
        return self.default_timeout_s

    def press(self, score, now_ms):
        """A button: the rating_submitted payload, or None when no rating is open."""
        if score not in BUTTON_SCORES or self.request is None:
            return None
        payload = self._finish(score)
        self.screen = SCREEN_THANKS
        self.last_score = score
        self._thanks_ms = now_ms
        self.changes += 1
        return payload

    def tick(self, now_ms):
        """Time passes: an unrated payload (score 0) once when the request times out."""
        # A negative gap is one of more than 2**29 ms (half the ticks period): long over, not yet to come.
        if self.screen == SCREEN_THANKS and not 0 <= ticks_diff(now_ms, self._thanks_ms) < THANKS_MS:
            self.screen = SCREEN_OPEN if self.request is not None else SCREEN_IDLE
            self.changes += 1
        if self.request is None:
            return None
        if 0 <= ticks_diff(now_ms, self._opened_ms) < self.timeout_s() * 1000:
            return None
        payload = self._finish(messages.UNRATED)
        self.screen = SCREEN_IDLE
        self.changes += 1
        return payload

    # ----------------------------------------------------------------- output

    def lines(self):
        if self.screen == SCREEN_THANKS:
            return [self.thanks_text, messages.RATING_LABELS.get(self.last_score or 0, "")]
        if self.screen == SCREEN_OPEN and self.request is not None:
            return [staff_line(self.request, self.window), self.prompt_text]
        return ["%d号窗口" % self.window, IDLE_TEXT]

    def render(self, panel):
        panel.show_lines(self.lines())

    # ---------------------------------------------------------------- helpers

    def _finish(self, score):
        request = self.request
        if request is None:
            return None
        self.request = None
        self._remember(request["request_id"])
        return messages.make(
            "rating_submitted",
            rating_id="%s-%s" % (self.device_id, _random_hex(6)),
            request_id=request["request_id"],
            ticket=request["ticket"],
            window=self.window,
            score=score,
        )

    def _remember(self, request_id):
        self.rated.add(request_id)
