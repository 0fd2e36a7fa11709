"""Browser sessions: a random id in a signed cookie, its SHA-256 and CSRF token in the database."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Session, col

from fleet.auth.models import SigningKey, User, WebSession
from fleet.db import write_session

SESSION_COOKIE = "fleet_session"
LOGIN_CSRF_COOKIE = "fleet_login_csrf"  # double-submit token of the login form (no session yet)
CSRF_FIELD = "csrf_token"  # form field
CSRF_HEADER = "X-CSRF-Token"  # header, for fetch() requests
_KEY_NAME = "session-cookie"


def load_signing_key(engine: Engine, configured: str | None) -> bytes:
    """The configured secret, else this database's own key (made on first use)."""
    if configured:
        return configured.encode()
    with write_session(engine) as session:
        row = session.get(SigningKey, _KEY_NAME)
        if row is None:
            row = SigningKey(name=_KEY_NAME, value=secrets.token_hex(32))
            session.add(row)
        return row.value.encode()


def _sign(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def cookie_value(key: bytes, session_id: str) -> str:
    return f"{session_id}.{_sign(key, session_id)}"


def session_id_from_cookie(key: bytes, cookie: str | None) -> str | None:
    """The session id of a cookie whose signature verifies, else None."""
    if not cookie or "." not in cookie:
        return None
    session_id, signature = cookie.rsplit(".", 1)
    return session_id if hmac.compare_digest(signature, _sign(key, session_id)) else None


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(session: Session, user: User, now: datetime, max_age_s: int,
                  source: str | None) -> tuple[str, WebSession]:
    """A new browser session for `user`; returns the session id (for the cookie) and the row."""
    session_id = secrets.token_urlsafe(32)
    row = WebSession(id_hash=_id_hash(session_id), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
                     created=now, expires=now + timedelta(seconds=max_age_s), source=(source or "")[:64] or None)
    session.add(row)
    session.exec(delete(WebSession).where(col(WebSession.expires) < now))  # housekeeping
    return session_id, row


def find_session(session: Session, session_id: str, now: datetime) -> WebSession | None:
    row = session.get(WebSession, _id_hash(session_id))
    if row is None or row.expires <= now:
        return None
    return row


def end_session(session: Session, session_id: str) -> None:
    row = session.get(WebSession, _id_hash(session_id))
    if row is not None:
        session.delete(row)


def end_sessions_of(session: Session, user_id: int, keep_session_id: str | None = None) -> None:
    """Log a user out everywhere (disabled, or password changed), except the session `keep_session_id` (the
    browser that changed its own password)."""
    query = delete(WebSession).where(col(WebSession.user_id) == user_id)
    if keep_session_id is not None:
        query = query.where(col(WebSession.id_hash) != _id_hash(keep_session_id))
    session.exec(query)
