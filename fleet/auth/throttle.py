"""Login rate limiting: too many failed logins lock a user name, or a client address, for a while.

Failures and locks live in the database (LoginFailure, LoginLock), so every API
replica counts the same attempts. A lock refuses every login for that name or
address until it expires, even with the right password; afterwards the count
starts again from zero. A successful login clears its user name's failures
(not its address's: one valid account must not reset the count of guesses at others).

API tokens are not throttled: they are 256-bit random values, nothing to guess.

Parallel logins: the check (active_lock) and the count (record_failure) must not
interleave between logins of the same name or address, or fifty guesses sent at
once all pass the check before any of them is counted. The login's write
transaction therefore first takes hold_login_keys: on SQLite, write_session's
BEGIN IMMEDIATE already lets one writer at a time in; on PostgreSQL (READ
COMMITTED) a transaction-scoped advisory lock per name and per address does it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from fleet import audit
from fleet.auth.models import LOCK_BY_SOURCE, LOCK_BY_USER, LoginFailure, LoginLock
from fleet.settings import Settings

KEY_LENGTH = 64


@dataclass(frozen=True)
class LoginLimits:
    max_failures: int  # per user name
    max_failures_per_source: int  # per client address
    window: timedelta  # failures count this long
    lockout: timedelta  # a lock lasts this long

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        return cls(settings.login_max_failures, settings.login_max_failures_per_source,
                   timedelta(seconds=settings.login_failure_window_s), timedelta(seconds=settings.login_lockout_s))

    def limit(self, kind: str) -> int:
        return self.max_failures if kind == LOCK_BY_USER else self.max_failures_per_source


def _keys(username: str, source: str | None) -> list[tuple[str, str]]:
    keys = [(LOCK_BY_USER, username[:KEY_LENGTH])]
    if source:
        keys.append((LOCK_BY_SOURCE, source[:KEY_LENGTH]))
    return keys


def _advisory_lock_id(kind: str, key: str) -> int:
    """A stable signed 64-bit id for PostgreSQL's advisory locks (the same in every replica and process)."""
    digest = hashlib.sha256(f"fleet.login:{kind}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def hold_login_keys(session: Session, username: str, source: str | None) -> None:
    """Make logins of this user name and of this address wait for each other until this transaction ends.

    Call it first in the login's write transaction, before active_lock and before the password is
    verified: the next login of the same name or address then sees this one's failure (or its lock).
    """
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: write_session began with BEGIN IMMEDIATE, one writer at a time already
    # Released at commit or rollback. Taken in ascending id order, so two logins sharing one key
    # never wait for each other crosswise (no deadlock). Each statement of READ COMMITTED reads a
    # fresh snapshot, so what follows sees everything the previous holder committed.
    for lock_id in sorted({_advisory_lock_id(kind, key) for kind, key in _keys(username, source)}):
        session.exec(select(func.pg_advisory_xact_lock(lock_id))).one()


def active_lock(session: Session, username: str, source: str | None, now: datetime) -> LoginLock | None:
    """The lock (of the user name or of the address) that refuses this login now, the longer one if both."""
    locks = [session.get(LoginLock, key) for key in _keys(username, source)]
    current = [lock for lock in locks if lock is not None and lock.until > now]
    return max(current, key=lambda lock: lock.until, default=None)


def record_failure(session: Session, username: str, source: str | None, now: datetime,
                   limits: LoginLimits) -> list[LoginLock]:
    """Count a failed login; returns the locks it set (already in the audit log)."""
    session.exec(delete(LoginFailure).where(col(LoginFailure.at) < now - limits.window))  # housekeeping
    session.exec(delete(LoginLock).where(col(LoginLock.until) < now - limits.window))
    new_locks: list[LoginLock] = []
    for kind, key in _keys(username, source):
        session.add(LoginFailure(kind=kind, key=key, at=now))
        session.flush()
        previous = session.get(LoginLock, (kind, key))
        since = now - limits.window
        if previous is not None and previous.until > since:
            since = previous.until  # the failures that caused the last lock do not count again
        failures = session.exec(select(func.count()).select_from(LoginFailure).where(
            LoginFailure.kind == kind, LoginFailure.key == key, col(LoginFailure.at) >= since)).one()
        if failures < limits.limit(kind):
            continue
        lock = _set_lock(session, kind, key, now, now + limits.lockout, failures)
        new_locks.append(lock)
        audit.record(session, None, "login.locked", target=key,
                     detail={"by": kind, "user": username[:KEY_LENGTH], "source": source, "failures": failures,
                             "until": lock.until.isoformat()}, at=now)
    return new_locks


def _set_lock(session: Session, kind: str, key: str, locked_at: datetime, until: datetime,
              failures: int) -> LoginLock:
    """Create or extend the lock of one name or address, in one statement (INSERT ... ON CONFLICT DO UPDATE).

    hold_login_keys already keeps two logins of the same key from both creating its row, but another
    key's login may delete this row meanwhile (record_failure's housekeeping of expired locks): a plain
    INSERT or UPDATE could then fail on the primary key or update nothing; the upsert cannot.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"locked_at": locked_at, "until": until, "failures": failures}
    session.exec(insert(LoginLock).values(kind=kind, key=key, **values)
                 .on_conflict_do_update(index_elements=["kind", "key"], set_=values))
    # The row as written (also refreshing a copy the session loaded before the upsert).
    return session.exec(select(LoginLock).where(LoginLock.kind == kind, LoginLock.key == key)
                        .execution_options(populate_existing=True)).one()


def clear_user_failures(session: Session, username: str) -> None:
    """After a successful login the user name's count starts again."""
    session.exec(delete(LoginFailure).where(LoginFailure.kind == LOCK_BY_USER,
                                            LoginFailure.key == username[:KEY_LENGTH]))
