"""The queue display's logic: what the window's screen shows, and nothing else.

Pure: no I/O, no clock of its own. The runtime feeds it decoded
window_display payloads, link changes and ticks, each with now_ms
(firmware.lib.clock ticks), and draws `lines()` on the panel. The desired
configuration (apply_config) sets idle_text (shown while the window is
idle, over the edge's default greeting) and blink_s (how long a new call
blinks; 0: no blink).
"""

from firmware.lib.clock import ticks_diff
from protocol import messages, topics

BLINK_MS = 5000  # a new call blinks this long so residents notice it
BLINK_PERIOD_MS = 500
OFFLINE_AFTER_MS = 10000  # link down longer than this: show the offline mark

IDLE_TEXT = "欢迎光临"
PAUSED_TEXT = "暂停服务"
OFFLINE_TEXT = "网络中断"


def window_title(window):
    return "%d号窗口" % window


def call_text(ticket, window):
    return "请%s号到%d号窗口" % (ticket, window)


class QueueDisplayApp:
    role = messages.ROLE_QUEUE_DISPLAY
    SUBSCRIBES = (topics.WINDOW_DISPLAY,)
    EMITS = None
    BUTTONS = ()  # no buttons: its self-test is the test pattern

    def __init__(self, window):
        self.window = window
        self.state = messages.DISPLAY_IDLE
        self.ticket = ""
        self.text = ""
        self.staff = ""
        self.call_seq = None
        self.blinking = False
        self._blink_since = 0
        self.link_up = False
        self._down_since = None
        self.offline = False
        self.idle_text = None  # from the desired configuration
        self.blink_ms = BLINK_MS
        self.changes = 0  # bumped whenever lines() would change: the runtime redraws only then

    # ------------------------------------------------------------------ input

    def on_display(self, payload, now_ms, retained=False):
        """Apply a decoded window_display payload. Returns True if it was for us."""
        if payload.get("window") != self.window:
            return False
        state = payload["state"]
        seq = payload["call_seq"]
        # A new call blinks; the very first retained message after boot is the
        # current state, not news, so it does not.
        new_call = (
            state == messages.DISPLAY_SERVING
            and seq != self.call_seq
            and (self.call_seq is not None or not retained)
        )
        self.state = state
        self.ticket = payload["ticket"]
        self.text = payload["text"]
        self.staff = payload.get("staff") or ""  # 亮牌上岗: who serves here, shown with the idle text
        self.call_seq = seq
        self.changes += 1
        if new_call and self.blink_ms > 0:
            self.blinking = True
            self._blink_since = now_ms
        elif state != messages.DISPLAY_SERVING:
            self.blinking = False
        return True

    def on_message(self, name, payload, now_ms, retained=False):
        if name == topics.WINDOW_DISPLAY:
            self.on_display(payload, now_ms, retained)
        return None

    def on_link(self, up, now_ms):
        if up:
            self.link_up = True
            self._down_since = None
            self._set_offline(False)
        else:
            if self.link_up or self._down_since is None:
                self._down_since = now_ms
            self.link_up = False

    def apply_config(self, config):
        """Apply the configuration in force (a validated queue_display CONFIG_SCHEMAS dict)."""
        self.idle_text = config.get("idle_text") or None
        blink_s = config.get("blink_s")
        self.blink_ms = BLINK_MS if blink_s is None else blink_s * 1000
        if self.blink_ms == 0:
            self.blinking = False
        self.changes += 1

    def tick(self, now_ms):
        if self.blinking and not 0 <= ticks_diff(now_ms, self._blink_since) < self.blink_ms:
            self.blinking = False
        if not self.link_up and not self.offline:
            if self._down_since is None:
                self._down_since = now_ms
            # Once shown, the mark stays until the link is back: compared for days, the down tick would be
            # 2**29 ms old after 6.2 days, ticks_diff negative, and the mark would vanish during the outage.
            self._set_offline(ticks_diff(now_ms, self._down_since) > OFFLINE_AFTER_MS)
        return None

    def _set_offline(self, offline):
        if offline != self.offline:
            self.offline = offline
            self.changes += 1

    # ----------------------------------------------------------------- output

    def blink_on(self, now_ms):
        """For a pixel panel: whether a blinking call is in its bright phase."""
        if not self.blinking:
            return True
        return (ticks_diff(now_ms, self._blink_since) // BLINK_PERIOD_MS) % 2 == 0

    def lines(self):
        if self.state == messages.DISPLAY_SERVING and self.ticket:
            shown = [self.ticket, self.text or call_text(self.ticket, self.window)]
        elif self.state == messages.DISPLAY_PAUSED:
            shown = [window_title(self.window), self.text or PAUSED_TEXT]
        else:
            idle = self.idle_text or self.text or IDLE_TEXT
            shown = [window_title(self.window), idle + " " + self.staff if self.staff else idle]
        if self.offline:
            shown.append(OFFLINE_TEXT)
        return shown

    def render(self, panel):
        panel.show_lines(self.lines())
