"""event_ack: tell each edge which of its events the fleet has stored.

The edge keeps an event until it is named here (a broker's PUBACK is not
enough: Mosquitto does not restore shared subscriptions after a restart).
Acknowledgements are batched per center and flushed a few times a second;
a lost batch only means the edge sends those events again, which the
idempotent store absorbs.

Each one is signed with the center's edge key (protocol.signing.sign_for_edge):
the edge deletes what an ack names, so an unsigned one would let anyone who can
publish on the county broker make it forget events the fleet never stored. A
center without an edge key gets no acks (counted in `unsigned`): its edge keeps
its events and sends them again until its credentials are issued.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from fleet.devconfig.keys import DeviceKeyError, KeyBox
from fleet.registration.models import EdgeCountyAccount
from fleet.registration.service import open_edge_key
from protocol import messages, signing, topics

log = logging.getLogger(__name__)

MAX_BATCH = 200
# How long an edge key read from the database is used before it is read again: a batch goes out a few times a
# second, and a rotated key needs the edge's configuration changed anyway (acks refused meanwhile are re-sent).
EDGE_KEY_KEEP_S = 30.0
PREFETCH_CHUNK = 500  # centers whose keys one query reads


class EdgeKeys:
    """center -> its edge key (None before one was issued), read from the database and kept EDGE_KEY_KEEP_S."""

    def __init__(self, engine: Engine, box: KeyBox, keep_s: float = EDGE_KEY_KEEP_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._box = box
        self._keep_s = keep_s
        self._clock = clock
        self._known: dict[str, tuple[float, bytes | None]] = {}

    def __call__(self, center: str) -> bytes | None:
        self.prefetch([center])
        return self._known[center][1]

    def prefetch(self, centers: Iterable[str]) -> None:
        """Read the keys of these centers not known (or kept too long) in one query per PREFETCH_CHUNK: after an
        outage each flush names hundreds of centers, and a query each took most of the ack thread's time."""
        now = self._clock()
        wanted = sorted(c for c in centers if (known := self._known.get(c)) is None or now - known[0] >= self._keep_s)
        for start in range(0, len(wanted), PREFETCH_CHUNK):
            chunk = wanted[start:start + PREFETCH_CHUNK]
            with Session(self._engine) as session:
                rows = {row.center_code: row for row in session.exec(
                    select(EdgeCountyAccount).where(col(EdgeCountyAccount.center_code).in_(chunk)))}
            for center in chunk:
                key = None
                if center in rows:
                    try:
                        key = open_edge_key(self._box, rows[center])
                    except DeviceKeyError as exc:
                        log.error("the edge key of center %s does not open (%s): its acks are not sent", center, exc)
                self._known[center] = (now, key)


class AckBatcher:
    def __init__(self, publish: Callable[[str, bytes], None], key_for: Callable[[str], bytes | None],
                 interval_s: float = 0.2) -> None:
        self._publish = publish  # (topic, payload) -> None, QoS 1
        self._key_for = key_for  # center -> its edge key (EdgeKeys), None when none was issued
        self._interval_s = interval_s
        self._pending: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.unsigned = 0  # batches not sent: their center has no edge key

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
        prefetch = getattr(self._key_for, "prefetch", None)
        if prefetch is not None and len(batches) > 1:
            try:
                prefetch(batches)
            except Exception:  # the database away: each center is asked on its own below, and logged there
                log.exception("edge keys of %d centers not read", len(batches))
        for center, ids in batches.items():
            try:
                key = self._key_for(center)
            except Exception:  # the database away: the edge sends these events again, and they are acked then
                log.exception("no edge key of center %s now: %d acks not sent", center, len(ids))
                continue
            if key is None:
                self.unsigned += 1
                log.warning("center %s has no edge key: %d events stored but not acknowledged (its edge sends them "
                            "again; issue its edge credentials)", center, len(ids))
                continue
            for start in range(0, len(ids), MAX_BATCH):
                try:
                    payload = signing.make_signed("event_ack", key, center, event_ids=ids[start:start + MAX_BATCH])
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
