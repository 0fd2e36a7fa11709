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

A 差评 (不满意, 非常不满意) is sent at the press like any rating, and then
the pad asks why: the five buttons stand for the five reasons of
messages.RATING_REASONS, left to right. The screen (128x64, 16-pixel
glyphs) cannot show five labels at once, and a 2.5 cm screen cannot sit
over the buttons it would label, so the reasons are shown one after the
other, REASON_SPOT_MS each, with only that reason's button lit; any button
picks its own reason at any time. The pick goes out as the same rating
again (same rating_id) with `reason`; after REASON_TIMEOUT_S, or when the
next resident's request opens, the step ends without one. Why the score
does not wait for the reason: docs/protocol.md, rating_submitted.
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
SCREEN_REASON = "reason"  # after a 差评: which of the five reasons
SCREEN_THANKS = "thanks"

IDLE_TEXT = "欢迎光临"
PROMPT_TEXT = "请对本次服务进行评价"
THANKS_TEXT = "谢谢您的评价"
REASON_PROMPT = "请选择不满意原因"
REASON_HINT = "按亮灯的键选此项"

# Which button means what while the reason is asked: the reasons in button order, left to right.
REASON_BUTTONS = messages.RATING_REASONS
# Every button lit alone, left to right: the reason step's LED states, made once.
SPOT_LEDS = tuple(tuple(i == lit for i in range(len(BUTTON_SCORES))) for lit in range(len(BUTTON_SCORES)))


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
    REASON_TIMEOUT_S = 30
    """How long the pad asks for a 差评's reason: each of the five shown three times over."""
    REASON_SPOT_MS = 2000
    """How long each reason is shown, its button lit, before the next: time to read four characters."""

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
        self.last_label = ""  # what the thanks screen confirms: the score's label, or the reason's
        self.lit = -1  # the button lit on the thanks screen (0 = leftmost), or -1
        self.spot = 0  # the button whose reason is shown now, while the reason is asked
        self.asking = None  # the rating_submitted payload of the 差评 whose reason is asked
        self._opened_ms = 0
        self._thanks_ms = 0
        self._asked_ms = 0
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
            self.asking = None  # the next resident's turn: the previous one's reason is not asked any longer
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
        """A button (named by its score): the rating_submitted payload to send, or None.

        While a rating is open: the rating. A 差评 then asks its reason. While the reason is asked: the
        same rating again with the reason of this button.
        """
        if score not in BUTTON_SCORES:
            return None
        button = BUTTON_SCORES.index(score)
        if self.asking is not None:
            reason = REASON_BUTTONS[button]
            rated = self.asking
            self.asking = None
            self._thank(button, messages.RATING_REASON_LABELS[reason], now_ms)
            return messages.make(
                "rating_submitted", rating_id=rated["rating_id"], request_id=rated["request_id"],
                ticket=rated["ticket"], window=rated["window"], score=rated["score"], reason=reason)
        if self.request is None:
            return None
        payload = self._finish(score)
        self.last_score = score
        if score in messages.BAD_SCORES:
            self.asking = payload
            self.screen = SCREEN_REASON
            self.spot = 0
            self._asked_ms = now_ms
            self.changes += 1
        else:
            self._thank(button, messages.RATING_LABELS[score], now_ms)
        return payload

    def tick(self, now_ms):
        """Time passes: an unrated payload (score 0) once when the request times out."""
        # A negative gap is one of more than 2**29 ms (half the ticks period): long over, not yet to come.
        if self.screen == SCREEN_THANKS and not 0 <= ticks_diff(now_ms, self._thanks_ms) < THANKS_MS:
            self.screen = SCREEN_OPEN if self.request is not None else SCREEN_IDLE
            self.changes += 1
        if self.asking is not None:
            asked = ticks_diff(now_ms, self._asked_ms)
            if not 0 <= asked < self.REASON_TIMEOUT_S * 1000:
                self.asking = None  # no reason given: the 差评 went out at the press, without one
                self._thank(-1, messages.RATING_LABELS[self.last_score or 0], now_ms)
            else:
                spot = (asked // self.REASON_SPOT_MS) % len(REASON_BUTTONS)
                if spot != self.spot:
                    self.spot = spot
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

    @property
    def asking_reason(self):
        return self.asking is not None

    def button_labels(self):
        """What each button means now, left to right: the five grades, or the five reasons."""
        if self.asking is not None:
            return [messages.RATING_REASON_LABELS[reason] for reason in REASON_BUTTONS]
        return [messages.RATING_LABELS[score] for score in BUTTON_SCORES]

    def lines(self):
        if self.screen == SCREEN_THANKS:
            return [self.thanks_text, self.last_label]
        if self.asking is not None:
            return [REASON_PROMPT, messages.RATING_REASON_LABELS[REASON_BUTTONS[self.spot]], REASON_HINT]
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

    def _thank(self, button, label, now_ms):
        """The thanks screen for THANKS_MS: the label confirmed, only the pressed button lit (-1: none)."""
        self.screen = SCREEN_THANKS
        self.lit = button
        self.last_label = label
        self._thanks_ms = now_ms
        self.changes += 1

    def _remember(self, request_id):
        self.rated.add(request_id)
