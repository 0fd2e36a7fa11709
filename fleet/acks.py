"""event_ack: tell each edge which of its events the fleet has stored.

The edge keeps an event until it is named here (a broker's PUBACK is not
enough: Mosquitto does not restore shared subscriptions after a restart).
Acknowledgements are batched per center and flushed a few times a second;
a lost batch only means the edge sends those events again, which the
idempotent store absorbs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from protocol import messages, topics

log = logging.getLogger(__name__)

MAX_BATCH = 200


class AckBatcher:
    def __init__(self, publish: Callable[[str, bytes], None], interval_s: float = 0.2) -> None:
        self._publish = publish  # (topic, payload) -> None, QoS 1
        self._interval_s = interval_s
        self._pending: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def add(self, center: str, event_id: str) -> None:
        with self._lock:
            ids = self._pending.setdefault(center, [])
            ids.append(event_id)
            full = len(ids) >= MAX_BATCH
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batches, self._pending = self._pending, {}
        for center, ids in batches.items():
            for start in range(0, len(ids), MAX_BATCH):
                payload = messages.make("event_ack", event_ids=ids[start:start + MAX_BATCH])
                try:
                    self._publish(topics.build(topics.EVENT_ACK, center=center), messages.encode("event_ack", payload))
                    self.sent += 1
                except Exception:  # the edge will re-send; never let this stop the ingest
                    log.exception("event_ack for center %s not sent", center)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fleet-acks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()
