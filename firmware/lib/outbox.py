"""FlashOutbox: messages that must reach the broker even across a reboot.

A rating pressed while the broker is unreachable (or right before a power
cut) waits here, one small file per message (`<seq>.msg`, written
atomically), and is deleted only once the edge has acknowledged it
(rating_ack, see firmware/lib/awaiting_ack.py; a broker's PUBACK is not
enough). A message sent but not yet deleted when the power goes is sent again
after the reboot with the same payload, so its own id (rating_id) lets the
receiver drop the duplicate: nothing is lost and nothing is counted twice.

Bounded: at most `limit` messages. When full, add() refuses (returns None)
and the caller decides (the rating pad then refuses the press, so what was
accepted is never pushed out). A flash that cannot be written keeps the
message in RAM for this boot and says so in `error`.
"""

import json
import os

from firmware.lib import flashfs

SUFFIX = ".msg"


class FlashOutbox:
    LIMIT = 200  # ~200 B per rating: a day of one window's ratings with room to spare

    def __init__(self, directory, limit=LIMIT, log=print):
        self.directory = directory
        self.limit = limit
        self.error = None
        self.dropped = 0
        self._log = log
        self._seqs = []  # oldest first
        self._ram = {}  # seq -> record, for messages the flash refused
        self._next_seq = 1
        self._load()

    def __len__(self):
        return len(self._seqs)

    @property
    def full(self):
        return len(self._seqs) >= self.limit

    def add(self, topic, payload, qos=1, retain=False):
        """Store one message; returns its key, or None when the outbox is full."""
        if self.full:
            self.dropped += 1
            self._report("outbox full (%d messages), %s refused" % (self.limit, topic))
            return None
        seq = self._next_seq
        self._next_seq += 1
        if isinstance(payload, (bytes, bytearray)):
            payload = bytes(payload).decode("utf-8")
        record = {"topic": topic, "payload": payload, "qos": qos, "retain": bool(retain)}
        try:
            flashfs.ensure_dir(self.directory)
            flashfs.write_atomic(self._path(seq), json.dumps(record))
        except OSError as exc:
            self._ram[seq] = record
            self._report("message kept in RAM only, flash refused it: %s" % exc)
        self._seqs.append(seq)
        return seq

    def peek(self):
        """The oldest message as (key, topic, payload bytes, qos, retain), or None."""
        while self._seqs:
            seq = self._seqs[0]
            record = self._ram.get(seq)
            if record is None:
                record, error = flashfs.read_json(self._path(seq))
                if error is not None or not _valid(record):
                    # Unreadable after a flash fault: nothing can be sent, so do not block the rest.
                    self._report("dropped unreadable %s" % self._path(seq))
                    self.dropped += 1
                    self.remove(seq)
                    continue
            return seq, record["topic"], record["payload"].encode("utf-8"), record["qos"], record["retain"]
        return None

    def remove(self, key):
        """Forget a message: call only once its receiver has it (the edge's acknowledgement)."""
        if key in self._seqs:
            self._seqs.remove(key)
        self._ram.pop(key, None)
        flashfs.remove(self._path(key))

    # ---------------------------------------------------------------- helpers

    def _load(self):
        seqs = []
        for name in flashfs.listdir(self.directory):
            if name.endswith(SUFFIX + flashfs.TMP_SUFFIX):
                name = self._recover(name)
                if name is None:
                    continue
            if not name.endswith(SUFFIX):
                continue
            try:
                seq = int(name[:-len(SUFFIX)])
            except ValueError:
                continue
            if seq not in seqs:
                seqs.append(seq)
        seqs.sort()
        self._seqs = seqs
        self._next_seq = seqs[-1] + 1 if seqs else 1

    def _recover(self, tmp_name):
        """A `.tmp` left by a cut during add(): keep it if it is whole, else drop it. Returns the final name."""
        tmp = flashfs.join(self.directory, tmp_name)
        final = tmp[:-len(flashfs.TMP_SUFFIX)]
        if not flashfs.exists(final):
            try:
                with open(tmp) as f:
                    record = json.loads(f.read())
                if _valid(record):
                    os.rename(tmp, final)
                    return tmp_name[:-len(flashfs.TMP_SUFFIX)]
            except (OSError, ValueError):
                pass
        flashfs.remove(tmp)
        return None

    def _path(self, seq):
        return flashfs.join(self.directory, "%08d%s" % (seq, SUFFIX))

    def _report(self, text):
        self.error = text
        if self._log is not None:
            self._log("outbox: " + text)


def _valid(record):
    return (isinstance(record, dict) and isinstance(record.get("topic"), str)
            and isinstance(record.get("payload"), str) and record.get("qos") in (0, 1))
