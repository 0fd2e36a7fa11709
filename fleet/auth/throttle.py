"""Login rate limiting: too many failed logins lock a user name, or a client address, for a while.

Failures and locks live in the database (LoginFailure, LoginLock), so every API
replica counts the same attempts. A lock refuses every login for that name or
address until it expires, even with the right password; afterwards the count
starts again from zero. A successful login clears its user name's failures
(not its address's: one valid account must not reset the count of guesses at others).

API tokens are not throttled: they are 256-bit random values, nothing to guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func
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
        lock = previous or LoginLock(kind=kind, key=key, locked_at=now, until=now, failures=0)
        lock.locked_at, lock.until, lock.failures = now, now + limits.lockout, failures
        session.add(lock)
        new_locks.append(lock)
        audit.record(session, None, "login.locked", target=key,
                     detail={"by": kind, "user": username[:KEY_LENGTH], "source": source, "failures": failures,
                             "until": lock.until.isoformat()}, at=now)
    return new_locks


def clear_user_failures(session: Session, username: str) -> None:
    """After a successful login the user name's count starts again."""
    session.exec(delete(LoginFailure).where(LoginFailure.kind == LOCK_BY_USER,
                                            LoginFailure.key == username[:KEY_LENGTH]))
