"""The edge agent's SQLite store (WAL): tickets, windows, ratings and the outbox.

Every change that must reach the county is written to the outbox in the same
transaction as the change itself, so a crash or a dead uplink loses nothing:
the uplink forwards outbox rows in order and deletes them only on PUBACK.
synchronous=FULL because a village center's Pi loses power without warning.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_agent.queue.rules import WAITING, TicketView
from edge_agent.storage import WriteRecord
from protocol import presence as presence_rule

SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY,
    business_day TEXT NOT NULL,
    service TEXT NOT NULL,
    seq INTEGER NOT NULL,
    number TEXT NOT NULL,
    status TEXT NOT NULL,
    issued_at REAL NOT NULL,
    called_at REAL,
    finished_at REAL,
    window INTEGER,
    UNIQUE (business_day, service, seq)
);
CREATE INDEX IF NOT EXISTS tickets_waiting ON tickets (business_day, status, issued_at);
CREATE TABLE IF NOT EXISTS windows (
    number INTEGER PRIMARY KEY,
    current_ticket_id INTEGER REFERENCES tickets (id),
    call_seq INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'open'
);
CREATE TABLE IF NOT EXISTS rating_requests (
    request_id TEXT PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    window INTEGER NOT NULL,
    state TEXT NOT NULL,
    opened_at REAL NOT NULL,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS ratings (
    rating_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    ticket_id INTEGER NOT NULL UNIQUE REFERENCES tickets (id),
    window INTEGER NOT NULL,
    score INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    window INTEGER,
    online INTEGER NOT NULL,
    session INTEGER NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS attendance (
    id INTEGER PRIMARY KEY,
    window INTEGER NOT NULL,
    staff_no TEXT NOT NULL,
    staff_name TEXT NOT NULL,
    login_at REAL NOT NULL,
    logout_at REAL
);
CREATE TABLE IF NOT EXISTS staff_pins (
    staff_no TEXT PRIMARY KEY,
    pin_hash TEXT NOT NULL,
    set_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS staff_sessions (
    token_hash TEXT PRIMARY KEY,
    staff_no TEXT NOT NULL,
    window INTEGER NOT NULL,
    business_day TEXT NOT NULL,
    created_at REAL NOT NULL,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS appointments (
    code TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    slot_start REAL NOT NULL,
    slot_end REAL NOT NULL,
    name_masked TEXT NOT NULL DEFAULT '',
    ticket_id INTEGER REFERENCES tickets (id),
    checked_in_at REAL
);
"""

# Columns added after the first release: an existing database gets them on open (ALTER TABLE ADD COLUMN).
MIGRATIONS = (
    ("tickets", "queue_service", "TEXT"),  # the service whose queue it is in after a transfer (NULL: its own)
    ("tickets", "priority", "TEXT NOT NULL DEFAULT ''"),  # '', green, appointment
    ("tickets", "requeued_at", "REAL"),
    ("tickets", "target_window", "INTEGER"),
    ("tickets", "recall_count", "INTEGER NOT NULL DEFAULT 0"),
    ("tickets", "missed_at", "REAL"),
    ("tickets", "slot_end", "REAL"),
    ("tickets", "call_reason", "TEXT"),
    ("windows", "priority_streak", "INTEGER NOT NULL DEFAULT 0"),
    ("windows", "staff_no", "TEXT"),
    ("windows", "staff_name", "TEXT"),
    ("windows", "login_at", "REAL"),
    ("tickets", "kiosk_request", "TEXT"),  # the kiosk's id of the tap that asked for it: a repeated tap is one ticket
    ("rating_requests", "outcome", "TEXT"),  # rated, timeout (未评价), skipped (staff moved on), pad_offline
    ("ratings", "reason", "TEXT"),  # a 差评's reason (protocol.messages.RATING_REASONS), sent after the score
    ("devices", "boot", "TEXT"),  # the boot id of `session` (protocol.presence); NULL: a sender without boot ids
    # 办件编号 and 事项 of a rating the window's business system asked for (edge_agent.business)
    ("rating_requests", "case_no", "TEXT"),
    ("rating_requests", "matter", "TEXT"),
    # Who served: the rating is theirs though the pad answers after a hand-over (NULL: opened by an older version)
    ("rating_requests", "staff_no", "TEXT"),
)
# Indexes on migrated columns: created after the columns exist.
MIGRATED_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS tickets_kiosk_request ON tickets (kiosk_request) "
    "WHERE kiosk_request IS NOT NULL",
    # The business system's call is idempotent on its case number: one rating request per 办件编号.
    "CREATE UNIQUE INDEX IF NOT EXISTS rating_requests_case_no ON rating_requests (case_no) "
    "WHERE case_no IS NOT NULL",
)


@dataclass(frozen=True)
class TicketRow:
    id: int
    business_day: str
    service: str
    seq: int
    number: str
    status: str
    issued_at: float
    called_at: float | None
    finished_at: float | None
    window: int | None
    queue_service: str = ""
    priority: str = ""
    requeued_at: float | None = None
    target_window: int | None = None
    recall_count: int = 0
    missed_at: float | None = None
    slot_end: float | None = None
    call_reason: str | None = None

    def view(self) -> TicketView:
        return TicketView(self.id, self.number, self.queue_service or self.service, self.status, self.issued_at,
                          self.priority, self.requeued_at, self.target_window, self.slot_end)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


TICKET_COLUMNS = ("id, business_day, service, seq, number, status, issued_at, called_at, finished_at, window, "
                  "COALESCE(queue_service, service), priority, requeued_at, target_window, recall_count, missed_at, "
                  "slot_end, call_reason")


class EdgeStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so two writers never interleave.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self.writes = WriteRecord()  # failed writes, for the storage health (a full disk)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        # A resident's callback phone passes through the outbox (edge_agent.callback): a deleted row is
        # overwritten, not left readable in a free page of the file.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as db:
            for table, column, declaration in MIGRATIONS:
                columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            for index in MIGRATED_INDEXES:
                db.execute(index)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                rollback(self._db)
                self.writes.record(exc)
                raise
            self.writes.succeeded()

    def probe_write(self) -> None:
        """One small write, raising when it fails: do writes work again after a failure? (not counted)"""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO counters (name, value) VALUES ('storage_probe', 1) "
                                 "ON CONFLICT (name) DO UPDATE SET value = value + 1")
                self._db.execute("COMMIT")
            except BaseException:
                rollback(self._db)
                raise

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- tickets ---------------------------------------------------------

    @staticmethod
    def _ticket(row: tuple | None) -> TicketRow | None:
        return TicketRow(*row) if row else None

    def ticket(self, ticket_id: int) -> TicketRow | None:
        rows = self.query(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?", (ticket_id,))
        return self._ticket(rows[0] if rows else None)

    def tickets_of_day(self, business_day: str, status: str | None = None) -> list[TicketRow]:
        if status is None:
            rows = self.query(f"SELECT {TICKET_COLUMNS} FROM tickets WHERE business_day = ? ORDER BY id",
                              (business_day,))
        else:
            rows = self.query(
                f"SELECT {TICKET_COLUMNS} FROM tickets WHERE business_day = ? AND status = ? ORDER BY issued_at, id",
                (business_day, status))
        return [TicketRow(*r) for r in rows]

    def waiting(self, business_day: str) -> list[TicketRow]:
        return self.tickets_of_day(business_day, WAITING)

    @staticmethod
    def next_seq(db: sqlite3.Connection, business_day: str, service: str) -> int:
        (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM tickets WHERE business_day = ? AND service = ?",
                             (business_day, service)).fetchone()
        return last + 1

    # -- windows ---------------------------------------------------------

    def window_row(self, number: int) -> tuple[int | None, int, str]:
        rows = self.query("SELECT current_ticket_id, call_seq, state FROM windows WHERE number = ?", (number,))
        return rows[0] if rows else (None, 0, "open")

    @staticmethod
    def ensure_window(db: sqlite3.Connection, number: int) -> None:
        db.execute("INSERT OR IGNORE INTO windows (number) VALUES (?)", (number,))

    # -- outbox ----------------------------------------------------------

    @staticmethod
    def enqueue(db: sqlite3.Connection, topic: str, payload: bytes, qos: int, retain: bool, now: float) -> None:
        db.execute("INSERT INTO outbox (topic, payload, qos, retain, created_at) VALUES (?, ?, ?, ?, ?)",
                   (topic, payload, qos, int(retain), now))

    def enqueue_now(self, topic: str, payload: bytes, qos: int, retain: bool, now: float) -> None:
        with self.transaction() as db:
            self.enqueue(db, topic, payload, qos, retain, now)

    def pending(self, limit: int = 100) -> list[OutboxRow]:
        rows = self.query("SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id LIMIT ?", (limit,))
        return [OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def forwarded(self, ids: list[int]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def outbox_size(self) -> int:
        return self.query("SELECT COUNT(*) FROM outbox")[0][0]

    # -- counters (e.g. the edge's presence session) ---------------------

    def increment(self, name: str) -> int:
        with self.transaction() as db:
            db.execute("INSERT INTO counters (name, value) VALUES (?, 1) "
                       "ON CONFLICT (name) DO UPDATE SET value = value + 1", (name,))
            return db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]

    # -- devices seen on the center broker -------------------------------

    def record_presence(self, device_id: str, payload: dict, now: float,
                        place: tuple[str, int] | None = None) -> str:
        """Store a device's presence when protocol.presence.judge calls it news; returns the verdict.

        The edge marks a device offline only on its will, so a stored offline is a session ended by its will.
        `place`: (role, window) the device is registered as, stored instead of what the message says.
        """
        role, window = place or (payload["role"], payload.get("window"))
        kind = presence_rule.kind_of("presence", payload)
        with self.transaction() as db:
            row = db.execute("SELECT boot, session, online FROM devices WHERE device_id = ?", (device_id,)).fetchone()
            stored_boot, stored_session, ended = (row[0], row[1], not row[2]) if row else (None, None, False)
            verdict = presence_rule.judge(stored_boot, stored_session, ended, kind, payload.get("boot"),
                                          payload["session"])
            if verdict not in presence_rule.APPLIED:
                return verdict
            db.execute(
                "INSERT INTO devices (device_id, role, window, online, session, boot, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET role = excluded.role, "
                "window = COALESCE(excluded.window, devices.window), online = excluded.online, "
                "session = excluded.session, boot = excluded.boot, last_seen = excluded.last_seen",
                (device_id, role, window, int(payload["state"] == "online"),
                 payload["session"], payload.get("boot"), now))
            return verdict

    def is_known_device(self, device_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)))

    def device_place(self, device_id: str) -> tuple[str, int | None] | None:
        """(role, window) of the device's last presence (as registered, when the edge knows registrations), or
        None for a device never seen."""
        rows = self.query("SELECT role, window FROM devices WHERE device_id = ?", (device_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def devices(self) -> list[dict]:
        rows = self.query("SELECT device_id, role, window, online, session, boot, last_seen FROM devices "
                          "ORDER BY window")
        return [dict(zip(("device_id", "role", "window", "online", "session", "boot", "last_seen"), r, strict=True))
                for r in rows]


def rollback(db: sqlite3.Connection) -> None:
    """Roll back after a failed statement or COMMIT, if SQLite has not done so itself.

    On a full disk SQLite may roll the transaction back on its own; a second ROLLBACK would raise "no
    transaction is active" and hide the real error. A failed COMMIT may leave it open; left open, every
    later BEGIN of this connection would fail, and its lock would stop every other writer.
    """
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the caller raises the error that made it roll back, which says more


def dumps(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
