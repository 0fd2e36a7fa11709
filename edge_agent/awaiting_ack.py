"""Events the county broker has taken but the fleet has not yet confirmed.

A broker's PUBACK is not the end of an event's journey: Mosquitto 2.0 does
not restore shared subscriptions after a restart, so an event forwarded while
the fleet's workers are re-subscribing is dropped by the broker. An event
therefore waits here, after its PUBACK, until an event_ack from the fleet
names it, and is sent again after a time-out. The fleet stores events
idempotently, so a second copy is harmless.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from edge_agent.storage import WriteRecord
from edge_agent.store import rollback


@dataclass(frozen=True)
class AwaitingEvent:
    event_id: str
    topic: str
    payload: bytes


class AwaitingAck:
    def __init__(self, path: Path, writes: WriteRecord | None = None) -> None:
        self.writes = writes or WriteRecord()  # the agent passes the store's: one count for the database
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")  # an acknowledged callback phone is overwritten, not freed
        self._db.execute("CREATE TABLE IF NOT EXISTS awaiting_ack (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
                         "payload BLOB NOT NULL, sent_at REAL NOT NULL)")

    def sent(self, event_id: str, topic: str, payload: bytes, now: float) -> None:
        with self._lock:
            try:
                self._db.execute("INSERT INTO awaiting_ack (event_id, topic, payload, sent_at) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (event_id) DO UPDATE SET sent_at = excluded.sent_at",
                                 (event_id, topic, payload, now))
            except sqlite3.Error as exc:
                self.writes.record(exc)
                raise
        self.writes.succeeded()

    def acknowledged(self, event_ids: list[str]) -> int:
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            try:
                self._db.executemany("DELETE FROM awaiting_ack WHERE event_id = ?", [(i,) for i in event_ids])
                self._db.execute("COMMIT")
            except BaseException as exc:
                rollback(self._db)  # an open transaction would hold the database's write lock for good
                self.writes.record(exc)
                raise
            return self._db.total_changes - before

    def due(self, older_than: float, limit: int = 100) -> list[AwaitingEvent]:
        """Events sent before `older_than` and still not acknowledged, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT event_id, topic, payload FROM awaiting_ack WHERE sent_at < ? "
                                    "ORDER BY sent_at LIMIT ?", (older_than, limit)).fetchall()
        return [AwaitingEvent(r[0], r[1], bytes(r[2])) for r in rows]

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM awaiting_ack").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
