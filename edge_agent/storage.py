"""The health of the edge's data disk: free space, and whether the database can still write.

A Pi's SD card fills up (a voice cache, logs, a runaway file) and then every write of SQLite fails
with "database or disk is full": no ticket, no call, no rating can be stored. The fault-injection run
of issue 19 saw that only as HTTP 500s. Here every failed write is counted where it happens (the
store's transaction, the uplink's bookkeeping), requests get a 503 that says so in Chinese, and
health, readiness and the county's edge_health name the disk.

After a failure, health() tries one small write (a probe) at most every PROBE_EVERY_S, so the state
recovers as soon as the disk has room again, even when nobody asks for a ticket.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

OK = "ok"
DISK_FULL = "disk_full"  # writes fail for lack of space (or none is left)
WRITE_FAILED = "write_failed"  # writes fail otherwise: an I/O error, a read-only or broken file system
LOW_SPACE = "low_space"  # writes work, but less than [storage] min_free_mb is left

PROBE_EVERY_S = 1.0
DEFAULT_MIN_FREE_MB = 100

# What a resident at the kiosk reads when a ticket cannot be stored (docs: issue 19).
KIOSK_REFUSAL = "暂时无法取号，请联系工作人员"
KIOSK_PATHS = ("/api/tickets", "/api/scan")


def is_storage_error(exc: BaseException) -> bool:
    """A failure of the disk or database under a write (full, I/O, read-only, locked), not of the request."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError  # corrupt, not a db


def is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc)


def refusal_text(path: str, exc: BaseException) -> str:
    """The 503's text: the kiosk's for residents, one naming the cause for staff and the administrator."""
    if path in KIOSK_PATHS:
        return KIOSK_REFUSAL
    cause = "中心服务器存储空间已满" if is_disk_full(exc) else "中心服务器存储故障"
    return f"暂时无法保存，请联系管理员（{cause}）"


class WriteRecord:
    """Counts the database's failed writes and remembers the latest success (shared by its connections)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.failures = 0
        self.last_failure_at: float | None = None
        self.last_error = ""
        self.last_full = False  # the latest failure was for lack of space
        self.last_success_at: float | None = None
        self._lock = threading.Lock()

    @property
    def failing(self) -> bool:
        """The latest write failed (no write has worked since)."""
        return self.last_failure_at is not None and (self.last_success_at is None
                                                     or self.last_success_at < self.last_failure_at)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            was_failing = self.failing
            self.failures += 1
            self.last_failure_at = self.clock()
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_full = is_disk_full(exc)
        if not was_failing:  # once per fault, not once per refused request
            log.error("storage: a database write failed (%s); requests that need one are refused", self.last_error)

    def succeeded(self) -> None:
        with self._lock:
            was_failing = self.failing
            self.last_success_at = self.clock()
        if was_failing:
            log.warning("storage: database writes work again (%d failed in all)", self.failures)

    def record(self, exc: BaseException) -> None:
        """Count `exc` if it is a failure of the storage (not, e.g., a constraint the request broke)."""
        if is_storage_error(exc):
            self.failed(exc)


class StorageHealth:
    """Adapter-like health of the data directory: free bytes, write failures, and a state for the county."""

    name = "storage"

    def __init__(self, data_dir: Path, writes: WriteRecord, probe: Callable[[], None] | None = None,
                 min_free_bytes: int = DEFAULT_MIN_FREE_MB * 1024 * 1024) -> None:
        self.data_dir = Path(data_dir)
        self.writes = writes
        self.probe = probe  # one small write that raises when writes fail
        self.min_free_bytes = min_free_bytes
        self._last_probe = 0.0

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.data_dir).free
        except OSError:
            return None

    def _probe_if_failing(self) -> None:
        if not self.writes.failing or self.probe is None or time.monotonic() - self._last_probe < PROBE_EVERY_S:
            return
        self._last_probe = time.monotonic()
        try:
            self.probe()
        except sqlite3.Error:
            return  # still failing; a probe is not a request, so it is not counted
        self.writes.succeeded()

    def health(self) -> dict:
        self._probe_if_failing()
        free = self.free_bytes()
        if self.writes.failing:
            state = DISK_FULL if self.writes.last_full else WRITE_FAILED
        elif free == 0:
            state = DISK_FULL
        elif free is not None and free < self.min_free_bytes:
            state = LOW_SPACE
        else:
            state = OK
        return {"ok": state == OK, "state": state, "free_bytes": free, "min_free_bytes": self.min_free_bytes,
                "write_failures": self.writes.failures, "last_write_failure_at": self.writes.last_failure_at,
                "last_write_error": self.writes.last_error}
