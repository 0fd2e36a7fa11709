"""The edge's copy of retained downlink messages (desired configuration).

The county broker keeps them retained, but the center broker may restart
without persistence while the county link is fine; the agent then puts them
back on the center broker from this copy, as it does for window displays.
Its own table in the agent's database file, with its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from edge_agent.storage import WriteRecord


class RetainedCopies:
    def __init__(self, path: Path, writes: WriteRecord | None = None) -> None:
        self.writes = writes or WriteRecord()  # the agent passes the store's: one count for the database
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("CREATE TABLE IF NOT EXISTS downlink_retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL)")

    def keep(self, topic: str, payload: bytes) -> None:
        """Remember the latest retained payload of `topic`; an empty payload forgets it (MQTT's delete)."""
        with self._lock:
            try:
                if payload:
                    self._db.execute("INSERT INTO downlink_retained (topic, payload) VALUES (?, ?) "
                                     "ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload", (topic, payload))
                else:
                    self._db.execute("DELETE FROM downlink_retained WHERE topic = ?", (topic,))
            except sqlite3.Error as exc:
                self.writes.record(exc)
                raise
        self.writes.succeeded()

    def all(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(t, bytes(p)) for t, p in self._db.execute("SELECT topic, payload FROM downlink_retained")]

    def close(self) -> None:
        with self._lock:
            self._db.close()
