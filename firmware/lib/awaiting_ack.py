"""AwaitingAck: the one outbox message sent and not yet acknowledged by the edge.

A broker's PUBACK only says that the center broker has a message. The edge
agent may still fail to store it: during a full disk (issue 19) a pad's
rating reached the edge, could not be written, and nothing ever sent it
again, because the pad had forgotten it at the PUBACK. So a rating stays in
the flash outbox until the edge's rating_ack names it (stored, or refused for
good), and is sent again when no acknowledgement came within the time-out, or
when the link came back since it was sent (an acknowledgement published while
the pad was away is not kept for it: a clean session).

One message at a time, oldest first (stop-and-wait): a 差评's reason, sent as
the same rating again, never overtakes its score; the edge sees ratings in
the order they were made; and nothing but this one message's identity is
kept in RAM (a backlog of 200 ratings after an outage goes out in seconds on
a LAN). A message is named by its rating_id and reason, as the
acknowledgement names it, so the acknowledgement of a score never passes for
one of its reason.

Pure: no I/O, no clock of its own. The runtime passes the outbox key, the
message's identity and ticks (firmware.lib.clock).
"""

from firmware.lib.clock import ticks_diff


class AwaitingAck:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.key = None  # outbox key of the message sent and not yet acknowledged, or None
        self.rating_id = None
        self.reason = None
        self.resends = 0
        self._sent_ms = 0
        # Latched once the time-out has passed or the link came back, so the tick compared with _sent_ms is
        # never older than the time-out (clock.py: ticks compare only within half their period).
        self._due = False

    def should_send(self, key):
        """Whether the outbox's oldest message (`key`) goes out now: a new one, or the awaited one when due."""
        return key != self.key or self._due

    def sending(self, key, rating_id, reason, now_ms):
        """The message `key` is being published (again); from now on an acknowledgement may name it."""
        if key == self.key:
            self.resends += 1
        self.key = key
        self.rating_id = rating_id
        self.reason = reason
        self._sent_ms = now_ms
        self._due = False

    def delivered(self, key, now_ms):
        """The broker has `key` (PUBACK): its time-out counts from now.

        A publish waits while the link is down and goes again (DUP) on the next connection, after the
        subscriptions are renewed, so a `due` latched meanwhile is spent by that send.
        """
        if key == self.key:
            self._sent_ms = now_ms
            self._due = False

    def acknowledged(self, rating_id, reason):
        """The outbox key of the awaited message when the acknowledgement names it, else None.

        The caller removes it from the outbox. None is an acknowledgement of a copy already answered (a
        re-send of a message the edge had stored) or of nothing this pad waits for: ignored.
        """
        if self.key is None or rating_id != self.rating_id or reason != self.reason:
            return None
        key = self.key
        self.key = None
        self.rating_id = None
        self.reason = None
        return key

    def tick(self, now_ms):
        """True once, when the time-out has passed with no acknowledgement: send the message again."""
        if self.key is None or self._due:
            return False
        if 0 <= ticks_diff(now_ms, self._sent_ms) < self.timeout_ms:
            return False
        self._due = True
        return True

    def link_up(self):
        """The link is back: an acknowledgement sent while it was down is lost. True when a message goes again."""
        if self.key is None:
            return False
        self._due = True
        return True
